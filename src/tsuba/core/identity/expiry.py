"""Reading binding expiries as people write them: an instant, or a duration from now."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tsuba.core.errors import InputError

_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
MAX_DURATION = timedelta(days=3660)


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant with a timezone (``2026-12-31T00:00Z``), returned in UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InputError(
            f"invalid instant {text!r}: use ISO 8601 with a timezone, like 2026-12-31T00:00Z"
        ) from exc
    if value.tzinfo is None:
        raise InputError(f"instant {text!r} has no timezone: add one, like 2026-12-31T00:00Z (UTC)")
    return value.astimezone(UTC)


def parse_duration(text: str) -> timedelta:
    """A positive duration like ``7d``, ``12h``, ``1w2d``, ``90m`` or ``30s``."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise InputError(
            f"invalid duration {text!r}: use whole units w, d, h, m, s in that order, like 7d "
            "or 1d12h"
        )
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    try:
        value = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError as exc:
        raise InputError(f"duration {text!r} is too long (at most 3660 days)") from exc
    if value <= timedelta(0):
        raise InputError(f"duration {text!r} must be longer than zero")
    if value > MAX_DURATION:
        raise InputError(f"duration {text!r} is too long (at most 3660 days)")
    return value
