"""Audit log: durable appends/s, verified entries/s, proof size and time, beside raw limits.

    python bench/audit.py --quick     # 1e4 entries, a few seconds
    python bench/audit.py             # 1e5 and 1e6 entries

Runs on SQLite, and on PostgreSQL too when TSUBA_TEST_DATABASE_URL is set (a fresh
database is created and dropped).  Side by side, the same machine's raw limits with the
same bytes and the same durability settings: plain driver ``executemany`` and one commit
per row (what a durable append costs without grouping), and plain ``hashlib`` over the
entries (in memory, and streamed from the database).  Figures go to
bench/results/audit.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tsuba.core.audit import AuditLog, PrivateKeySigner, merkle
from tsuba.core.events import SecurityEvent
from tsuba.core.storage import open_engine, upgrade

RESULTS = Path(__file__).parent / "results" / "audit.json"
DISTINCT_EVENTS = 10_000  # events are reused to build big logs; the log does not care


def make_events(n: int) -> list[SecurityEvent]:
    return [
        SecurityEvent.from_dict({
            "class": "api_activity", "activity": "query", "severity": "info",
            "actor": f"svc-{i % 97}", "resource": "model/gpt-x", "outcome": "success",
            "message": f"chat completion {i}", "src_ip": "10.0.0.7",
            "attributes": {"tokens_in": 120 + i % 50, "tokens_out": 380, "route": "/v1/chat"},
        })
        for i in range(n)
    ]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


# -- tsuba ---------------------------------------------------------------------------------

def bench_threads(log: AuditLog, events: list[SecurityEvent], threads: int, count: int) -> float:
    per = count // threads
    mine = [[events[(t * per + i) % len(events)] for i in range(per)] for t in range(threads)]
    start = threading.Barrier(threads + 1)

    def work(batch: list[SecurityEvent]) -> None:
        start.wait()
        for ev in batch:
            log.append(ev)

    workers = [threading.Thread(target=work, args=(b,)) for b in mine]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    return per * threads / (time.perf_counter() - t0)


def fill(log: AuditLog, events: list[SecurityEvent], count: int, chunk: int) -> float:
    t0 = time.perf_counter()
    done = 0
    while done < count:
        n = min(chunk, count - done)
        start = done % len(events)
        batch = (events[start:] + events)[:n]
        log.append_many(batch)
        done += n
    return count / (time.perf_counter() - t0)


def bench_proofs(log: AuditLog, size: int, samples: int) -> dict[str, Any]:
    rng = random.Random(7)
    inc_times, inc_hashes, inc_json = [], [], []
    for _ in range(samples):
        i = rng.randrange(size)
        dt, proof = timed(lambda i=i: log.inclusion_proof(i, size))
        inc_times.append(dt)
        inc_hashes.append(len(proof.inclusion_path))
        inc_json.append(len(json.dumps(proof.to_dict())))
    con_times, con_hashes = [], []
    for _ in range(samples):
        m = rng.randrange(1, size)
        dt, proof = timed(lambda m=m: log.consistency_proof(m, size))
        con_times.append(dt)
        con_hashes.append(len(proof.path))
    root = log.root_at(size)
    check = log.inclusion_proof(size // 3, size)
    assert merkle.verify_inclusion(size // 3, size, check.leaf_hash, check.inclusion_path, root)
    return {
        "tree_size": size,
        "samples": samples,
        "inclusion": {
            "hashes_avg": sum(inc_hashes) / samples, "hashes_max": max(inc_hashes),
            "bytes_avg": 32 * sum(inc_hashes) / samples,
            "json_bytes_avg": sum(inc_json) / samples,
            "ms_avg": 1000 * sum(inc_times) / samples, "ms_max": 1000 * max(inc_times),
        },
        "consistency": {
            "hashes_avg": sum(con_hashes) / samples, "hashes_max": max(con_hashes),
            "bytes_avg": 32 * sum(con_hashes) / samples,
            "ms_avg": 1000 * sum(con_times) / samples, "ms_max": 1000 * max(con_times),
        },
    }


def bench_backend(url: str, sizes: list[int], appends: int, threads: list[int],
                  chunk: int, proof_samples: int) -> dict[str, Any]:
    events = make_events(DISTINCT_EVENTS)
    out: dict[str, Any] = {"appends_threads": [], "verify": []}
    eng = open_engine(url)
    upgrade(eng)
    signer = PrivateKeySigner.generate()
    with AuditLog(eng, signer) as log:
        for n in threads:
            rate = bench_threads(log, events, n, appends)
            out["appends_threads"].append({"threads": n, "appends": appends, "per_s": rate})
            print(f"  append() x {n:>4} threads   {rate:>12,.0f} /s", flush=True)
        rate = fill(log, events, appends, chunk)
        out["append_many"] = {"chunk": chunk, "appends": appends, "per_s": rate}
        print(f"  append_many(chunk {chunk})  {rate:>12,.0f} /s", flush=True)
        log.sign_tree_head()
    eng.dispose()

    vurl = _fresh_sibling(url, "verify")
    veng = open_engine(vurl)
    upgrade(veng)
    with AuditLog(veng, signer) as log:
        have = 0
        for size in sizes:
            fill(log, events, size - have, 10_000)
            have = size
            log.sign_tree_head()
            dt, report = timed(log.verify)
            assert report.ok and report.size == size, report
            out["verify"].append({"entries": size, "seconds": dt, "per_s": size / dt})
            print(f"  verify {size:>9,} entries   {size / dt:>12,.0f} /s", flush=True)
        out["proofs"] = bench_proofs(log, sizes[-1], proof_samples)
        p = out["proofs"]
        print(f"  inclusion proof @{sizes[-1]:,}: {p['inclusion']['hashes_avg']:.1f} hashes, "
              f"{p['inclusion']['ms_avg']:.2f} ms; consistency: "
              f"{p['consistency']['hashes_avg']:.1f} hashes, {p['consistency']['ms_avg']:.2f} ms",
              flush=True)
    veng.dispose()
    _drop_sibling(vurl)
    return out


# -- raw references --------------------------------------------------------------------------

def sqlite_reference(path: Path, datas: list[bytes], chunk: int, single: int) -> dict[str, Any]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE raw (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL)")
    t0 = time.perf_counter()
    for start in range(0, len(datas), chunk):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO raw (idx, entry) VALUES (?, ?)",
                         [(start + i, d) for i, d in enumerate(datas[start:start + chunk])])
        conn.execute("COMMIT")
    many = len(datas) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    base = len(datas)
    for i in range(single):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO raw (idx, entry) VALUES (?, ?)", (base + i, datas[i]))
        conn.execute("COMMIT")
    one = single / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    n = 0
    sha = hashlib.sha256
    for (entry,) in conn.execute("SELECT entry FROM raw ORDER BY idx"):
        sha(b"\x00" + entry).digest()
        n += 1
    read_hash = n / (time.perf_counter() - t0)
    conn.close()
    return {"executemany_per_s": many, "commit_per_row_per_s": one,
            "select_and_hash_per_s": read_hash}


def pg_reference(url: str, datas: list[bytes], chunk: int, single: int) -> dict[str, Any]:
    import psycopg  # noqa: PLC0415 -- only with PostgreSQL configured

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE raw (idx BIGINT PRIMARY KEY, entry BYTEA NOT NULL)")
        conn.commit()
        t0 = time.perf_counter()
        for start in range(0, len(datas), chunk):
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO raw (idx, entry) VALUES (%s, %s)",
                                [(start + i, d) for i, d in enumerate(datas[start:start + chunk])])
            conn.commit()
        many = len(datas) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(single):
            conn.execute("INSERT INTO raw (idx, entry) VALUES (%s, %s)", (len(datas) + i, datas[i]))
            conn.commit()
        one = single / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        n = 0
        sha = hashlib.sha256
        with conn.cursor(name="scan") as cur:
            cur.itersize = 20_000
            cur.execute("SELECT entry FROM raw ORDER BY idx")
            for (entry,) in cur:
                sha(b"\x00" + entry).digest()
                n += 1
        read_hash = n / (time.perf_counter() - t0)
    return {"executemany_per_s": many, "commit_per_row_per_s": one,
            "select_and_hash_per_s": read_hash}


def hashlib_reference(datas: list[bytes]) -> float:
    sha = hashlib.sha256
    t0 = time.perf_counter()
    for d in datas:
        sha(b"\x00" + d).digest()
    return len(datas) / (time.perf_counter() - t0)


# -- PostgreSQL databases --------------------------------------------------------------------

_PG_ADMIN = os.environ.get("TSUBA_TEST_DATABASE_URL")


def _fresh_sibling(url: str, what: str) -> str:
    if not url.startswith("postgresql"):
        return url.replace(".db", f"-{what}.db")
    name = f"tsuba_bench_{what}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _drop_sibling(url: str) -> None:
    if not url.startswith("postgresql") or _PG_ADMIN is None:
        return
    name = make_url(url).database
    admin = create_engine(_PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def pg_database() -> Iterator[str]:
    assert _PG_ADMIN is not None
    url = _fresh_sibling(_PG_ADMIN, "main")
    try:
        yield url
    finally:
        _drop_sibling(url)


# -- main ------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1e4 entries, a few seconds")
    args = parser.parse_args()
    if args.quick:
        sizes, appends, threads, proof_samples = [10_000], 4_000, [64], 50
    else:
        sizes, appends, threads, proof_samples = [100_000, 1_000_000], 50_000, [16, 64, 256], 200
    chunk = 1_000
    datas = [e.canonical_bytes() for e in make_events(DISTINCT_EVENTS)]
    ref_datas = (datas * (sizes[0] // len(datas) + 1))[: sizes[0]]
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "provisional": True,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "load_avg_at_start": os.getloadavg()[0],  # the machine may be shared
        },
        "entry_bytes_avg": sum(map(len, datas)) / len(datas),
        "goals": {"durable_appends_per_s": 20_000, "verified_entries_per_s": 200_000},
    }
    results["hashlib_leaf_hash_per_s"] = hashlib_reference(ref_datas)
    print(f"hashlib leaf hashes (in memory)   {results['hashlib_leaf_hash_per_s']:>12,.0f} /s")

    tmp = Path(tempfile.mkdtemp(prefix="tsuba-bench-audit-"))
    try:
        print("SQLite (WAL, synchronous=FULL)")
        results["sqlite"] = bench_backend(
            f"sqlite:///{tmp / 'audit.db'}", sizes, appends, threads, chunk, proof_samples)
        ref = sqlite_reference(tmp / "raw.db", ref_datas, chunk, 2_000)
        results["sqlite"]["reference"] = ref
        print(f"  raw sqlite3 executemany         {ref['executemany_per_s']:>12,.0f} /s")
        print(f"  raw sqlite3 commit per row      {ref['commit_per_row_per_s']:>12,.0f} /s")
        print(f"  raw select + hashlib            {ref['select_and_hash_per_s']:>12,.0f} /s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if _PG_ADMIN:
        print("PostgreSQL")
        with pg_database() as url:
            results["postgresql"] = bench_backend(
                url, sizes, appends, threads, chunk, proof_samples)
        with pg_database() as url:
            ref = pg_reference(url, ref_datas, chunk, 1_000)
        results["postgresql"]["reference"] = ref
        print(f"  raw psycopg executemany         {ref['executemany_per_s']:>12,.0f} /s")
        print(f"  raw psycopg commit per row      {ref['commit_per_row_per_s']:>12,.0f} /s")
        print(f"  raw select + hashlib            {ref['select_and_hash_per_s']:>12,.0f} /s")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
