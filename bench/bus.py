"""Event bus: durable publish throughput, catch-up delivery rate and end-to-end latency.

Each figure is measured side by side with its physical reference on the same database in
the same run: the same canonical event bytes inserted through the bare driver with the same
durability (SQLite WAL + synchronous=FULL + BEGIN IMMEDIATE; PostgreSQL with fsync on,
one commit per transaction), and for latency that insert followed by a thread hand-off.
The gap between the two is what the bus itself costs: the head-row lock, the filter
columns, the cursor acknowledgements and the dispatcher.

    python bench/bus.py --quick      # a few seconds
    python bench/bus.py              # full sizes

PostgreSQL runs too when TSUBA_TEST_DATABASE_URL is set (a scratch database is created and
dropped).  Figures go to bench/results/bus.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from scratch import scratch_postgres
from tsuba.core.bus import Bus, Delivery, SqlOutbox
from tsuba.core.events import SecurityEvent
from tsuba.core.storage import open_engine, upgrade

RESULTS = Path(__file__).parent / "results" / "bus.json"

# The reference table: the outbox's columns without the bus around them.
_md = MetaData()
RAW = Table(
    "bench_raw_outbox",
    _md,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(128), nullable=False),
    Column("event_class", String(32), nullable=False),
    Column("severity", SmallInteger, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("payload", LargeBinary, nullable=False),
)


def make_events(n: int) -> list[SecurityEvent]:
    return [
        SecurityEvent(
            event_class="authentication",
            activity="logon",
            severity="medium" if i % 10 else "high",
            actor=f"user{i % 97}@example.com",
            resource="gateway/v1/chat/completions",
            outcome="failure" if i % 7 == 0 else "success",
            message="api key authentication",
            correlation_id=uuid.uuid4().hex,
            src_ip="203.0.113.7",
            attributes={"key_id": f"k{i % 13}", "route": "/v1/chat/completions"},
        )
        for i in range(n)
    ]


# -- the physical reference: bare driver, same bytes, same durability ----------------------
class RawWriter:
    """Inserts rows through the DBAPI connection with SQL compiled from a SQLAlchemy insert."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.kind = parsed.get_backend_name()
        dialect = sqlite.dialect() if self.kind == "sqlite" else postgresql.psycopg.dialect()
        self.sql = str(insert(RAW).compile(dialect=dialect))
        self.select_sql = str(
            select(RAW.c.position, RAW.c.payload).order_by(RAW.c.position).compile(dialect=dialect)
        )
        self.next = 1
        if self.kind == "sqlite":
            assert parsed.database
            # isolation_level IMMEDIATE makes sqlite3 itself issue BEGIN IMMEDIATE.
            self.conn: Any = sqlite3.connect(parsed.database, isolation_level="IMMEDIATE",
                                             check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")
        else:
            import psycopg  # noqa: PLC0415 - only needed when PostgreSQL is benchmarked

            self.conn = psycopg.connect(
                parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            )

    def row(self, event: SecurityEvent) -> dict[str, Any]:
        position, self.next = self.next, self.next + 1
        now = datetime.now(UTC)
        return {
            "position": position,
            "event_id": event.id,
            "event_class": event.event_class.value,
            "severity": int(event.severity),
            "event_time": event.time if self.kind != "sqlite" else event.time.isoformat(),
            "published_at": now if self.kind != "sqlite" else now.isoformat(),
            "payload": event.canonical_bytes(),
        }

    def write(self, events: list[SecurityEvent]) -> None:
        rows = [self.row(e) for e in events]
        if self.kind == "sqlite":
            sql = self.sql  # sqlite paramstyle is qmark: pass values in column order
            self.conn.executemany(sql, [tuple(r.values()) for r in rows])
        else:
            with self.conn.cursor() as cur:
                cur.executemany(self.sql, rows)
        self.conn.commit()

    def read_all(self) -> int:
        cur = self.conn.cursor()
        cur.execute(self.select_sql)
        n = len(cur.fetchall())
        self.conn.commit()
        return n

    def close(self) -> None:
        self.conn.close()


# -- measurement helpers -------------------------------------------------------------------
def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else float("inf")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49], 3), "p95_ms": round(cuts[94], 3),
            "p99_ms": round(cuts[98], 3), "max_ms": round(ms[-1], 3)}


