"""Events from JSON lines (the form ``tsuba audit append`` reads), one at a time."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from tsuba.core.errors import InputError
from tsuba.core.events import SecurityEvent


def read_events(lines: Iterable[str]) -> Iterator[SecurityEvent]:
    """Yield one event per non-blank line; a bad line stops the read, naming its number."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {number}: not valid JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise InputError(f"line {number}: an event must be a JSON object")
        try:
            yield SecurityEvent.from_dict(data)
        except InputError as exc:
            raise InputError(f"line {number}: {exc.message}") from None
