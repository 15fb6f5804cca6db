"""Limiters on both backends, each with a clock the test can move forward.

The in-process limiter gets a fake clock.  The Redis limiter reads the Redis server's
clock, so it is moved with the limiter's test-only ``time_offset``; both start at the same
instant (a second after midnight UTC, 2030-01-01) so calendar windows line up, and every
test gets its own key prefix on the one real Redis server.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from tsuba.core.config import LimitsSettings
from tsuba.gateway.ratelimit import BaseLimiter, MemoryLimiter, RedisLimiter

REDIS_URL = os.environ.get("TSUBA_TEST_REDIS_URL")
START = datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC).timestamp()


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def settings(**config: Any) -> LimitsSettings:
    """Settings with only the given limits (no default per-principal limits)."""
    config.setdefault("principal_defaults", {})
    return LimitsSettings.model_validate(config)


class FakeClock:
    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Harness:
    """A limiter plus ``advance(seconds)``; ``close()`` is awaited by the test's coroutine."""

    def __init__(self, limiter: BaseLimiter, clock: FakeClock | None) -> None:
        self.limiter = limiter
        self._clock = clock

    @property
    def backend(self) -> str:
        return "memory" if isinstance(self.limiter, MemoryLimiter) else "redis"

    def advance(self, seconds: float) -> None:
        if self._clock is not None:
            self._clock.now += seconds
        else:
            assert isinstance(self.limiter, RedisLimiter)
            self.limiter.time_offset += seconds

    async def close(self) -> None:
        await self.limiter.aclose()


def redis_offset(url: str, at: float = START) -> float:
    """Offset that puts the Redis server's clock at ``at`` (epoch seconds)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        sec, usec = client.time()
    finally:
        client.close()
    return at - (sec + usec / 1e6)


def delete_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix.replace("[", "\\[") + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
