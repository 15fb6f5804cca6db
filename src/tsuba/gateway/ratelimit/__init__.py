"""Rate limits, quotas and budgets for the gateway, in process or in Redis.

Per principal, per model, per principal on a model, and for the whole gateway: request
rates (GCRA with burst), tokens per minute and per day, spend per day and per month, and
concurrent requests.  Budgets are admitted by reserve-then-settle (see ``admission``), so
concurrent requests can never overshoot them, unlike gateways that check first and charge
after the response.

    limiter = build_limiter(settings.gateway.limits)
    admission = await limiter.admit(LimitRequest("alice", "demo", estimated_tokens=1200))
    try:
        ...  # call the upstream
        await admission.settle(usage.total_tokens, limiter.cost("demo", p, c) or 0.0)
    finally:
        await admission.release()  # no-op after settle; refunds if the upstream failed
"""

from __future__ import annotations

from tsuba.core.config import LimitsSettings, Settings
from tsuba.gateway.ratelimit.admission import BaseLimiter, LimitExceeded, Reservation
from tsuba.gateway.ratelimit.events import limit_event
from tsuba.gateway.ratelimit.headers import CheckState, rate_limit_headers
from tsuba.gateway.ratelimit.memory import MemoryLimiter
from tsuba.gateway.ratelimit.policy import Check, Kind, LimitPolicy, Scope
from tsuba.gateway.ratelimit.redis_backend import RedisLimiter


def build_limiter(settings: LimitsSettings | Settings) -> BaseLimiter:
    """The limiter the settings ask for (``memory`` or ``redis``)."""
    limits = settings.gateway.limits if isinstance(settings, Settings) else settings
    if limits.backend == "redis":
        return RedisLimiter(limits)
    return MemoryLimiter(limits)


__all__ = [
    "BaseLimiter",
    "Check",
    "CheckState",
    "Kind",
    "LimitExceeded",
    "LimitPolicy",
    "MemoryLimiter",
    "RedisLimiter",
    "Reservation",
    "Scope",
    "build_limiter",
    "limit_event",
    "rate_limit_headers",
]
