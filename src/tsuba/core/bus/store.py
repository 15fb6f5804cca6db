"""What the dispatcher needs from a place that keeps events: the outbox-store protocol.

The dispatcher only appends, reads position ranges and moves cursors, so the same
:class:`~tsuba.core.bus.dispatcher.Bus` can run over the SQL outbox (one machine or a shared
PostgreSQL) or, later, over Redis Streams, by supplying another implementation of
:class:`OutboxStore`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from tsuba.core.errors import InputError
from tsuba.core.events import SecurityEvent

Start = Literal["earliest", "latest"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_EVENT_ID = 128


@dataclass(frozen=True)
class OutboxRecord:
    """One stored event as read back: the verbatim bytes and the filter columns."""

    position: int
    event_id: str
    event_class: str
    severity: int
    event_time: datetime
    published_at: datetime
    payload: bytes


@dataclass(frozen=True)
class DeadLetter:
    """An event a subscriber gave up on, with the last error it raised."""

    subscriber: str
    position: int
    event_id: str | None
    payload: bytes
    error: str
    attempts: int
    failed_at: datetime


@runtime_checkable
class OutboxStore(Protocol):
    """Durable, totally ordered event storage with named cursors.

    Contract: ``append`` returns dense positions (1, 2, 3, ... with no gaps), and once
    ``head()`` returns *h*, every position up to *h* is readable (until pruned).
    """

    def append(self, events: Sequence[SecurityEvent]) -> list[int]: ...

    def head(self) -> int: ...

    def read(
        self,
        after: int,
        upto: int,
        *,
        limit: int,
        classes: Collection[str] | None = None,
        min_severity: int | None = None,
    ) -> list[OutboxRecord]: ...

    def register(self, name: str, start: Start = "earliest") -> int: ...

    def cursor(self, name: str) -> int | None: ...

    def cursors(self) -> dict[str, int]: ...

    def ack(self, name: str, position: int) -> None: ...

    def dead_letter(
        self,
        name: str,
        record: OutboxRecord,
        *,
        error: str,
        attempts: int,
        notice: SecurityEvent | None,
    ) -> int | None: ...

    def dead_letters(self, subscriber: str | None = None) -> list[DeadLetter]: ...

    def remove(self, name: str) -> bool: ...

    def prune(self, before_position: int) -> int: ...


def check_subscriber_name(name: object) -> str:
    """Names key durable cursors, so they must be stable, printable identifiers."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(
            f"subscriber name {name!r} is invalid: use 1-128 characters from A-Z a-z 0-9 . _ : -"
            ", starting with a letter or digit"
        )
    return name


def check_events(events: object) -> list[SecurityEvent]:
    """Refuse anything but SecurityEvents before a transaction starts."""
    if isinstance(events, SecurityEvent):
        events = [events]
    if not isinstance(events, Iterable) or isinstance(events, str | bytes | Mapping):
        raise InputError("publish needs a SecurityEvent or a sequence of them")
    out: list[SecurityEvent] = []
    for event in events:
        if not isinstance(event, SecurityEvent):
            raise InputError(
                f"can only publish SecurityEvent, got {type(event).__name__}: "
                "build one with SecurityEvent(...) or SecurityEvent.from_dict(...)"
            )
        if len(event.id) > MAX_EVENT_ID or not event.id:
            raise InputError(f"event id must be 1-{MAX_EVENT_ID} characters, got {len(event.id)}")
        out.append(event)
    return out
