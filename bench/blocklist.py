"""The gateway's IP block check: tsuba's cached per-prefix tables against two references.

- ``tsuba``: ``IpBlocklist.blocked`` as the gateway calls it on every request (the version
  is read at most once a second, the list only when it moved; the figure is the steady
  state between reads, and the reload and version-read costs are shown beside it);
- ``scan``: the plain way with the standard library, ``any(addr in net for net in nets)``
  over the same networks, already parsed;
- ``query``: a database lookup per request of the exact address (SQLAlchemy, one indexed
  row read on SQLite, and on PostgreSQL when TSUBA_TEST_DATABASE_URL is set); it sees
  single addresses only, not networks, so it is a floor for any per-request query.

The list holds N entries: 80 % single addresses, 20 % networks of /16 to /30 (IPv4) or
/40 to /64 (IPv6).  Half of the probed addresses are blocked.  Answers are checked equal
(tsuba against scan) before timing.

    python bench/blocklist.py --quick     # a few seconds
    python bench/blocklist.py             # full sizes

Figures go to bench/results/blocklist.json.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from scratch import scratch_postgres
from tsuba.core.storage import open_engine, upgrade
from tsuba.soar.blocklist import IpBlocklist, block_network
from tsuba.soar.models import BlockedIpRow

RESULTS = Path(__file__).parent / "results" / "blocklist.json"


def make_list(n: int, seed: int = 5) -> list[Any]:
    rng = random.Random(seed)
    nets: dict[str, Any] = {}
    while len(nets) < n:
        v6 = rng.random() < 0.25
        bits = 128 if v6 else 32
        wide = rng.randint(40, 64) if v6 else rng.randint(16, 30)
        prefix = bits if rng.random() < 0.8 else wide
        base = (0x20010DB8 << 96) if v6 else (100 << 24)
        value = base | rng.getrandbits(bits - (32 if v6 else 8))
        net = ipaddress.ip_network((value >> (bits - prefix) << (bits - prefix), prefix))
        nets[str(net)] = net
    return list(nets.values())


def make_probes(nets: list[Any], count: int, seed: int = 9) -> list[str]:
    rng = random.Random(seed)
    probes = []
    for i in range(count):
        if i % 2 == 0:
            net = rng.choice(nets)
            probes.append(str(net.network_address + rng.randrange(net.num_addresses)))
        else:
            probes.append(str(ipaddress.ip_address((11 << 24) | rng.getrandbits(24))))
    return probes


def per_check(fn: Callable[[str], object], probes: list[str], repeats: int) -> dict[str, float]:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for p in probes:
            fn(p)
        best = min(best, time.perf_counter() - start)
    return {"us_per_check": round(best / len(probes) * 1e6, 3),
            "checks_per_second": round(len(probes) / best, 1)}


def run_backend(url: str, sizes: list[int], probes_n: int, repeats: int) -> dict[str, Any]:
    engine = open_engine(url)
    upgrade(engine)
    out: dict[str, Any] = {}
    loaded = 0
    try:
        for n in sizes:
            nets = make_list(n)
            for net in nets[loaded:]:
                block_network(engine, str(net), reason="bench", actor="bench")
            loaded = n
            probes = make_probes(nets, probes_n)
            check = IpBlocklist(engine, refresh_seconds=60)
            parsed = [ipaddress.ip_network(str(n)) for n in nets]

            def scan(ip: str, parsed: list[Any] = parsed) -> bool:
                addr = ipaddress.ip_address(ip)
                return any(addr in net for net in parsed)

            for p in probes[:2000]:
                assert (check.blocked(p) is not None) == scan(p), p
            start = time.perf_counter()
            check.invalidate()
            check.blocked("192.0.2.1")
            reload_ms = (time.perf_counter() - start) * 1000
            unchanged = IpBlocklist(engine, refresh_seconds=0)
            unchanged.blocked("192.0.2.1")
            start = time.perf_counter()
            for _ in range(20):
                unchanged.blocked("192.0.2.1")  # reads the version, not the list
            version_ms = (time.perf_counter() - start) * 1000 / 20
            cutoff = datetime.now(UTC)

            def query(ip: str, cutoff: datetime = cutoff) -> bool:
                host = f"{ip}/{32 if '.' in ip else 128}"
                with Session(engine) as s:
                    return s.scalar(select(BlockedIpRow.id).where(
                        BlockedIpRow.network == host,
                        or_(BlockedIpRow.expires_at.is_(None),
                            BlockedIpRow.expires_at > cutoff))) is not None

            few = probes[: max(200, probes_n // 20)]
            out[str(n)] = {
                "tsuba": per_check(check.blocked, probes, repeats),
                "scan": per_check(scan, probes[: max(200, probes_n // 10)], repeats),
                "query": per_check(query, few, max(1, repeats // 2)),
                "tsuba_reload_ms": round(reload_ms, 2),
                "tsuba_version_read_ms": round(version_ms, 3),
            }
            print(f"  {n:>6} entries: tsuba {out[str(n)]['tsuba']['us_per_check']:>8} us"
                  f"   scan {out[str(n)]['scan']['us_per_check']:>10} us"
                  f"   query {out[str(n)]['query']['us_per_check']:>8} us"
                  f"   reload {reload_ms:.1f} ms (unchanged: {version_ms:.2f} ms)")
    finally:
        engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    args = parser.parse_args()
    sizes = [10, 100, 1000] if args.quick else [10, 100, 1000, 10_000]
    probes, repeats = (2000, 3) if args.quick else (20_000, 5)
    results: dict[str, Any] = {
        "benchmark": "blocklist",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "platform": platform.platform()},
        "mode": "quick" if args.quick else "full",
        "sizes": sizes, "probes": probes,
        "backends": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        print("sqlite:")
        results["backends"]["sqlite"] = run_backend(
            f"sqlite:///{Path(tmp) / 'bench.db'}", sizes, probes, repeats)
    with scratch_postgres() as pg:
        if pg is not None:
            print("postgresql:")
            results["backends"]["postgresql"] = run_backend(pg, sizes, probes, repeats)
        else:
            results["backends"]["postgresql"] = "skipped: TSUBA_TEST_DATABASE_URL unset"
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
