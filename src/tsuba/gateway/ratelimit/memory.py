"""In-process limits: one process, no round trip, the same semantics as the Redis scripts.

Every decision runs under one lock without awaiting inside, so it is atomic both between
coroutines of one event loop and between threads.  Limits hold only within this process;
with several workers or machines use the Redis backend.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tsuba.core.config import LimitsSettings
from tsuba.gateway.ratelimit import windows
from tsuba.gateway.ratelimit.admission import BaseLimiter, Verdict
from tsuba.gateway.ratelimit.headers import CheckState
from tsuba.gateway.ratelimit.policy import Check, Kind

# Floating-point slack for GCRA sums (seconds); far below any real emission interval.
_EPSILON = 1e-6
_SWEEP_SECONDS = 60.0


@dataclass(slots=True)
class _Window:
    used: int = 0
    reserved: int = 0
    ends: float = 0.0


@dataclass(slots=True)
class _Held:
    expires: float
    windows: list[tuple[str, int]] = field(default_factory=list)
    slots: list[str] = field(default_factory=list)


class MemoryLimiter(BaseLimiter):
    """Limits in this process's memory; ``clock`` (epoch seconds) is replaceable for tests."""

    def __init__(
        self, settings: LimitsSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(settings)
        self._clock = clock
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}
        self._windows: dict[str, _Window] = {}
        self._slots: dict[str, int] = {}
        self._held: dict[str, _Held] = {}
        self._expiry: list[tuple[float, str]] = []
        self._next_sweep = 0.0

    def now(self) -> float:
        return self._clock()

    def counters(self) -> dict[str, tuple[int, int]]:
        """Every budget window as ``key -> (used, reserved)``, for inspection and tests."""
        with self._lock:
            return {k: (w.used, w.reserved) for k, w in self._windows.items()}

    def in_flight(self) -> dict[str, int]:
        """Concurrency slots taken, by key."""
        with self._lock:
            return dict(self._slots)

    async def _decide(self, rid: str, checks: Sequence[Check]) -> Verdict:
        with self._lock:
            return self._decide_locked(rid, checks)

    async def _finish(
        self, rid: str, held: Sequence[tuple[Check, str]], actuals: Sequence[int]
    ) -> None:
        with self._lock:
            record = self._held.pop(rid, None)
            reserved = dict(record.windows) if record is not None else {}
            for (check, key), actual in zip(held, actuals, strict=True):
                if check.kind is Kind.CONCURRENT:
                    if record is not None:
                        self._free(key)
                    continue
                win = self._windows.get(key)
                if win is None:  # settled after its window was swept: still charged
                    win = self._windows[key] = _Window(ends=self._clock())
                win.reserved = max(0, win.reserved - reserved.get(key, 0))
                win.used += actual

    # -- the decision ----------------------------------------------------------------------
    def _decide_locked(self, rid: str, checks: Sequence[Check]) -> Verdict:
        now = self._clock()
        self._expire(now)
        states: list[CheckState] = []
        keys: list[str] = []
        refused, retry = -1, 0.0
        for index, check in enumerate(checks):
            ok, state, wait, key = self._evaluate(check, now)
            states.append(state)
            keys.append(key)
            if not ok and (refused < 0 or wait > retry):
                refused, retry = index, wait
        if refused >= 0:
            return Verdict(False, tuple(states), now, refused, retry)
        record = _Held(expires=now + self.timeout)
        handles: list[str] = []
        for check, key in zip(checks, keys, strict=True):
            if check.kind is Kind.REQUESTS:
                tat = max(self._tat.get(key, now), now)
                self._tat[key] = tat + check.emission
                handles.append("")
            elif check.kind is Kind.CONCURRENT:
                self._slots[key] = self._slots.get(key, 0) + 1
                record.slots.append(key)
                handles.append(key)
            else:
                self._windows[key].reserved += check.amount
                record.windows.append((key, check.amount))
                handles.append(key)
        if record.windows or record.slots:
            self._held[rid] = record
            heapq.heappush(self._expiry, (record.expires, rid))
        return Verdict(True, tuple(states), now, handles=tuple(handles))

    def _evaluate(self, check: Check, now: float) -> tuple[bool, CheckState, float, str]:
        if check.kind is Kind.REQUESTS:
            emission = check.emission
            tat = max(self._tat.get(check.key, now), now)
            new = tat + emission
            tolerance = check.burst * emission
            if new - now <= tolerance + _EPSILON:
                left = math.floor((tolerance - (new - now)) / emission + _EPSILON)
                return True, CheckState(left, new - now, 0), 0.0, check.key
            return False, CheckState(0, tat - now, 0), new - now - tolerance, check.key
        if check.kind is Kind.CONCURRENT:
            busy = self._slots.get(check.key, 0)
            if busy + 1 <= check.limit:
                return True, CheckState(check.limit - busy - 1, 0.0, busy), 0.0, check.key
            return False, CheckState(0, 0.0, busy), 1.0, check.key
        kind = check.kind.window
        assert kind is not None
        wid, ends = windows.window(kind, now)
        key = f"{check.key}:{wid}"
        win = self._windows.get(key)
        if win is None:
            win = self._windows[key] = _Window(ends=ends)
        taken = win.used + win.reserved
        if taken < check.limit and taken + check.amount <= check.limit:
            left = check.limit - taken - check.amount
            return True, CheckState(left, ends - now, taken), 0.0, key
        return False, CheckState(max(0, check.limit - taken), ends - now, taken), ends - now, key

    # -- housekeeping ----------------------------------------------------------------------
    def _expire(self, now: float) -> None:
        """Refund reservations past their timeout; now and then drop finished counters."""
        while self._expiry and self._expiry[0][0] <= now:
            _, rid = heapq.heappop(self._expiry)
            record = self._held.pop(rid, None)
            if record is None:
                continue
            for key, amount in record.windows:
                win = self._windows.get(key)
                if win is not None:
                    win.reserved = max(0, win.reserved - amount)
            for key in record.slots:
                self._free(key)
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_SECONDS
            horizon = now - self.timeout
            self._windows = {
                k: w for k, w in self._windows.items() if w.ends > horizon or w.reserved
            }
            self._tat = {k: t for k, t in self._tat.items() if t > now}

    def _free(self, key: str) -> None:
        busy = self._slots.get(key, 0) - 1
        if busy > 0:
            self._slots[key] = busy
        else:
            self._slots.pop(key, None)
