"""Reading security events from JSON lines, all checked before any is appended.

An import is all or nothing: a bad line anywhere rejects the whole input, naming the line,
so a half-imported file never has to be untangled from the log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from tsuba.core.errors import InputError
from tsuba.core.events import SecurityEvent


def events_from_json_lines(lines: Iterable[str]) -> list[SecurityEvent]:
    """One event per non-blank line: ``{"class": ..., "message": ..., "severity": ...}``.

    Fields other than the event's own are kept as attributes.
    """
    events: list[SecurityEvent] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {number}: not valid JSON: {exc.msg}; nothing was appended") \
                from exc
        if not isinstance(data, dict):
            raise InputError(
                f"line {number}: an event must be a JSON object; nothing was appended"
            )
        try:
            events.append(SecurityEvent.from_dict(data))
        except InputError as exc:
            raise InputError(f"line {number}: {exc.message}; nothing was appended") from exc
    return events
