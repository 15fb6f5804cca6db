"""Calendar windows (UTC) that budgets count in; the Lua scripts compute the same ids.

A window id is an integer: minutes or days since the epoch, or ``year * 12 + month - 1``.
Budgets reset at the start of each minute, day or month, which is what people expect of
"per day" and "per month" quotas and what lets a refund land in the window it was taken from.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime


def window(kind: str, now: float) -> tuple[int, float]:
    """The id of the window ``now`` falls in and the instant (epoch seconds) it ends."""
    if kind == "minute":
        wid = math.floor(now / 60)
        return wid, (wid + 1) * 60.0
    if kind == "day":
        wid = math.floor(now / 86_400)
        return wid, (wid + 1) * 86_400.0
    if kind == "month":
        at = datetime.fromtimestamp(math.floor(now), UTC)
        wid = at.year * 12 + at.month - 1
        year, month = divmod(wid + 1, 12)
        return wid, datetime(year, month + 1, 1, tzinfo=UTC).timestamp()
    raise ValueError(f"unknown window {kind!r}")


def length(kind: str, now: float) -> int:
    """Seconds in the window ``now`` falls in (a month's length varies)."""
    if kind == "minute":
        return 60
    if kind == "day":
        return 86_400
    wid, end = window(kind, now)
    year, month = divmod(wid, 12)
    start = datetime(year, month + 1, 1, tzinfo=UTC).timestamp()
    return round(end - start)
