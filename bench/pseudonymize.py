"""What the shared pseudonym mapping costs a request, against an in-process mapping.

The gateway's pseudonymize mode keeps value <-> placeholder in a store every worker shares
(database or Redis, envelope-encrypted).  The reference is the per-process vault that other
guard libraries keep (``MemoryMappingStore``: a dict, nothing sealed, nothing shared): the
difference is the price of sharing and sealing.  Per session turn, as the gateway does it
(a request without a session keeps its mapping in memory: the reference row is its cost):

- ``new``: a prompt with three findings (two distinct values) in a new session: two
  placeholders claimed and sealed, the mapping read back and the answer restored;
- ``known``: the same prompt later in the session: the session touched, the values found
  again (digest lookups), the mapping read and the answer restored.

Also the stream restorer: MB/s restoring an answer fed in 8-character chunks, against
joining the same chunks untouched (the floor any streaming restoration must pay).

PII detection is excluded (findings are computed once): it is measured in bench/pii.py.

    python bench/pseudonymize.py --quick     # a few seconds
    python bench/pseudonymize.py             # more requests

PostgreSQL runs when TSUBA_TEST_DATABASE_URL is set (a scratch database), Redis when
TSUBA_TEST_REDIS_URL is set.  Figures go to bench/results/pseudonymize.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from scratch import scratch_postgres
from tsuba.core.keys import KeyKind
from tsuba.core.keys.local import LocalKeyManager
from tsuba.core.keys.master import MasterSecret
from tsuba.core.storage import open_engine, upgrade
from tsuba.gateway.content_guards import Pseudonyms
from tsuba.guards import pii
from tsuba.guards.anonymize import (
    MappingStore,
    MemoryMappingStore,
    StreamRestorer,
    anonymize,
    deanonymize,
)
from tsuba.guards.anonymize.redis_store import RedisMappingStore
from tsuba.guards.anonymize.store import SqlMappingStore

RESULTS = Path(__file__).parent / "results" / "pseudonymize.json"
PROMPT = ("Please draft a reply to Olga Brandt (olga.brandt@mailbox.example) and copy "
          "olga.brandt@mailbox.example on it.")


def timings(step: Callable[[int], None], n: int) -> dict[str, float]:
    step(-1)  # warm up (first connection, key objects)
    times = []
    for i in range(n):
        start = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - start)
    times.sort()
    return {
        "requests": n,
        "p50_ms": round(statistics.median(times) * 1000, 3),
        "p99_ms": round(times[min(n - 1, int(n * 0.99))] * 1000, 3),
        "per_second": round(n / sum(times), 1),
    }


def per_turn(store: MappingStore, findings: list[Any], n: int) -> dict[str, Any]:
    def new(i: int) -> None:
        key = f"tss.{uuid.uuid4().hex}"
        out = anonymize(PROMPT, findings, session=key, store=store)
        assert deanonymize(out.text, mapping=store.mapping(key)) == PROMPT

    session = f"tss.{uuid.uuid4().hex}"
    gateway = Pseudonyms(store, "pii", 3600.0)  # touches as the gateway does: now and then

    def known(i: int) -> None:
        gateway.touch(session)
        out = anonymize(PROMPT, findings, session=session, store=store)
        assert deanonymize(out.text, mapping=store.mapping(session)) == PROMPT

    return {"new": timings(new, n), "known": timings(known, n)}


def stream_rates(size: int, rounds: int) -> dict[str, Any]:
    mapping = {f"<PERSON_{i}>": f"Person Number{i}" for i in range(1, 20)}
    unit = "Dear <PERSON_3>, as <PERSON_12> said: 3 < 4 and x<y. "
    text = (unit * (size // len(unit) + 1))[:size]
    chunks = [text[i : i + 8] for i in range(0, len(text), 8)]

    def plain() -> str:
        return "".join(chunks)

    def restored() -> str:
        r = StreamRestorer(mapping)
        return "".join(r.feed(c) for c in chunks) + r.flush()

    best: dict[str, float] = {"passthrough": 0.0, "restorer": 0.0}
    for _ in range(rounds):
        for name, fn in (("passthrough", plain), ("restorer", restored)):
            start = time.perf_counter()
            fn()
            best[name] = max(best[name], size / (time.perf_counter() - start) / 1e6)
    return {k: round(v, 1) for k, v in best.items()} | {"chunk_chars": 8, "chars": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few requests, a few seconds")
    args = parser.parse_args()
    n = 40 if args.quick else 400
    findings = pii.analyze(PROMPT, ["PERSON", "EMAIL_ADDRESS"])
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        keys = LocalKeyManager.initialise(
            Path(tmp) / "keyring.json", MasterSecret(source="bench", key=os.urandom(32))
        )
        keys.create("data", KeyKind.AES256_GCM)
        results["memory (reference)"] = per_turn(MemoryMappingStore(), findings, n)
        engine = open_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        results["sqlite"] = per_turn(SqlMappingStore(engine, keys), findings, n)
        engine.dispose()
        with scratch_postgres() as pg_url:
            if pg_url:
                engine = open_engine(pg_url)
                upgrade(engine)
                results["postgresql"] = per_turn(SqlMappingStore(engine, keys), findings, n)
                engine.dispose()
        redis_url = os.environ.get("TSUBA_TEST_REDIS_URL")
        if redis_url:
            import redis  # noqa: PLC0415 -- the optional 'redis' extra

            client = redis.Redis.from_url(redis_url)
            prefix = f"tsuba-bench:{uuid.uuid4().hex}:"
            results["redis"] = per_turn(
                RedisMappingStore(client, keys, prefix=prefix), findings, n
            )
            for key in client.scan_iter(match=prefix + "*"):
                client.delete(key)
            client.close()
    stream = stream_rates(16_384 if args.quick else 262_144, 3 if args.quick else 7)
    doc = {
        "benchmark": "pseudonymize",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "mode": "quick" if args.quick else "full",
        "note": "shared machine: figures are provisional",
        "stores": results,
        "stream_restorer_mb_per_s": stream,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'store':<20} {'flow':<8} {'p50 ms':>9} {'p99 ms':>9} {'req/s':>9}")
    for store, flows in results.items():
        for flow, t in flows.items():
            print(f"{store:<20} {flow:<8} {t['p50_ms']:>9} {t['p99_ms']:>9} {t['per_second']:>9}")
    print(f"stream restorer: {stream['restorer']} MB/s "
          f"(passthrough {stream['passthrough']} MB/s, 8-character chunks)")


if __name__ == "__main__":
    main()
