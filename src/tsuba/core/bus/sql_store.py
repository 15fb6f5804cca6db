"""The outbox on SQLite or PostgreSQL, through SQLAlchemy.

Why a counter row and not a sequence: a PostgreSQL sequence (or identity column) hands out
numbers at INSERT time, but transactions commit in any order.  A consumer that reads
position 8 while the transaction holding 7 is still open would move its cursor past 7 and
never see it.  Here every publishing transaction first runs
``UPDATE bus_head SET position = position + n ... RETURNING position``: the row lock it
takes is held until commit, so the next publisher waits, reads the committed value, and
positions commit in the order they are assigned, gap-free (a rolled-back transaction
rolls its increment back too).  On SQLite ``BEGIN IMMEDIATE`` already serialises writers.
The price is one publisher at a time per database, which the benchmark in bench/bus.py
measures; keep transactions that call :func:`publish_in` short.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from tsuba.core.bus.store import (
    DeadLetter,
    OutboxRecord,
    Start,
    check_events,
    check_subscriber_name,
)
from tsuba.core.bus.tables import STREAM, CursorRow, DeadLetterRow, HeadRow, OutboxRow
from tsuba.core.errors import InputError, StorageError
from tsuba.core.events import SecurityEvent
from tsuba.core.storage import connect


def _utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes; everything stored is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def publish_in(conn: Connection, events: SecurityEvent | Sequence[SecurityEvent]) -> list[int]:
    """Append events inside the caller's open transaction (the transactional outbox).

    The events commit or roll back together with whatever else ``conn`` wrote.  Until that
    commit, other publishers wait on the head row, so call this late in short transactions.
    A running :class:`~tsuba.core.bus.dispatcher.Bus` sees the events at its next poll, or
    at once after ``bus.notify()``.
    """
    checked = check_events(events)
    if not checked:
        return []
    last = conn.execute(
        update(HeadRow)
        .where(HeadRow.name == STREAM)
        .values(position=HeadRow.position + len(checked))
        .returning(HeadRow.position)
    ).scalar_one_or_none()
    if last is None:
        raise StorageError("the event bus tables are not set up: run 'tsuba db upgrade'")
    first = int(last) - len(checked) + 1
    now = datetime.now(UTC)
    conn.execute(
        insert(OutboxRow),
        [
            {
                "position": first + i,
                "event_id": event.id,
                "event_class": event.event_class.value,
                "severity": int(event.severity),
                "event_time": event.time,
                "published_at": now,
                "payload": event.canonical_bytes(),
            }
            for i, event in enumerate(checked)
        ],
    )
    return list(range(first, first + len(checked)))


class SqlOutbox:
    """:class:`~tsuba.core.bus.store.OutboxStore` over a migrated SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- publishing ------------------------------------------------------------------------
    def append(self, events: Sequence[SecurityEvent]) -> list[int]:
        checked = check_events(events)
        if not checked:
            return []
        with connect(self.engine) as conn:
            return publish_in(conn, checked)

    def head(self) -> int:
        with connect(self.engine) as conn:
            value = conn.execute(
                select(HeadRow.position).where(HeadRow.name == STREAM)
            ).scalar_one_or_none()
        if value is None:
            raise StorageError("the event bus tables are not set up: run 'tsuba db upgrade'")
        return int(value)

    # -- reading ---------------------------------------------------------------------------
    def read(
        self,
        after: int,
        upto: int,
        *,
        limit: int,
        classes: Collection[str] | None = None,
        min_severity: int | None = None,
    ) -> list[OutboxRecord]:
        if limit < 1:
            raise InputError("read limit must be at least 1")
        if upto <= after:
            return []
        query = (
            select(OutboxRow)
            .where(OutboxRow.position > after, OutboxRow.position <= upto)
            .order_by(OutboxRow.position)
            .limit(limit)
        )
        if classes is not None:
            query = query.where(OutboxRow.event_class.in_(sorted(classes)))
        if min_severity is not None:
            query = query.where(OutboxRow.severity >= min_severity)
        with connect(self.engine) as conn:
            rows = conn.execute(query).all()
        return [
            OutboxRecord(
                position=int(r.position),
                event_id=r.event_id,
                event_class=r.event_class,
                severity=int(r.severity),
                event_time=_utc(r.event_time),
                published_at=_utc(r.published_at),
                payload=bytes(r.payload),
            )
            for r in rows
        ]

    # -- cursors ---------------------------------------------------------------------------
    def register(self, name: str, start: Start = "earliest") -> int:
        """Create the cursor if new (at 0, or at the current head) and return it."""
        check_subscriber_name(name)
        if start not in ("earliest", "latest"):
            raise InputError(f"start must be 'earliest' or 'latest', got {start!r}")
        existing = self.cursor(name)
        if existing is not None:
            return existing
        try:
            with connect(self.engine) as conn:
                position = 0
                if start == "latest":
                    position = int(
                        conn.execute(
                            select(HeadRow.position).where(HeadRow.name == STREAM)
                        ).scalar_one()
                    )
                conn.execute(
                    insert(CursorRow).values(
                        name=name, position=position, updated_at=datetime.now(UTC)
                    )
                )
        except StorageError:
            # Another process registered the same name first: use its cursor.
            existing = self.cursor(name)
            if existing is None:
                raise
            return existing
        return position

    def cursor(self, name: str) -> int | None:
        with connect(self.engine) as conn:
            value = conn.execute(
                select(CursorRow.position).where(CursorRow.name == name)
            ).scalar_one_or_none()
        return None if value is None else int(value)

    def cursors(self) -> dict[str, int]:
        with connect(self.engine) as conn:
            rows = conn.execute(select(CursorRow.name, CursorRow.position)).all()
        return {r.name: int(r.position) for r in rows}

    def ack(self, name: str, position: int) -> None:
        """Move the cursor forward only: a slower duplicate consumer never moves it back."""
        with connect(self.engine) as conn:
            _ack_in(conn, name, position)

    def remove(self, name: str) -> bool:
        with connect(self.engine) as conn:
            result = conn.execute(delete(CursorRow).where(CursorRow.name == name))
        return bool(result.rowcount)

    # -- failures --------------------------------------------------------------------------
    def dead_letter(
        self,
        name: str,
        record: OutboxRecord,
        *,
        error: str,
        attempts: int,
        notice: SecurityEvent | None,
    ) -> int | None:
        """Record the failure, move the cursor past it and publish ``notice``, atomically."""
        with connect(self.engine) as conn:
            seen = conn.execute(
                select(DeadLetterRow.position).where(
                    DeadLetterRow.subscriber == name, DeadLetterRow.position == record.position
                )
            ).first()
            if seen is None:
                conn.execute(
                    insert(DeadLetterRow).values(
                        subscriber=name,
                        position=record.position,
                        event_id=record.event_id or None,
                        payload=record.payload,
                        error=error,
                        attempts=attempts,
                        failed_at=datetime.now(UTC),
                    )
                )
            _ack_in(conn, name, record.position)
            if notice is None or seen is not None:
                return None
            return publish_in(conn, notice)[0]

    def dead_letters(self, subscriber: str | None = None) -> list[DeadLetter]:
        query = select(DeadLetterRow).order_by(DeadLetterRow.subscriber, DeadLetterRow.position)
        if subscriber is not None:
            query = query.where(DeadLetterRow.subscriber == subscriber)
        with connect(self.engine) as conn:
            rows = conn.execute(query).all()
        return [
            DeadLetter(
                subscriber=r.subscriber,
                position=int(r.position),
                event_id=r.event_id,
                payload=bytes(r.payload),
                error=r.error,
                attempts=int(r.attempts),
                failed_at=_utc(r.failed_at),
            )
            for r in rows
        ]

    # -- retention -------------------------------------------------------------------------
    def prune(self, before_position: int) -> int:
        """Delete events below ``before_position`` that every durable subscriber has acked.

        With no subscribers at all, nothing is pruned: an event nobody has read is kept.
        """
        if not isinstance(before_position, int) or before_position < 0:
            raise InputError(f"prune position must be a non-negative integer: {before_position!r}")
        with connect(self.engine) as conn:
            floor: Any = conn.execute(select(func.min(CursorRow.position))).scalar()
            if floor is None:
                return 0
            limit = min(before_position - 1, int(floor))
            if limit < 1:
                return 0
            result = conn.execute(delete(OutboxRow).where(OutboxRow.position <= limit))
        return int(result.rowcount)


def _ack_in(conn: Connection, name: str, position: int) -> None:
    conn.execute(
        update(CursorRow)
        .where(CursorRow.name == name, CursorRow.position < position)
        .values(position=position, updated_at=datetime.now(UTC))
    )
