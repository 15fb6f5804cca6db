"""Real processes sharing one database: concurrent publishers, and a consumer that dies."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from bus_events import ev
from sqlalchemy import Engine

from tsuba.core.bus import Bus, Delivery, SqlOutbox

CHILD = Path(__file__).with_name("bus_child.py")
MakeBus = Callable[..., Bus]


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_two_processes_publishing_at_once_give_one_gap_free_sequence(
    db_url: str, make_bus: MakeBus
) -> None:
    per_process = 150
    seen: list[tuple[int, str, int]] = []
    lock = threading.Lock()

    def record(d: Delivery) -> None:
        with lock:
            seen.append((d.position, d.event.attributes["tag"], d.event.attributes["i"]))

    # The subscriber runs while the publishers do, so an out-of-commit-order position
    # would be skipped here, not just show up in a final scan.
    bus = make_bus(poll_interval=0.01, batch_size=8)
    bus.subscribe("watcher", record)
    bus.start()
    children = [_spawn("publish", db_url, tag, str(per_process)) for tag in ("a", "b")]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        _out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    assert bus.drain(30)
    positions = [p for p, _, _ in seen]
    assert positions == list(range(1, 2 * per_process + 1)), "gap-free, ordered, no duplicates"
    for tag in ("a", "b"):
        assert [i for _, t, i in seen if t == tag] == list(range(per_process))
    tags = [t for _, t, _ in seen]
    switches = sum(1 for x, y in itertools.pairwise(tags) if x != y)
    assert switches > 1, "the two publishers did not actually overlap"


def test_consumer_process_killed_mid_batch_gets_the_events_again(
    db_url: str, engine: Engine, make_bus: MakeBus
) -> None:
    store = SqlOutbox(engine)
    store.append([ev(i) for i in range(10)])
    child = _spawn("crash", db_url, "killed", "6", "4")
    out, err = child.communicate(timeout=60)
    assert child.returncode == 3, err
    assert [int(x) for x in out.split()] == [1, 2, 3, 4, 5, 6]
    assert store.cursor("killed") == 4, "only the finished batch (1..4) was acknowledged"
    got: list[int] = []
    bus = make_bus()
    bus.subscribe("killed", lambda d: got.append(d.position))
    bus.start()
    assert bus.drain(10)
    assert got == [5, 6, 7, 8, 9, 10]