def bench_backend(url: str, sizes: dict[str, int]) -> dict[str, Any]:
    engine = open_engine(url)
    upgrade(engine)
    _md.create_all(engine)
    raw = RawWriter(url)
    store = SqlOutbox(engine)
    out: dict[str, Any] = {}
    try:
        # 1. publish throughput, one event per transaction
        n = sizes["single"]
        events = make_events(n)
        bus = Bus(engine)
        t_bus = timed(lambda: [bus.publish(e) for e in events])
        t_raw = timed(lambda: [raw.write([e]) for e in events])
        out["publish_single"] = {"events": n, "tsuba_events_per_s": rate(n, t_bus),
                                 "reference_events_per_s": rate(n, t_raw)}

        # 2. publish throughput, batches of 100 per transaction
        n = sizes["batched"]
        events = make_events(n)
        batches = [events[i:i + 100] for i in range(0, n, 100)]
        t_bus = timed(lambda: [bus.publish_many(b) for b in batches])
        t_raw = timed(lambda: [raw.write(b) for b in batches])
        out["publish_batch_100"] = {"events": n, "tsuba_events_per_s": rate(n, t_bus),
                                    "reference_events_per_s": rate(n, t_raw)}

        # 3. catch-up delivery: a subscriber that was down reads the whole backlog
        backlog = store.head()
        delivered = [0]

        def count(_d: Delivery) -> None:
            delivered[0] += 1

        catch_up = Bus(engine, batch_size=500, poll_interval=0.05)
        catch_up.subscribe("bench-catch-up", count)
        start = time.perf_counter()
        catch_up.start()
        assert catch_up.drain(600), "catch-up did not finish"
        t_bus = time.perf_counter() - start
        catch_up.stop()
        assert delivered[0] == backlog
        rows = [0]
        t_raw = timed(lambda: rows.__setitem__(0, raw.read_all()))
        out["catch_up_delivery"] = {
            "events": backlog, "tsuba_events_per_s": rate(backlog, t_bus),
            "reference_events_per_s": rate(rows[0], t_raw),
            "reference": "one SELECT of every row in position order",
        }

        # 4. end-to-end latency: publish() call -> handler running, one event at a time
        n = sizes["latency"]
        events = make_events(n)
        arrived: dict[int, float] = {}
        got = threading.Event()

        def stamp(d: Delivery) -> None:
            arrived[d.position] = time.perf_counter()
            got.set()

        live = Bus(engine, poll_interval=1.0)
        live.subscribe("bench-latency", stamp, start="latest")
        live.start()
        samples = []
        for e in events:
            got.clear()
            t0 = time.perf_counter()
            pos = live.publish(e)
            assert got.wait(30), "event not delivered"
            samples.append(arrived[pos] - t0)
        live.stop()

        handoff: queue.Queue[float] = queue.Queue()
        ref_samples: list[float] = []
        done = threading.Event()

        def consume() -> None:
            while True:
                t0 = handoff.get()
                if t0 < 0:
                    return
                ref_samples.append(time.perf_counter() - t0)
                done.set()

        consumer = threading.Thread(target=consume)
        consumer.start()
        for e in events:
            done.clear()
            t0 = time.perf_counter()
            raw.write([e])
            handoff.put(t0)
            done.wait(30)
        handoff.put(-1.0)
        consumer.join()
        out["end_to_end_latency"] = {
            "events": n, "tsuba": percentiles(samples), "reference": percentiles(ref_samples),
            "reference_is": "durable insert + commit, then a queue hand-off to a thread",
        }
    finally:
        raw.close()
        engine.dispose()
    return out




def print_table(backend: str, res: dict[str, Any]) -> None:
    print(f"\n{backend}")
    print(f"  {'measure':<22}{'tsuba':>16}{'reference':>16}")
    for key in ("publish_single", "publish_batch_100", "catch_up_delivery"):
        r = res[key]
        print(f"  {key + ' ev/s':<22}{r['tsuba_events_per_s']:>16,.0f}"
              f"{r['reference_events_per_s']:>16,.0f}")
    lat = res["end_to_end_latency"]
    for p in ("p50_ms", "p95_ms", "p99_ms"):
        print(f"  {'latency ' + p:<22}{lat['tsuba'][p]:>16.2f}{lat['reference'][p]:>16.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = (
        {"single": 200, "batched": 2000, "latency": 100} if args.quick
        else {"single": 2000, "batched": 50000, "latency": 1000}
    )
    results: dict[str, Any] = {
        "benchmark": "bus",
        "mode": "quick" if args.quick else "full",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "sqlite": sqlite3.sqlite_version},
        "sizes": sizes,
        "backends": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        res = bench_backend(f"sqlite:///{tmp}/bench.db", sizes)
        results["backends"]["sqlite"] = res
        print_table("sqlite (WAL, synchronous=FULL)", res)
    pg = os.environ.get("TSUBA_TEST_DATABASE_URL")
    if pg:
        with scratch_postgres(pg) as url:
            res = bench_backend(url, sizes)
            results["backends"]["postgresql"] = res
            print_table("postgresql (fsync on)", res)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
