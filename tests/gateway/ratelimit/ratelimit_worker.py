"""One gateway-like process: N concurrent admissions against a shared Redis limiter.

Run by test_ratelimit_processes.py as ``python ratelimit_worker.py URL PREFIX OFFSET CONFIG
PRINCIPAL COUNT TOKENS``.  It announces itself on ``PREFIX:ready``, waits for ``PREFIX:go``
so that every process starts at once, then prints one JSON line with what it was granted.
"""

from __future__ import annotations

import asyncio
import json
import sys

from redis.asyncio import Redis

from tsuba.core.config import LimitsSettings
from tsuba.core.errors import RateLimitedError
from tsuba.gateway.context import LimitRequest
from tsuba.gateway.ratelimit import RedisLimiter


async def main(url: str, prefix: str, offset: float, config: str, principal: str,
               count: int, tokens: int) -> None:
    limits = LimitsSettings.model_validate(json.loads(config))
    limiter = RedisLimiter(limits, client=Redis.from_url(url), key_prefix=prefix,
                           time_offset=offset)
    control = Redis.from_url(url)
    await control.rpush(prefix + "ready", principal)
    if await control.blpop([prefix + "go"], timeout=60) is None:
        raise SystemExit("no go signal within 60 s")

    async def one() -> tuple[bool, str]:
        try:
            await limiter.admit(LimitRequest(principal, "demo", tokens))
        except RateLimitedError as exc:
            return False, exc.message
        return True, ""

    results = await asyncio.gather(*(one() for _ in range(count)))
    refusals = sorted({message.split(":")[0] for ok, message in results if not ok})
    print(json.dumps({"admitted": sum(ok for ok, _ in results), "refused": refusals}))
    await limiter.aclose()
    await control.aclose()


if __name__ == "__main__":
    url, prefix, offset, config, principal, count, tokens = sys.argv[1:8]
    asyncio.run(main(url, prefix, float(offset), config, principal, int(count), int(tokens)))
