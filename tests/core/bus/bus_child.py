"""A separate process for the bus tests: publishes concurrently, or consumes and dies.

    python bus_child.py publish URL TAG COUNT     waits for a line on stdin, then publishes
    python bus_child.py crash URL NAME AT BATCH   consumes, prints positions, _exit(3) at AT
"""

from __future__ import annotations

import os
import random
import sys
import time

from tsuba.core.bus import Bus, Delivery, SqlOutbox, publish_in
from tsuba.core.events import SecurityEvent
from tsuba.core.storage import open_engine


def _event(tag: str, i: int) -> SecurityEvent:
    return SecurityEvent(event_class="api_activity", message=f"{tag} {i}",
                         attributes={"tag": tag, "i": i})


def publish(url: str, tag: str, count: int) -> None:
    engine = open_engine(url)
    store = SqlOutbox(engine)
    rng = random.Random(tag)
    print("ready", flush=True)
    sys.stdin.readline()
    i = 0
    while i < count:
        mode = rng.randrange(3)
        if mode == 0:
            store.append([_event(tag, i)])
            i += 1
        elif mode == 1:
            n = min(count - i, rng.randint(2, 5))
            store.append([_event(tag, i + k) for k in range(n)])
            i += n
        else:
            # Hold the assigned position open for a moment before committing: the case
            # where a sequence-based outbox lets a reader skip a row.
            with engine.begin() as conn:
                publish_in(conn, _event(tag, i))
                time.sleep(rng.random() * 0.004)
            i += 1
        # A pause between transactions lets the other process's busy handler get the
        # SQLite write lock, so the two really interleave.
        time.sleep(rng.random() * 0.003)
    engine.dispose()


def crash(url: str, name: str, at: int, batch: int) -> None:
    engine = open_engine(url)
    bus = Bus(engine, poll_interval=0.05, batch_size=batch)

    def handler(d: Delivery) -> None:
        print(d.position, flush=True)
        if d.position == at:
            os._exit(3)

    bus.subscribe(name, handler)
    bus.start()
    bus.drain(30)
    sys.exit(0)


if __name__ == "__main__":
    cmd, url, *rest = sys.argv[1:]
    if cmd == "publish":
        publish(url, rest[0], int(rest[1]))
    elif cmd == "crash":
        crash(url, rest[0], int(rest[1]), int(rest[2]))
    else:
        sys.exit(f"unknown command {cmd}")
