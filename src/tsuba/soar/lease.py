"""One response loop per database: a renewed, expiring lease row.

The bus delivers to every process that subscribes under one name (at least once, never
exactly once), so two loops on one database would run each playbook step and send each SIEM
line twice.  The loop therefore acts only while it holds this lease; others wait as standby
and take over once the holder stops renewing (crash, network split) or hands it back.

The lease row also carries the holder's health (subscribers, sinks, last errors) so that
``tsuba soar status`` and /metrics in any process can report the loop without reaching it.
Times are the hosts' UTC clocks: keep ``lease_seconds`` well above the clock skew.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Engine, String, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Mapped, Session, mapped_column

from tsuba.core.errors import InputError
from tsuba.core.identity.models import UTCDateTime
from tsuba.core.storage import Base, reader
from tsuba.core.storage.engine import storage_error

LOOP = "soar.loop"


class LeaseRow(Base):
    __tablename__ = "soar_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(256))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    renewed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    health: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


@dataclass(frozen=True)
class LeaseInfo:
    name: str
    holder: str
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    health: dict[str, Any]

    def held(self, now: datetime | None = None) -> bool:
        return self.expires_at > (now or datetime.now(UTC))


def holder_id() -> str:
    """Names this process for people reading ``tsuba soar status``; unique per start."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """Acquire, renew and release one named lease for one holder."""

    def __init__(
        self,
        engine: Engine,
        *,
        name: str = LOOP,
        holder: str | None = None,
        ttl: float = 15.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if ttl <= 0:
            raise InputError("lease ttl must be positive seconds")
        self.engine = engine
        self.name = name
        self.holder = holder or holder_id()
        self.ttl = timedelta(seconds=ttl)
        self._clock = clock or (lambda: datetime.now(UTC))

    def acquire(self, health: dict[str, Any] | None = None) -> bool:
        """Take the lease if it is free, expired or already ours; renew it if ours."""
        now = self._clock()
        try:
            with Session(self.engine) as s, s.begin():
                row = s.scalars(
                    select(LeaseRow).where(LeaseRow.name == self.name).with_for_update()
                ).first()
                if row is None:
                    s.add(LeaseRow(name=self.name, holder=self.holder, acquired_at=now,
                                   renewed_at=now, expires_at=now + self.ttl, health=health))
                    return True
                if row.holder != self.holder:
                    if row.expires_at > now:
                        return False
                    row.holder, row.acquired_at = self.holder, now
                row.renewed_at, row.expires_at = now, now + self.ttl
                if health is not None:
                    row.health = health
                return True
        except sa_exc.IntegrityError:
            return False  # another process inserted the row first: it holds the lease
        except sa_exc.DBAPIError as exc:
            raise storage_error(exc, "SOAR lease") from exc

    def renew(self, health: dict[str, Any] | None = None) -> bool:
        """Extend the lease while still ours; False once another holder has taken it."""
        return self.acquire(health)

    def release(self) -> None:
        """Hand the lease back now, so a standby takes over without waiting for expiry."""
        now = self._clock()
        try:
            with Session(self.engine) as s, s.begin():
                row = s.scalars(
                    select(LeaseRow).where(LeaseRow.name == self.name).with_for_update()
                ).first()
                if row is not None and row.holder == self.holder:
                    row.expires_at = now
                    if row.health is not None:
                        row.health = {**row.health, "state": "stopped"}
        except sa_exc.DBAPIError as exc:
            raise storage_error(exc, "SOAR lease") from exc


def read_lease(engine: Engine, name: str = LOOP) -> LeaseInfo | None:
    """The lease as stored (held or not), or None when no loop ever ran on this database."""
    try:
        with Session(reader(engine)) as s, s.begin():
            row = s.get(LeaseRow, name)
            if row is None:
                return None
            return LeaseInfo(row.name, row.holder, row.acquired_at, row.renewed_at,
                             row.expires_at, dict(row.health or {}))
    except sa_exc.DBAPIError as exc:
        raise storage_error(exc, "SOAR lease") from exc
