"""Issuing, listing, rotating and revoking API keys; every change is one transaction.

A key is shown once, as ``tsk_<prefix id>_<secret>``, and stored only as an HMAC of its
secret (see :mod:`tsuba.gateway.auth.pepper`) under its public prefix id.  Each change
bumps the revocation version in the same transaction, so every process's cache of verified
keys goes stale with the commit; events are handed to ``emit`` after the commit (as the
identity service does) so that an audit append never waits on our own write lock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tsuba.core.errors import ConflictError, InputError, NotFoundError, StorageError
from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity
from tsuba.core.identity.models import Principal
from tsuba.core.identity.policy import iso
from tsuba.core.keys import KeyManager
from tsuba.core.keys.events import key_event
from tsuba.core.storage.sessions import read_session, versioned_write
from tsuba.gateway.auth.keyformat import format_key, is_prefix, new_key
from tsuba.gateway.auth.pepper import Pepper, secret_hash, signing_secret
from tsuba.gateway.auth.records import ApiKeyRecord, IssuedKey
from tsuba.gateway.auth.tables import VERSION_ROW, ApiKey, ApiKeyVersion

Emit = Callable[[SecurityEvent], object]

DEFAULT_PEPPER_KEY = "apikey-pepper"
_SCOPE = re.compile(r"[a-z0-9*][a-z0-9:._/*-]{0,63}")
MAX_SCOPES = 32
MAX_DESCRIPTION = 256
MAX_GRACE = timedelta(days=30)


def _now() -> datetime:
    return datetime.now(UTC)


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    out = sorted(set(scopes))
    if len(out) > MAX_SCOPES:
        raise InputError(f"too many scopes ({len(out)}): at most {MAX_SCOPES}")
    for scope in out:
        if not isinstance(scope, str) or not _SCOPE.fullmatch(scope):
            raise InputError(
                f"invalid scope {scope!r}: use 1-64 lowercase letters, digits and : . _ / * -"
            )
    return tuple(out)


def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
    if expires_at is None:
        return
    if expires_at.tzinfo is None:
        raise InputError("expiry must carry a timezone (use UTC)")
    if expires_at <= now:
        raise InputError(f"expiry {iso(expires_at)} is not in the future")


def _record(row: ApiKey, principal: str) -> ApiKeyRecord:
    return ApiKeyRecord(
        prefix=row.prefix,
        principal=principal,
        scopes=tuple(row.scopes),
        status=row.status,
        signing=row.signing,
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        replaces=row.replaces,
        replaced_by=row.replaced_by,
        last_used_at=row.last_used_at,
    )


class ApiKeyService:
    """API keys in one database, hashed under a pepper key in ``keys``.

    ``actor`` names who makes the changes (recorded in events and rows); ``emit`` receives
    one event per committed change.
    """

    def __init__(
        self,
        engine: Engine,
        keys: KeyManager,
        *,
        pepper_key: str = DEFAULT_PEPPER_KEY,
        emit: Emit | None = None,
        actor: str = "system",
    ) -> None:
        if not actor or len(actor) > 128 or not actor.isprintable():
            raise InputError(f"actor {actor!r} must be 1-128 printable characters")
        self._engine = engine
        self._pepper = Pepper(keys, pepper_key)
        self._emit = emit
        self.actor = actor

    # -- changes ---------------------------------------------------------------------------
    def create(
        self,
        principal: str,
        scopes: Iterable[str] = (),
        expires_at: datetime | None = None,
        *,
        signing: bool = False,
        description: str | None = None,
    ) -> IssuedKey:
        """Issue a key for an existing, enabled principal; the plaintext is returned once."""
        clean_scopes = check_scopes(scopes)
        now = _now()
        _check_expiry(expires_at, now)
        if description is not None and (
            len(description) > MAX_DESCRIPTION or not description.isprintable()
        ):
            raise InputError(
                f"description must be at most {MAX_DESCRIPTION} printable characters"
            )
        version = self._pepper_version()
        with self._write() as s:
            p_row = self._principal(s, principal)
            issued = self._issue(
                s, p_row, scopes=clean_scopes, expires_at=expires_at, signing=signing,
                description=description, version=version, now=now, replaces=None,
            )
        self._publish(
            "create",
            issued.record,
            f"created API key {issued.record.prefix} for '{principal}'",
            {},
        )
        return issued

    def rotate(
        self,
        prefix: str,
        *,
        grace: timedelta = timedelta(hours=1),
        expires_at: datetime | Literal["keep"] | None = "keep",
    ) -> IssuedKey:
        """Issue a successor of ``prefix``; the old key keeps working until ``grace`` ends.

        The successor keeps the principal, scopes, signing and description; its lifetime is
        the old key's (from now) unless ``expires_at`` is given (``None``: no expiry).
        """
        if not timedelta(0) <= grace <= MAX_GRACE:
            raise InputError("grace must be between 0 and 30 days")
        now = _now()
        if expires_at != "keep":
            _check_expiry(expires_at, now)
        version = self._pepper_version()
        with self._write() as s:
            old, p_row = self._key(s, prefix)
            if old.status == "revoked":
                raise ConflictError(f"API key {prefix} is revoked: create a new key instead")
            if old.replaced_by is not None:
                raise ConflictError(
                    f"API key {prefix} was already rotated to {old.replaced_by}: rotate that one"
                )
            if old.expires_at is not None and old.expires_at <= now:
                raise ConflictError(
                    f"API key {prefix} expired at {iso(old.expires_at)}: create a new key"
                )
            if p_row.disabled:
                raise ConflictError(f"principal '{p_row.name}' is disabled: enable it first")
            if expires_at == "keep":
                new_expiry = (
                    None if old.expires_at is None else now + (old.expires_at - old.created_at)
                )
            else:
                new_expiry = expires_at
            issued = self._issue(
                s, p_row, scopes=tuple(old.scopes), expires_at=new_expiry, signing=old.signing,
                description=old.description, version=version, now=now, replaces=old.prefix,
            )
            grace_end = now + grace
            old.expires_at = grace_end if old.expires_at is None else min(
                old.expires_at, grace_end
            )
            old.replaced_by = issued.record.prefix
            s.flush()
            old_record = _record(old, p_row.name)
        self._publish(
            "update",
            old_record,
            f"rotated API key {prefix} to {issued.record.prefix}; {prefix} works until "
            f"{iso(old_record.expires_at)}",
            {"change": "rotate", "successor": issued.record.to_dict()},
        )
        return issued

    def revoke(self, prefix: str) -> ApiKeyRecord:
        """Refuse the key from now on, in every process (within one request)."""
        now = _now()
        with self._write() as s:
            row, p_row = self._key(s, prefix)
            if row.status == "revoked":
                raise ConflictError(
                    f"API key {prefix} was already revoked at {iso(row.revoked_at)}"
                )
            row.status = "revoked"
            row.revoked_at = now
            s.flush()
            record = _record(row, p_row.name)
        self._publish(
            "disable", record, f"revoked API key {prefix} of '{record.principal}'",
            {"change": "revoke"},
        )
        return record

    # -- reads -----------------------------------------------------------------------------
    def get(self, prefix: str) -> ApiKeyRecord:
        with self._read() as s:
            row, p_row = self._key(s, prefix)
            return _record(row, p_row.name)

    def list_keys(self, *, principal: str | None = None) -> list[ApiKeyRecord]:
        query = (
            select(ApiKey, Principal.name)
            .join(Principal, Principal.id == ApiKey.principal_id)
            .order_by(Principal.name, ApiKey.created_at, ApiKey.id)
        )
        with self._read() as s:
            if principal is not None:
                query = query.where(ApiKey.principal_id == self._principal_id(s, principal))
            return [_record(row, name) for row, name in s.execute(query)]

    def revocation_version(self) -> int:
        with self._read() as s:
            version = s.scalar(select(ApiKeyVersion.version).where(ApiKeyVersion.id == VERSION_ROW))
        if version is None:
            raise StorageError("the API key version row is missing: run 'tsuba db upgrade'")
        return int(version)

    # -- internals -------------------------------------------------------------------------
    def _pepper_version(self) -> int:
        """The pepper's current version, derived now so no key-store call runs inside a
        database transaction."""
        info, created = self._pepper.ensure()
        if created and self._emit is not None:
            self._emit(key_event("create", info, actor=self.actor))
        self._pepper.hash_key(info.current_version)
        return info.current_version

    def _issue(
        self,
        s: Session,
        p_row: Principal,
        *,
        scopes: tuple[str, ...],
        expires_at: datetime | None,
        signing: bool,
        description: str | None,
        version: int,
        now: datetime,
        replaces: str | None,
    ) -> IssuedKey:
        parsed = new_key()
        row = ApiKey(
            prefix=parsed.prefix,
            principal_id=p_row.id,
            secret_hash=secret_hash(self._pepper.hash_key(version), parsed.prefix, parsed.secret),
            pepper_version=version,
            scopes=list(scopes),
            status="active",
            signing=signing,
            description=description,
            created_at=now,
            created_by=self.actor,
            expires_at=expires_at,
            revoked_at=None,
            replaces=replaces,
            replaced_by=None,
            last_used_at=None,
        )
        s.add(row)
        s.flush()
        sign = signing_secret(self._pepper.sign_key(version), parsed.prefix) if signing else None
        return IssuedKey(format_key(parsed), _record(row, p_row.name), sign)

    @staticmethod
    def _principal(s: Session, name: str) -> Principal:
        row = s.scalar(select(Principal).where(Principal.name == name))
        if row is None:
            raise NotFoundError(
                f"principal '{name}' does not exist: create it with 'tsuba principal create'"
            )
        if row.disabled:
            raise ConflictError(f"principal '{name}' is disabled: enable it first")
        return row

    @staticmethod
    def _principal_id(s: Session, name: str) -> int:
        pid = s.scalar(select(Principal.id).where(Principal.name == name))
        if pid is None:
            raise NotFoundError(f"principal '{name}' does not exist")
        return pid

    @staticmethod
    def _key(s: Session, prefix: str) -> tuple[ApiKey, Principal]:
        if not is_prefix(prefix):
            raise InputError(
                f"{prefix!r} is not an API key prefix id: it looks like tsk_ and 13 letters or "
                "digits (see 'tsuba apikeys list')"
            )
        found = s.execute(
            select(ApiKey, Principal)
            .join(Principal, Principal.id == ApiKey.principal_id)
            .where(ApiKey.prefix == prefix)
        ).one_or_none()
        if found is None:
            raise NotFoundError(f"API key {prefix} does not exist")
        return found[0], found[1]

    def _read(self) -> AbstractContextManager[Session]:
        return read_session(self._engine, "API key store")

    def _write(self) -> AbstractContextManager[Session]:
        """A transaction that also bumps the revocation version, so caches go stale."""
        return versioned_write(self._engine, "API key store", ApiKeyVersion, VERSION_ROW)

    def _publish(
        self, activity: str, record: ApiKeyRecord, message: str, extra: dict[str, Any]
    ) -> None:
        if self._emit is None:
            return
        self._emit(
            SecurityEvent(
                event_class=EventClass.ACCOUNT_CHANGE,
                activity=activity,
                severity=Severity.INFO,
                actor=self.actor,
                resource=f"apikey/{record.prefix}",
                outcome=Outcome.SUCCESS,
                message=message,
                attributes={"api_key": record.to_dict(), "principal": record.principal, **extra},
            )
        )


def create_api_key(
    engine: Engine,
    principal: str,
    scopes: Iterable[str] = (),
    expires_at: datetime | None = None,
    *,
    keys: KeyManager,
    signing: bool = False,
    description: str | None = None,
    pepper_key: str = DEFAULT_PEPPER_KEY,
    emit: Emit | None = None,
    actor: str = "system",
) -> tuple[str, ApiKeyRecord]:
    """Issue a key; returns the plaintext (show it once) and its record."""
    service = ApiKeyService(engine, keys, pepper_key=pepper_key, emit=emit, actor=actor)
    issued = service.create(
        principal, scopes, expires_at, signing=signing, description=description
    )
    return issued.key, issued.record


