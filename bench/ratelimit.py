"""Rate limiting: tsuba's limiter (in-process and Redis) beside the ``limits`` package.

Figures, for each backend, as decisions per second and latency percentiles:

- ``tsuba-memory`` / ``tsuba-redis``: one ``admit`` evaluating four limits at once (request
  rate by GCRA, tokens per minute, tokens per day, concurrency) and reserving on all of them,
  then the ``settle`` that replaces the reservation by real usage: two decisions per request
  (on Redis, two script calls);
- ``limits-*-redis``: the ``limits`` package's moving window, fixed window and sliding window
  counter on the same Redis (redis-py), one ``hit`` each, which checks one limit and cannot
  reserve or refund;
- ``redis-incr``: a bare ``INCR`` round trip, the physical floor of any Redis limiter.

Latency is measured one call at a time; throughput with ``--concurrency`` calls in flight.
Then the overshoot check: 200 concurrent requests against a budget that allows exactly 50,
admitted by tsuba (reserve-then-settle) and by check-then-charge (read the budget, call the
upstream, charge after), the way gateways that overshoot do it.

    python bench/ratelimit.py --quick     # a few seconds
    python bench/ratelimit.py             # full sizes

Needs a Redis server: TSUBA_TEST_REDIS_URL (``source .ci/services.sh``) or ``--redis``.
Figures go to bench/results/ratelimit.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from tsuba.core.config import LimitsSettings
from tsuba.core.errors import RateLimitedError
from tsuba.gateway.context import LimitRequest
from tsuba.gateway.ratelimit import MemoryLimiter, RedisLimiter

try:  # the reference; installed with the test extra
    from limits import RateLimitItemPerMinute
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import (
        FixedWindowRateLimiter,
        MovingWindowRateLimiter,
        SlidingWindowCounterRateLimiter,
    )
except ImportError:  # reported in the results instead
    RedisStorage = None

RESULTS = Path(__file__).parent / "results" / "ratelimit.json"
PRINCIPALS = 100
BIG = 10**12  # limits that never refuse, so every call does the full work

Op = Callable[[int], Awaitable[None]]


def limits_config() -> LimitsSettings:
    return LimitsSettings.model_validate({"principal_defaults": {
        "requests": BIG, "interval_seconds": 60, "tokens_per_minute": BIG,
        "tokens_per_day": BIG, "concurrent": 1_000_000}})


async def measure(op: Op, n: int, concurrency: int) -> dict[str, float]:
    """Sequential latency percentiles, then throughput with ``concurrency`` in flight."""
    for i in range(min(200, n)):  # warm up connections and caches
        await op(i)
    lat: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        await op(i)
        lat.append(time.perf_counter() - t0)
    lat.sort()
    sem = asyncio.Semaphore(concurrency)

    async def bounded(i: int) -> None:
        async with sem:
            await op(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(bounded(i) for i in range(n)))
    elapsed = time.perf_counter() - t0
    return {
        "per_second_sequential": round(n / sum(lat), 1),
        "per_second_concurrent": round(n / elapsed, 1),
        "p50_us": round(lat[len(lat) // 2] * 1e6, 1),
        "p99_us": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6, 1),
        "mean_us": round(statistics.fmean(lat) * 1e6, 1),
    }


async def run_throughput(url: str, n: int, concurrency: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    prefix = "{bench-" + uuid.uuid4().hex[:8] + "}:"
    memory = MemoryLimiter(limits_config())

    async def tsuba_memory(i: int) -> None:
        admission = await memory.admit(LimitRequest(f"p{i % PRINCIPALS}", "demo", 500))
        await admission.settle(300)

    async def tsuba_memory_admit(i: int) -> None:
        await (await memory.admit(LimitRequest(f"p{i % PRINCIPALS}", "demo", 500))).release()

    out["tsuba-memory"] = await measure(tsuba_memory, n, concurrency)
    out["tsuba-memory-admit-release"] = await measure(tsuba_memory_admit, n, concurrency)

    client = Redis.from_url(url, max_connections=concurrency + 8)
    redis_limiter = RedisLimiter(limits_config(), client=client, key_prefix=prefix)

    async def tsuba_redis(i: int) -> None:
        admission = await redis_limiter.admit(LimitRequest(f"p{i % PRINCIPALS}", "demo", 500))
        await admission.settle(300)

    async def incr(i: int) -> None:
        await client.incr(f"{prefix}incr:{i % PRINCIPALS}")

    out["tsuba-redis"] = await measure(tsuba_redis, n, concurrency)
    out["redis-incr"] = await measure(incr, n, concurrency)

    if RedisStorage is not None:
        item = RateLimitItemPerMinute(BIG)
        for name, strategy in (("moving-window", MovingWindowRateLimiter),
                               ("fixed-window", FixedWindowRateLimiter),
                               ("sliding-window-counter", SlidingWindowCounterRateLimiter)):
            storage = RedisStorage(url.replace("redis://", "async+redis://", 1),
                                   implementation="redispy", key_prefix=f"{prefix}{name}")
            limiter = strategy(storage)

            async def hit(i: int, limiter: Any = limiter) -> None:
                await limiter.hit(item, f"p{i % PRINCIPALS}")

            out[f"limits-{name}-redis"] = await measure(hit, n, concurrency)
    else:
        out["limits"] = "not installed (pip install limits)"

    keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
    if keys:
        await client.delete(*keys)
    await redis_limiter.aclose()
    return out


async def run_overshoot(url: str, requests: int = 200, allowed: int = 50) -> dict[str, Any]:
    """Admitted requests out of ``requests`` against a budget of exactly ``allowed``."""
    tokens = 100
    budget = allowed * tokens
    prefix = "{bench-" + uuid.uuid4().hex[:8] + "}:"
    client = Redis.from_url(url, max_connections=requests + 8)
    config = LimitsSettings.model_validate({"principal_defaults": {"tokens_per_day": budget}})
    limiter = RedisLimiter(config, client=client, key_prefix=prefix)

    async def upstream() -> None:
        await asyncio.sleep(0.005)  # the model call between admission and usage

    async def tsuba_request() -> bool:
        try:
            admission = await limiter.admit(LimitRequest("alice", "demo", tokens))
        except RateLimitedError:
            return False
        await upstream()
        await admission.settle(tokens)
        return True

    async def check_then_charge() -> bool:
        used = int(await client.get(prefix + "naive") or 0)
        if used + tokens > budget:
            return False
        await upstream()
        await client.incrby(prefix + "naive", tokens)
        return True

    tsuba = sum(await asyncio.gather(*(tsuba_request() for _ in range(requests))))
    naive = sum(await asyncio.gather(*(check_then_charge() for _ in range(requests))))
    naive_spent = int(await client.get(prefix + "naive") or 0)
    keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
    if keys:
        await client.delete(*keys)
    await limiter.aclose()
    return {
        "requests": requests,
        "budget_allows": allowed,
        "tsuba_admitted": tsuba,
        "check_then_charge_admitted": naive,
        "check_then_charge_spent_percent_of_budget": round(100 * naive_spent / budget, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--redis", default=os.environ.get("TSUBA_TEST_REDIS_URL"))
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    if not args.redis:
        parser.error("no Redis: source .ci/services.sh or pass --redis redis://host:port/0")
    n = 2_000 if args.quick else 20_000
    throughput = asyncio.run(run_throughput(args.redis, n, args.concurrency))
    overshoot = asyncio.run(run_overshoot(args.redis))
    result = {
        "benchmark": "ratelimit",
        "mode": "quick" if args.quick else "full",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count()},
        "sizes": {"calls": n, "concurrency": args.concurrency, "principals": PRINCIPALS,
                  "tsuba_limits_per_request": 4},
        "note": "tsuba rows are admit + settle of one request (two decisions, on Redis two "
                "script calls) over four limits; limits rows are one hit on one limit",
        "throughput": throughput,
        "overshoot": overshoot,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'backend':36} {'seq/s':>10} {'conc/s':>10} {'p50 us':>9} {'p99 us':>9}")
    for name, row in throughput.items():
        if isinstance(row, dict):
            print(f"{name:36} {row['per_second_sequential']:>10} "
                  f"{row['per_second_concurrent']:>10} {row['p50_us']:>9} {row['p99_us']:>9}")
        else:
            print(f"{name:36} {row}")
    print(f"overshoot: {overshoot['requests']} requests, budget allows "
          f"{overshoot['budget_allows']}: tsuba admitted {overshoot['tsuba_admitted']}, "
          f"check-then-charge admitted {overshoot['check_then_charge_admitted']}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
