"""The bus's tables: the outbox itself, its head counter, subscriber cursors, dead letters.

Positions are assigned from the single ``bus_head`` row, never from a sequence: the row is
locked by the publishing transaction until it commits, so positions become visible in the
order they were handed out and a consumer that has seen position *n* can never later find
a committed row below *n* that it missed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tsuba.core.storage.base import Base

# A rowid alias on SQLite (no second index), 64-bit everywhere else.
POSITION = BigInteger().with_variant(Integer(), "sqlite")

#: The name of the one stream the SQL outbox holds (the head row's key).
STREAM = "outbox"


class OutboxRow(Base):
    """One published event: its canonical bytes plus the columns subscribers filter on."""

    __tablename__ = "bus_outbox"

    position: Mapped[int] = mapped_column(POSITION, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(128))
    event_class: Mapped[str] = mapped_column(String(32))
    severity: Mapped[int] = mapped_column(SmallInteger)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class HeadRow(Base):
    """The last position handed out; its row lock serialises publishers until they commit."""

    __tablename__ = "bus_head"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)


class CursorRow(Base):
    """A durable subscriber: the last position it acknowledged."""

    __tablename__ = "bus_cursor"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeadLetterRow(Base):
    """An event a subscriber gave up on, kept with the error so nothing is dropped unseen."""

    __tablename__ = "bus_dead_letter"

    subscriber: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
