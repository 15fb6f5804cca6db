"""Server-side conversation sessions, bound to the principal that started them.

A session id (``tss_`` + 256 random bits) is handed to the client once, in the response
header ``x-tsuba-session-id``; only its SHA-256 is stored, so a database reader cannot
continue anyone's conversation.  The history is envelope-encrypted (KEK "data") with
associated data that binds it to the id hash *and* the principal: a row moved to another
principal does not decrypt.  Any session that is unknown, expired, malformed or another
principal's gets the same "not found" answer, so a caller learns nothing about sessions
that are not theirs.  Sessions expire ``ttl_seconds`` after their last use and are purged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import Integer, LargeBinary, String, Table, delete, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, mapped_column

from tsuba.core.config import SessionSettings
from tsuba.core.errors import DecryptionError, NotFoundError, StorageError
from tsuba.core.events import EventClass, Outcome, SecurityEvent
from tsuba.core.identity.models import UTCDateTime
from tsuba.core.keys.envelope import DEFAULT_KEK, decrypt, encrypt
from tsuba.core.platform import Platform
from tsuba.core.storage import Base, reader
from tsuba.gateway import inference_metrics as m

HEADER = "x-tsuba-session-id"
PREFIX = "tss_"
_ID = re.compile(r"tss_[A-Za-z0-9_-]{43}")
_AAD = b"tsuba/session/"


class SessionRow(Base):
    __tablename__ = "gateway_sessions"

    id_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    principal: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    turns: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


_T = cast(Table, SessionRow.__table__)


class SessionNotFound(NotFoundError):
    code = "session_not_found"


def _not_found() -> SessionNotFound:
    return SessionNotFound(
        "session not found or expired: omit the x-tsuba-session-id header to start a new one"
    )


def new_session_id() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


def _aad(id_hash: bytes, principal: str) -> bytes:
    return _AAD + id_hash + b"/" + principal.encode()


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    principal: str
    messages: list[dict[str, Any]]
    new: bool


def _now() -> datetime:
    return datetime.now(UTC)


class SessionStore:
    def __init__(self, platform: Platform, cfg: SessionSettings) -> None:
        self._engine = platform.engine
        self._reader = reader(platform.engine)
        self._keys = platform.keys
        self._platform = platform
        self.ttl = timedelta(seconds=cfg.ttl_seconds)
        self.max_turns = cfg.max_turns

    # -- synchronous core (run in a worker thread from the event loop) ---------------------
    def open(
        self, principal: str, session_id: str | None, *, at: datetime | None = None
    ) -> Session:
        """The caller's session ``session_id`` (history decrypted), or a new empty one."""
        if session_id is None:
            m.SESSIONS.labels("create").inc()
            return Session(new_session_id(), principal, [], True)
        if not _ID.fullmatch(session_id):
            raise _not_found()
        id_hash = _hash(session_id)
        now = at or _now()
        try:
            with self._reader.connect() as conn:
                row = conn.execute(
                    select(_T.c.principal, _T.c.expires_at, _T.c.data).where(
                        _T.c.id_hash == id_hash
                    )
                ).one_or_none()
        except DBAPIError as exc:
            raise StorageError(f"session store is not usable: {exc.orig}") from exc
        if row is None:
            m.SESSIONS.labels("miss").inc()
            raise _not_found()
        owner, expires_at, blob = row
        if not hmac.compare_digest(owner.encode(), principal.encode()) or expires_at <= now:
            m.SESSIONS.labels("miss").inc()
            raise _not_found()
        try:
            messages = orjson.loads(decrypt(self._keys, blob, _aad(id_hash, principal)))
        except DecryptionError:
            m.SESSIONS.labels("corrupt").inc()
            raise _not_found() from None
        m.SESSIONS.labels("resume").inc()
        return Session(session_id, principal, list(messages), False)

    def save(
        self, session: Session, messages: list[dict[str, Any]], *, at: datetime | None = None
    ) -> None:
        """Store the history (the newest ``max_turns`` messages) and extend the expiry."""
        kept = messages[-self.max_turns :]
        id_hash = _hash(session.id)
        blob = encrypt(
            self._keys, DEFAULT_KEK, orjson.dumps(kept), _aad(id_hash, session.principal)
        )
        now = at or _now()
        values = {
            "updated_at": now,
            "expires_at": now + self.ttl,
            "turns": len(kept),
            "data": blob,
        }
        try:
            with self._engine.begin() as conn:
                if session.new:
                    conn.execute(
                        insert(_T).values(
                            id_hash=id_hash, principal=session.principal, created_at=now, **values
                        )
                    )
                else:
                    conn.execute(
                        update(_T)
                        .where(_T.c.id_hash == id_hash, _T.c.principal == session.principal)
                        .values(**values)
                    )
        except DBAPIError as exc:
            raise StorageError(f"session store is not usable: {exc.orig}") from exc
        m.SESSIONS.labels("save").inc()

    def delete(self, principal: str, session_id: str) -> bool:
        if not _ID.fullmatch(session_id):
            return False
        with self._engine.begin() as conn:
            result = conn.execute(
                delete(_T).where(_T.c.id_hash == _hash(session_id), _T.c.principal == principal)
            )
        return bool(result.rowcount)

    def purge(self, *, at: datetime | None = None) -> int:
        """Delete expired sessions; the purge is recorded in the audit log when it deleted any."""
        now = at or _now()
        try:
            with self._engine.begin() as conn:
                deleted = conn.execute(delete(_T).where(_T.c.expires_at <= now)).rowcount or 0
        except DBAPIError as exc:
            raise StorageError(f"session purge failed: {exc.orig}") from exc
        if deleted:
            m.SESSIONS.labels("purge").inc(deleted)
            self._platform.record(
                SecurityEvent(
                    event_class=EventClass.DATASTORE_ACTIVITY,
                    activity="delete",
                    resource="gateway/sessions",
                    outcome=Outcome.SUCCESS,
                    message=f"purged {deleted} expired gateway session(s)",
                    attributes={"deleted": deleted, "before": now.isoformat()},
                )
            )
        return deleted

    # -- async wrappers ----------------------------------------------------------------------
    async def aopen(self, principal: str, session_id: str | None) -> Session:
        if session_id is None:
            return self.open(principal, None)
        return await asyncio.to_thread(self.open, principal, session_id)

    async def asave(self, session: Session, messages: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(self.save, session, messages)
