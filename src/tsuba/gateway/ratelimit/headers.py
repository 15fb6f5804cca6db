"""``RateLimit-Policy`` and ``RateLimit`` response fields (draft-ietf-httpapi-ratelimit-headers-10).

The current draft replaced the older ``RateLimit-Limit``/``-Remaining``/``-Reset`` triple by
two structured-field lists (RFC 9651) that can describe several policies at once, which a
gateway with per-principal, per-model and global limits needs::

    RateLimit-Policy: "principal-requests";q=600;w=60, "principal-tokens-day";q=5000000;
                      qu="tokens";w=86400
    RateLimit: "principal-requests";r=599;t=1, "principal-tokens-day";r=4999000;t=41000

(one line each on the wire)

Each item is a policy named ``<scope>-<kind>``; ``q`` is its quota, ``w`` its window in
seconds, ``qu`` its unit when not requests (``tokens``, or the draft's
``concurrent-requests``), ``r`` what is left and ``t`` the seconds until it is fully
available again.  Spend budgets are not advertised: the draft's quota is an integer count,
not an amount of money; a refusal still names them in its message.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tsuba.gateway.ratelimit import windows
from tsuba.gateway.ratelimit.policy import Check, Kind

# sf-integer carries at most 15 digits.
_SF_MAX = 999_999_999_999_999


@dataclass(frozen=True, slots=True)
class CheckState:
    """A limit's state after a decision (or at a refusal)."""

    remaining: int
    reset: float  # seconds until fully available again (or the window ends)
    used: int  # used + reserved for budgets, in flight for concurrency, 0 for request rates


def rate_limit_headers(
    checks: Sequence[Check],
    states: Sequence[CheckState] | None,
    now: float,
    retry_after: float | None = None,
) -> dict[str, str]:
    """Response headers for a decision; ``retry_after`` (seconds) adds ``Retry-After``."""
    policies: list[str] = []
    current: list[str] = []
    for index, check in enumerate(checks):
        if check.kind.is_spend:
            continue
        item = f'"{check.name}";q={_int(check.limit)}'
        if check.kind is Kind.REQUESTS:
            item += f";w={max(1, math.ceil(check.period))}"
        elif check.kind is Kind.CONCURRENT:
            item += ';qu="concurrent-requests"'
        else:
            kind = check.kind.window
            assert kind is not None
            item += f';qu="tokens";w={windows.length(kind, now)}'
        policies.append(item)
        if states is not None:
            state = states[index]
            entry = f'"{check.name}";r={_int(max(0, state.remaining))}'
            if check.kind is not Kind.CONCURRENT:
                entry += f";t={max(0, math.ceil(state.reset))}"
            current.append(entry)
    headers: dict[str, str] = {}
    if policies:
        headers["RateLimit-Policy"] = ", ".join(policies)
    if current:
        headers["RateLimit"] = ", ".join(current)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_seconds(retry_after))
    return headers


def retry_seconds(retry_after: float) -> int:
    """Whole seconds to wait, rounded up so a client never comes back too early."""
    return max(1, math.ceil(retry_after - 1e-6))


def _int(value: int) -> int:
    return min(value, _SF_MAX)
