"""Reserve, then settle or release: what both backends share.

``admit`` reserves the request's estimate against every applicable limit in one atomic
step, or reserves nothing.  The caller then either ``settle``s with the upstream's real
usage (the reservation is replaced by it: a refund when less was used, an extra charge when
more) or ``release``s (the upstream failed: everything reserved is refunded and the
concurrency slot freed).  Both are idempotent: the first call counts and later ones do
nothing, so ``release()`` in a ``finally`` after ``settle`` is safe.  A reservation that is
never finished expires after ``reservation_timeout_seconds`` and is refunded; a settle that
arrives after that still charges the actual usage.
"""

from __future__ import annotations

import abc
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tsuba.core.config import LimitsSettings
from tsuba.core.errors import InputError, RateLimitedError
from tsuba.gateway.context import LimitRequest
from tsuba.gateway.ratelimit import windows
from tsuba.gateway.ratelimit.headers import CheckState, rate_limit_headers, retry_seconds
from tsuba.gateway.ratelimit.policy import Check, Kind, LimitPolicy, Plan, from_nano


@dataclass(frozen=True, slots=True)
class Verdict:
    """A backend's answer: admitted with every limit's state, or which check refused."""

    admitted: bool
    states: tuple[CheckState, ...]
    now: float  # the backend's clock, epoch seconds
    refused: int = -1
    retry_after: float = 0.0
    handles: tuple[str, ...] = ()  # per check: the backend key its reservation sits on


class LimitExceeded(RateLimitedError):
    """A named limit refused the request (HTTP 429)."""

    def __init__(
        self,
        message: str,
        *,
        limit: str,
        remaining: int,
        retry_after: float,
        headers: dict[str, str],
    ) -> None:
        super().__init__(message, retry_after=retry_after, headers=headers)
        self.limit = limit
        self.remaining = remaining


class Reservation:
    """A granted request's hold on its limits (implements ``Admission``)."""

    def __init__(
        self,
        limiter: BaseLimiter,
        *,
        rid: str,
        request: LimitRequest,
        plan: Plan,
        verdict: Verdict,
        headers: Mapping[str, str],
    ) -> None:
        self.id = rid
        self.request = request
        self.plan = plan
        self.states = verdict.states
        self.headers = headers
        self._limiter = limiter
        self._held = [
            (check, handle)
            for check, handle in zip(plan.checks, verdict.handles, strict=True)
            if handle
        ]
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def tightest(self) -> tuple[Check, CheckState] | None:
        """The limit with the smallest share left, for events and logs."""
        pairs = [(c, s) for c, s in zip(self.plan.checks, self.states, strict=True) if c.limit]
        if not pairs:
            return None
        return min(pairs, key=lambda cs: cs[1].remaining / cs[0].limit)

    async def settle(self, actual_tokens: int, actual_cost: float = 0.0) -> None:
        """Replace the reservation by real usage; ``actual_cost`` 0 means "price the tokens"."""
        if actual_tokens < 0 or actual_cost < 0 or not math.isfinite(actual_cost):
            raise InputError("actual tokens and cost must be finite and not negative")
        if self._done:
            return
        self._done = True
        if not self._held:
            return
        spend = self._limiter.policy.settled_spend(self.plan, actual_tokens, actual_cost)
        actuals = [
            spend if check.kind.is_spend else actual_tokens if check.kind.window else 0
            for check, _ in self._held
        ]
        await self._limiter._finish(self.id, self._held, actuals)

    async def release(self) -> None:
        """Refund everything reserved and free the concurrency slot (the upstream failed)."""
        if self._done:
            return
        self._done = True
        if self._held:
            await self._limiter._finish(self.id, self._held, [0] * len(self._held))


