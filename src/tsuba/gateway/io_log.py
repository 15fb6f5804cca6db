"""The input/output log: prompts and responses kept encrypted, for a retention period only.

Opt-in per route (``gateway.routes.<route>.io_log``).  Each record's prompt and response
are envelope-encrypted under the KEK "data" with associated data naming the record id and
the field, so neither can be swapped into another record or the other field.  The record's
data classification fixes its expiry (``gateway.io_log.retention_days``); ``purge``
deletes expired records and records that it did so in the audit log.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import Integer, LargeBinary, String, Table, Text, delete, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, mapped_column

from tsuba.core.config import IoLogSettings
from tsuba.core.errors import NotFoundError, StorageError
from tsuba.core.events import EventClass, Outcome, SecurityEvent, new_event_id
from tsuba.core.identity.models import UTCDateTime
from tsuba.core.keys.envelope import decrypt, encrypt
from tsuba.core.platform import Platform
from tsuba.core.storage import Base, reader
from tsuba.gateway import inference_metrics as m

_AAD = b"tsuba/io-log/"
PURGE_CHUNK = 1000


class IoRecordRow(Base):
    __tablename__ = "gateway_io_log"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    principal: Mapped[str] = mapped_column(String(128))
    route: Mapped[str] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(256))
    correlation_id: Mapped[str] = mapped_column(String(64), index=True)
    classification: Mapped[str] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(Integer)
    findings: Mapped[str] = mapped_column(Text)
    prompt: Mapped[bytes] = mapped_column(LargeBinary)
    response: Mapped[bytes | None] = mapped_column(LargeBinary)


_T = cast(Table, IoRecordRow.__table__)


def _aad(record_id: str, part: str) -> bytes:
    return _AAD + record_id.encode() + b"/" + part.encode()


@dataclass(frozen=True)
class IoRecord:
    id: str
    created_at: datetime
    expires_at: datetime
    principal: str
    route: str
    model: str | None
    correlation_id: str
    classification: str
    status: int
    findings: list[dict[str, Any]]
    prompt: bytes
    response: bytes | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "principal": self.principal,
            "route": self.route,
            "model": self.model,
            "correlation_id": self.correlation_id,
            "classification": self.classification,
            "status": self.status,
            "findings": self.findings,
            "prompt": self.prompt.decode("utf-8", "replace"),
            "response": None if self.response is None else self.response.decode("utf-8", "replace"),
        }


@dataclass(frozen=True)
class PurgeResult:
    deleted: int
    by_classification: dict[str, int]
    before: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "deleted": self.deleted,
            "by_classification": self.by_classification,
            "before": self.before.isoformat(),
        }


def _now() -> datetime:
    return datetime.now(UTC)


class IoLog:
    def __init__(self, platform: Platform, cfg: IoLogSettings) -> None:
        self._platform = platform
        self._engine = platform.engine
        self._keys = platform.keys
        self.kek = cfg.kek
        self.retention: dict[str, timedelta] = {
            k: timedelta(days=v) for k, v in cfg.retention_days.items()
        }

    def write(
        self,
        *,
        principal: str,
        route: str,
        model: str | None,
        correlation_id: str,
        classification: str,
        status: int,
        findings: list[dict[str, Any]],
        prompt: bytes,
        response: bytes | None,
        at: datetime | None = None,
    ) -> str:
        """Store one exchange encrypted; returns the record id."""
        keep = self.retention.get(classification)
        if keep is None:
            raise StorageError(
                f"no I/O log retention for classification '{classification}': set "
                f"gateway.io_log.retention_days.{classification}"
            )
        record_id = new_event_id()
        now = at or _now()
        row = {
            "id": record_id,
            "created_at": now,
            "expires_at": now + keep,
            "principal": principal,
            "route": route,
            "model": model,
            "correlation_id": correlation_id,
            "classification": classification,
            "status": status,
            "findings": orjson.dumps(findings).decode(),
            "prompt": encrypt(self._keys, self.kek, prompt, _aad(record_id, "prompt")),
            "response": None
            if response is None
            else encrypt(self._keys, self.kek, response, _aad(record_id, "response")),
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(_T).values(**row))
        except DBAPIError as exc:
            raise StorageError(f"I/O log is not usable: {exc.orig}") from exc
        m.IO_LOG.labels("write").inc()
        return record_id

    async def awrite(self, **kwargs: Any) -> str:
        return await asyncio.to_thread(lambda: self.write(**kwargs))

    def read(self, record_id: str) -> IoRecord:
        """One record, decrypted (DecryptionError if it was tampered with)."""
        with reader(self._engine).connect() as conn:
            row = conn.execute(select(_T).where(_T.c.id == record_id)).mappings().one_or_none()
        if row is None:
            raise NotFoundError(f"I/O log record '{record_id}' does not exist (or was purged)")
        response = row["response"]
        return IoRecord(
            id=row["id"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            principal=row["principal"],
            route=row["route"],
            model=row["model"],
            correlation_id=row["correlation_id"],
            classification=row["classification"],
            status=row["status"],
            findings=orjson.loads(row["findings"]),
            prompt=decrypt(self._keys, row["prompt"], _aad(record_id, "prompt")),
            response=None
            if response is None
            else decrypt(self._keys, response, _aad(record_id, "response")),
        )

    def ids_for(self, correlation_id: str) -> list[str]:
        with reader(self._engine).connect() as conn:
            return list(
                conn.scalars(select(_T.c.id).where(_T.c.correlation_id == correlation_id))
            )

    def purge(self, *, at: datetime | None = None) -> PurgeResult:
        """Delete every expired record, then record the purge in the audit log."""
        now = at or _now()
        counts: Counter[str] = Counter()
        try:
            while True:
                with self._engine.begin() as conn:
                    rows = conn.execute(
                        select(_T.c.id, _T.c.classification)
                        .where(_T.c.expires_at <= now)
                        .limit(PURGE_CHUNK)
                    ).all()
                    if not rows:
                        break
                    conn.execute(delete(_T).where(_T.c.id.in_([r.id for r in rows])))
                counts.update(r.classification for r in rows)
        except DBAPIError as exc:
            raise StorageError(f"I/O log purge failed: {exc.orig}") from exc
        result = PurgeResult(sum(counts.values()), dict(sorted(counts.items())), now)
        m.IO_LOG.labels("purge").inc(result.deleted)
        self._platform.record(
            SecurityEvent(
                event_class=EventClass.DATASTORE_ACTIVITY,
                activity="delete",
                resource="gateway/io-log",
                outcome=Outcome.SUCCESS,
                message=f"purged {result.deleted} expired I/O log record(s)",
                attributes=result.to_dict(),
            )
        )
        return result
