"""The shared pseudonym store: one table, envelope-encrypted values, expiring with sessions.

This is the one module of ``tsuba.guards`` that does I/O, and only through the engine and
key manager it is given.  Every gateway worker on every machine that shares the database
sees the same placeholders for a session.  A value is stored twice, never in clear: as a
keyed hash (HMAC key ``pseudonym``, scoped to the session) to find an existing placeholder,
and as an envelope (KEK ``data``) whose associated data binds it to its session and
placeholder, so a row copied to another session or placeholder does not decrypt.
Rows carry ``expires_at``; reads ignore expired rows and ``purge_expired`` deletes them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import (
    Engine,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from tsuba.core.errors import InputError, StorageError
from tsuba.core.identity.models import UTCDateTime
from tsuba.core.keys import envelope
from tsuba.core.keys.base import KeyKind, KeyManager
from tsuba.core.storage import Base, reader
from tsuba.core.storage.engine import storage_error
from tsuba.guards.anonymize import sealing
from tsuba.guards.anonymize.operators import DEFAULT_HASH_KEY, PLACEHOLDER
from tsuba.guards.anonymize.sealing import check_entity_type, check_session

MAX_ATTEMPTS = sealing.MAX_ATTEMPTS  # concurrent writers racing for the next number


class PseudonymRow(Base):
    __tablename__ = "guards_pseudonyms"
    __table_args__ = (
        UniqueConstraint("value_digest", "session_id"),
        UniqueConstraint("session_id", "entity_type", "ordinal"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(128))
    entity_type: Mapped[str] = mapped_column(String(64))
    ordinal: Mapped[int] = mapped_column(Integer)
    value_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


_T = cast(Table, PseudonymRow.__table__)


def _now() -> datetime:
    return datetime.now(UTC)


class SqlMappingStore:
    """A :class:`~tsuba.guards.anonymize.MappingStore` in the database (SQLite or PostgreSQL)."""

    def __init__(
        self,
        engine: Engine,
        keys: KeyManager,
        *,
        ttl: timedelta = timedelta(hours=1),
        kek: str = envelope.DEFAULT_KEK,
        hmac_key: str = DEFAULT_HASH_KEY,
    ) -> None:
        if ttl <= timedelta(0):
            raise InputError("pseudonym store ttl must be positive")
        self._engine = engine
        self._reader = reader(engine)  # reads take no write lock on SQLite
        self._keys = keys
        self.ttl = ttl
        self._kek = kek
        self._hmac_key = hmac_key
        keys.create(hmac_key, KeyKind.HMAC_SHA256, exist_ok=True)

    # -- MappingStore ------------------------------------------------------------------
    def placeholder_for(self, session: str, entity_type: str, value: str) -> str:
        check_session(session)
        check_entity_type(entity_type)
        found_digest = sealing.digest(self._keys, self._hmac_key, session, entity_type, value)
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                sealing.contention_pause(attempt)
            found = self._lookup(session, found_digest)
            if found is not None:
                return found
            try:
                return self._insert(session, entity_type, value, found_digest)
            except IntegrityError:
                continue  # another worker took this value or this number first: look again
            except DBAPIError as exc:
                raise _error(exc) from exc
        raise StorageError(
            f"pseudonym store: could not assign a placeholder for session after "
            f"{MAX_ATTEMPTS} attempts (heavy contention); retry the request"
        )

    def mapping(self, session: str, *, at: datetime | None = None) -> dict[str, str]:
        check_session(session)
        now = at or _now()
        try:
            with self._reader.connect() as conn:
                rows = conn.execute(
                    select(_T.c.entity_type, _T.c.ordinal, _T.c.value).where(
                        _T.c.session_id == session, _T.c.expires_at > now
                    )
                ).all()
        except DBAPIError as exc:
            raise _error(exc) from exc
        out = {}
        for entity_type, ordinal, blob in rows:
            placeholder = f"<{entity_type}_{ordinal}>"
            out[placeholder] = self._open(session, placeholder, blob)
        return out

    # -- session lifetime ------------------------------------------------------------------
    def value_for(self, session: str, placeholder: str) -> str | None:
        m = PLACEHOLDER.fullmatch(placeholder)
        if m is None:
            raise InputError(f"'{placeholder[:80]}' is not a placeholder like <PERSON_1>")
        check_session(session)
        try:
            with self._reader.connect() as conn:
                blob = conn.execute(
                    select(_T.c.value).where(
                        _T.c.session_id == session,
                        _T.c.entity_type == m.group(1),
                        _T.c.ordinal == int(m.group(2)),
                        _T.c.expires_at > _now(),
                    )
                ).scalar_one_or_none()
        except DBAPIError as exc:
            raise _error(exc) from exc
        return None if blob is None else self._open(session, placeholder, blob)

    def touch(self, session: str, *, until: datetime | None = None) -> int:
        """Extend the session's rows to ``until`` (default now + ttl); rows updated."""
        check_session(session)
        expires = until or _now() + self.ttl
        try:
            with self._engine.begin() as conn:
                result = conn.execute(
                    update(_T)
                    .where(_T.c.session_id == session, _T.c.expires_at > _now())
                    .values(expires_at=expires)
                )
        except DBAPIError as exc:
            raise _error(exc) from exc
        return int(result.rowcount or 0)

    def drop(self, session: str) -> int:
        """Forget a session's pseudonyms now (when the session ends)."""
        check_session(session)
        try:
            with self._engine.begin() as conn:
                result = conn.execute(delete(_T).where(_T.c.session_id == session))
        except DBAPIError as exc:
            raise _error(exc) from exc
        return int(result.rowcount or 0)

    def purge_expired(self, *, at: datetime | None = None) -> int:
        try:
            with self._engine.begin() as conn:
                result = conn.execute(delete(_T).where(_T.c.expires_at <= (at or _now())))
        except DBAPIError as exc:
            raise _error(exc) from exc
        return int(result.rowcount or 0)

    # -- internals -------------------------------------------------------------------------
    def _lookup(self, session: str, digest: bytes) -> str | None:
        try:
            with self._reader.connect() as conn:
                row = conn.execute(
                    select(_T.c.entity_type, _T.c.ordinal, _T.c.expires_at).where(
                        _T.c.value_digest == digest, _T.c.session_id == session
                    )
                ).one_or_none()
        except DBAPIError as exc:
            raise _error(exc) from exc
        if row is None:
            return None
        if row.expires_at <= _now():
            self._delete_expired(session, digest)
            return None
        return f"<{row.entity_type}_{row.ordinal}>"

    def _delete_expired(self, session: str, digest: bytes) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    delete(_T).where(
                        _T.c.value_digest == digest,
                        _T.c.session_id == session,
                        _T.c.expires_at <= _now(),
                    )
                )
        except DBAPIError as exc:
            raise _error(exc) from exc

    def _insert(self, session: str, entity_type: str, value: str, digest: bytes) -> str:
        now = _now()
        with self._engine.begin() as conn:
            current = conn.execute(
                select(func.max(_T.c.ordinal)).where(
                    _T.c.session_id == session, _T.c.entity_type == entity_type
                )
            ).scalar_one_or_none()
            ordinal = int(current or 0) + 1
            placeholder = f"<{entity_type}_{ordinal}>"
            blob = sealing.seal(self._keys, self._kek, session, placeholder, value)
            conn.execute(
                insert(_T).values(
                    session_id=session,
                    entity_type=entity_type,
                    ordinal=ordinal,
                    value_digest=digest,
                    value=blob,
                    created_at=now,
                    expires_at=now + self.ttl,
                )
            )
        return placeholder

    def _open(self, session: str, placeholder: str, blob: bytes) -> str:
        return sealing.unseal(self._keys, session, placeholder, blob)


def _error(exc: BaseException) -> StorageError:
    return storage_error(exc, "pseudonym store")
