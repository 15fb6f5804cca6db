"""Limits in Redis: every decision is exactly one Lua script call, so it is atomic.

``admit`` is one EVALSHA that refunds expired reservations, evaluates every applicable
limit and reserves on all of them or none; ``settle`` and ``release`` are one EVALSHA each.
Two gateway processes, or two machines, can therefore never both take the last unit of a
budget: Redis runs one script at a time.  Time comes from the Redis server (``TIME``), so
the gateways' own clocks never matter.  When Redis cannot be reached the request is refused
(fail closed) with a StorageError.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

from tsuba.core.config import LimitsSettings
from tsuba.core.errors import ConfigError, StorageError
from tsuba.gateway.ratelimit.admission import BaseLimiter, Verdict
from tsuba.gateway.ratelimit.headers import CheckState
from tsuba.gateway.ratelimit.policy import Check, Kind

_US = 1_000_000
_WINDOW_CODE = {"minute": "m", "day": "d", "month": "M"}
_SETTLE_TRIES = 3


def _script(name: str) -> str:
    return resources.files("tsuba.gateway.ratelimit").joinpath("lua", name).read_text("utf-8")


ADMIT_LUA = _script("admit.lua")
FINISH_LUA = _script("finish.lua")


class RedisLimiter(BaseLimiter):
    """Limits shared by every gateway process that uses the same Redis and key prefix.

    ``time_offset`` (seconds) is added to the server's clock; tests use it to step through
    windows and expiry without sleeping.
    """

    def __init__(
        self,
        settings: LimitsSettings,
        *,
        client: Any = None,
        key_prefix: str | None = None,
        time_offset: float = 0.0,
    ) -> None:
        super().__init__(settings)
        if client is None:
            if settings.redis_url is None:
                raise ConfigError(
                    "gateway.limits.backend is 'redis' but gateway.limits.redis_url is unset: "
                    "set it (e.g. redis://host:6379/0) or use backend 'memory'"
                )
            client = _connect(settings.redis_url.get_secret_value())
        self._redis = client
        self.prefix = key_prefix if key_prefix is not None else settings.key_prefix
        self.time_offset = time_offset
        self._records = f"{self.prefix}reservations"
        self._expiry = f"{self.prefix}expiry"
        self._admit = client.register_script(ADMIT_LUA)
        self._finish_script = client.register_script(FINISH_LUA)
        self._timeout_us = str(round(self.timeout * _US))

    def now(self) -> float:
        return time.time() + self.time_offset

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def _decide(self, rid: str, checks: Sequence[Check]) -> Verdict:
        keys = [self._records, self._expiry]
        specs: list[str] = []
        for check in checks:
            keys.append(self.prefix + check.key)
            if check.kind is Kind.REQUESTS:
                specs.append(f"g {check.burst} 1 {check.emission * _US!r}")
            elif check.kind is Kind.CONCURRENT:
                specs.append(f"c {check.limit} 1 0")
            else:
                window = check.kind.window
                assert window is not None
                specs.append(f"{_WINDOW_CODE[window]} {check.limit} {check.amount} 0")
        offset = str(round(self.time_offset * _US))
        reply = await self._call(
            self._admit, keys, [rid, self._timeout_us, offset, "\n".join(specs)]
        )
        admitted, refused, retry, now = (int(v) for v in reply[:4])
        lines = reply[4].decode().split("\n") if checks else []
        states: list[CheckState] = []
        handles: list[str] = []
        for check, line in zip(checks, lines, strict=True):
            left, reset, used, key = line.split(" ", 3)
            states.append(CheckState(int(left), int(reset) / _US, int(used)))
            handles.append("" if check.kind is Kind.REQUESTS else key)
        if not admitted:
            return Verdict(False, tuple(states), now / _US, refused - 1, retry / _US)
        return Verdict(True, tuple(states), now / _US, handles=tuple(handles))

    async def _finish(
        self, rid: str, held: Sequence[tuple[Check, str]], actuals: Sequence[int]
    ) -> None:
        keys = [self._records, self._expiry]
        args: list[str | int] = [rid, self._timeout_us]
        for (check, key), actual in zip(held, actuals, strict=True):
            keys.append(key)
            args += ["c" if check.kind is Kind.CONCURRENT else "w", actual]
        # A lost settlement would leave the usage uncharged once the reservation expires:
        # retry briefly before giving up.
        for attempt in range(_SETTLE_TRIES):
            try:
                await self._call(self._finish_script, keys, args)
                return
            except StorageError:
                if attempt == _SETTLE_TRIES - 1:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))

    async def _call(self, script: Any, keys: list[str], args: list[str | int]) -> Any:
        from redis.exceptions import RedisError  # noqa: PLC0415

        try:
            return await script(keys=keys, args=args)
        except RedisError as exc:
            raise StorageError(
                f"rate limit store (Redis) failed: {exc}; requests are refused until it "
                "answers again"
            ) from exc


def _connect(url: str) -> Any:
    try:
        from redis.asyncio import Redis  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on installed extras
        raise ConfigError(
            "the Redis limits backend needs the 'redis' package: pip install 'tsuba[redis]'"
        ) from exc
    try:
        return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    except ValueError as exc:
        raise ConfigError(f"gateway.limits.redis_url is not a valid Redis URL: {exc}") from exc
