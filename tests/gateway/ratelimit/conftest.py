"""Fixtures: a limiter factory on both backends, and a Redis key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from ratelimit_support import REDIS_URL, FakeClock, Harness, delete_prefix, redis_offset

from tsuba.core.config import LimitsSettings
from tsuba.gateway.ratelimit import MemoryLimiter, RedisLimiter


@pytest.fixture
def redis_url() -> str:
    if not REDIS_URL:
        pytest.skip("Redis not configured (source .ci/services.sh to set TSUBA_TEST_REDIS_URL)")
    return REDIS_URL


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A key prefix of its own for this test, removed afterwards."""
    value = "{rl-test-" + uuid.uuid4().hex[:12] + "}:"
    yield value
    if REDIS_URL:
        delete_prefix(REDIS_URL, value)


@pytest.fixture(params=["memory", "redis"])
def make(request: pytest.FixtureRequest, prefix: str):  # type: ignore[no-untyped-def]
    """``make(limits) -> Harness`` on the in-process and on the Redis backend."""
    if request.param == "redis" and not REDIS_URL:
        pytest.skip("Redis not configured (source .ci/services.sh to set TSUBA_TEST_REDIS_URL)")

    def factory(limits: LimitsSettings) -> Harness:
        if request.param == "memory":
            clock = FakeClock()
            return Harness(MemoryLimiter(limits, clock=clock), clock)
        from redis.asyncio import Redis

        assert REDIS_URL is not None
        limiter = RedisLimiter(
            limits,
            client=Redis.from_url(REDIS_URL),
            key_prefix=prefix,
            time_offset=redis_offset(REDIS_URL),
        )
        return Harness(limiter, None)

    return factory