class BaseLimiter(abc.ABC):
    """Plans checks, refuses the impossible without a round trip, formats refusals."""

    def __init__(self, settings: LimitsSettings) -> None:
        self.settings = settings
        self.policy = LimitPolicy(settings)
        self.timeout = settings.reservation_timeout_seconds

    async def admit(self, request: LimitRequest) -> Reservation:
        plan = self.policy.plan(request)
        _refuse_impossible(plan, self.policy.spend_unit, self.now())
        rid = uuid.uuid4().hex
        if not plan.checks:  # nothing limits this request: no round trip
            verdict = Verdict(True, (), self.now())
            return Reservation(self, rid=rid, request=request, plan=plan, verdict=verdict,
                               headers={})
        verdict = await self._decide(rid, plan.checks)
        if not verdict.admitted:
            check = plan.checks[verdict.refused]
            state = verdict.states[verdict.refused]
            headers = rate_limit_headers(plan.checks, verdict.states, verdict.now,
                                         verdict.retry_after)
            raise LimitExceeded(
                _refusal(check, state, verdict.retry_after, self.policy.spend_unit),
                limit=check.name,
                remaining=max(0, state.remaining),
                retry_after=verdict.retry_after,
                headers=headers,
            )
        headers = rate_limit_headers(plan.checks, verdict.states, verdict.now)
        return Reservation(
            self, rid=rid, request=request, plan=plan, verdict=verdict, headers=headers
        )

    def now(self) -> float:
        """This limiter's idea of the time (epoch seconds), for messages and headers."""
        return time.time()

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """What a call cost at the configured price (for estimates and ``settle``)."""
        return self.policy.cost(model, prompt_tokens, completion_tokens)

    async def aclose(self) -> None:  # noqa: B027 - a no-op unless a backend holds connections
        """Close connections the backend holds."""

    @abc.abstractmethod
    async def _decide(self, rid: str, checks: Sequence[Check]) -> Verdict:
        """Evaluate every check and reserve all of them, or none, atomically."""

    @abc.abstractmethod
    async def _finish(
        self, rid: str, held: Sequence[tuple[Check, str]], actuals: Sequence[int]
    ) -> None:
        """Replace reservation ``rid`` by ``actuals`` (zeros: a release); free its slots."""


def _refuse_impossible(plan: Plan, unit: str, now: float) -> None:
    """A zero limit, or an estimate larger than a whole budget, can never be admitted."""
    for check in plan.checks:
        if check.limit == 0:
            reason = "its limit is 0, so every request is refused; ask an administrator"
        elif check.kind.window and check.amount > check.limit:
            need = _amount(check, check.amount, unit)
            whole = _amount(check, check.limit, unit)
            reason = f"this request needs up to {need}, more than the whole limit of {whole}"
            reason += "; lower max_tokens" + (" or use a cheaper model" if check.kind.is_spend
                                              else "")
        else:
            continue
        retry = _period(check, now)
        headers = rate_limit_headers(plan.checks, None, now, retry)
        raise LimitExceeded(
            f"{check.describe()}: {reason}",
            limit=check.name,
            remaining=0,
            retry_after=retry,
            headers=headers,
        )


def _period(check: Check, now: float) -> float:
    if check.kind is Kind.REQUESTS:
        return check.period
    if check.kind.window:
        return windows.window(check.kind.window, now)[1] - now
    return 1.0


def _refusal(check: Check, state: CheckState, retry_after: float, unit: str) -> str:
    wait = f"retry in {retry_seconds(retry_after)} s"
    if check.kind is Kind.REQUESTS:
        return f"{check.describe()}: rate exceeded; {wait}"
    if check.kind is Kind.CONCURRENT:
        return f"{check.describe()}: {state.used} of {check.limit} in flight; {wait}"
    used = _amount(check, state.used, "")
    limit = _amount(check, check.limit, unit)
    need = _amount(check, check.amount, unit)
    return (
        f"{check.describe()}: {used} of {limit} used or reserved, this request needs up to "
        f"{need}; {wait}"
    )


def _amount(check: Check, value: int, unit: str) -> str:
    if check.kind.is_spend:
        return f"{from_nano(value):.6g} {unit}".rstrip()
    return str(value)
