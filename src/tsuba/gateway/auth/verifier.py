"""The hot path of API keys: a cached verified key, checked against the stored versions.

Each request reads one row pair (the API key revocation version and the identity policy
version, in one statement) on a kept connection; while both are unchanged the cache answers
with one local HMAC and a dict lookup.  A revocation, rotation, principal change or
deletion in any process bumps a version in its own transaction, so every process refuses
the key on its next request.  ``revocation_check_seconds`` (at most 1) may reuse a version
read for that long instead.  Storage and key-store failures raise (fail closed).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, bindparam, select

from tsuba.core.errors import StorageError
from tsuba.core.events import Severity
from tsuba.core.identity.models import POLICY_VERSION_ROW, PolicyVersion, Principal
from tsuba.core.identity.policy import iso
from tsuba.core.keys import KeyManager
from tsuba.core.storage.readpool import ReadConnections
from tsuba.gateway.auth.failures import AuthFailure
from tsuba.gateway.auth.keyformat import is_prefix, parse_key
from tsuba.gateway.auth.last_used import LastUsed
from tsuba.gateway.auth.pepper import Pepper, PepperVersionGone, secret_hash, signing_secret
from tsuba.gateway.auth.tables import VERSION_ROW, ApiKey, ApiKeyVersion
from tsuba.gateway.context import AuthMethod, Identity

INVALID = "invalid API key: check the key you sent (it looks like tsk_<id>_<secret>)"

_VERSIONS = select(
    select(ApiKeyVersion.version).where(ApiKeyVersion.id == VERSION_ROW).scalar_subquery(),
    select(PolicyVersion.version).where(PolicyVersion.id == POLICY_VERSION_ROW).scalar_subquery(),
)
_LOAD = (
    select(
        ApiKey.id,
        ApiKey.prefix,
        Principal.name,
        Principal.disabled,
        ApiKey.secret_hash,
        ApiKey.pepper_version,
        ApiKey.scopes,
        ApiKey.status,
        ApiKey.signing,
        ApiKey.expires_at,
        ApiKey.replaced_by,
    )
    .join(Principal, Principal.id == ApiKey.principal_id)
    .where(ApiKey.prefix == bindparam("prefix"))
)


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    """A stored key as the verifier caches it (its hash, never its secret)."""

    id: int
    prefix: str
    principal: str
    principal_disabled: bool
    secret_hash: bytes
    pepper_version: int
    scopes: frozenset[str]
    revoked: bool
    signing: bool
    expires_at: datetime | None
    expires_ts: float | None
    replaced_by: str | None


Versions = tuple[int, int]


def _newer(a: Versions, b: Versions | None) -> bool:
    return b is None or a[0] > b[0] or a[1] > b[1]


class ApiKeyVerifier:
    """Verifies ``tsk_`` keys (bearer) and finds signing credentials (HMAC requests)."""

    def __init__(
        self,
        engine: Engine,
        keys: KeyManager,
        *,
        pepper_key: str = "apikey-pepper",
        cache_size: int = 100_000,
        revocation_check_seconds: float = 0.0,
        last_used_interval_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 <= revocation_check_seconds <= 1:
            raise ValueError("revocation_check_seconds must be between 0 and 1")
        self._engine = engine
        self._pepper = Pepper(keys, pepper_key)
        self._max = cache_size
        self._check_every = revocation_check_seconds
        self._clock = clock
        self._conns = ReadConnections(engine, what="API key store")
        self._last_used = LastUsed(engine, interval=last_used_interval_seconds)
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, VerifiedKey | None] = OrderedDict()
        self._epoch: Versions | None = None
        self._read_at = 0.0

    # -- public ----------------------------------------------------------------------------
    def verify(self, text: str) -> Identity:
        """The identity a bearer API key proves, or :class:`AuthFailure`."""
        parsed = parse_key(text)
        if parsed is None:
            raise AuthFailure(INVALID, reason="malformed API key", method="api_key")
        versions = self._versions()
        entry = self._lookup_at(parsed.prefix, versions)
        if entry is None:
            raise AuthFailure(
                INVALID, reason="unknown API key prefix", method="api_key",
                credential_id=parsed.prefix,
            )
        expected = secret_hash(self._hash_key(entry), entry.prefix, parsed.secret)
        if not hmac.compare_digest(expected, entry.secret_hash):
            raise AuthFailure(
                INVALID, reason="API key secret does not match", method="api_key",
                credential_id=entry.prefix, principal=entry.principal, severity=Severity.MEDIUM,
            )
        now = self._clock()
        self._check_usable(entry, now)
        if entry.signing:
            raise AuthFailure(
                f"API key {entry.prefix} must be used with signed requests "
                "(x-tsuba-key-id, x-tsuba-timestamp, x-tsuba-nonce, x-tsuba-signature)",
                reason="signing key used as a bearer token", method="api_key",
                credential_id=entry.prefix, principal=entry.principal,
            )
        self._last_used.touch(entry.id, now)
        return Identity(
            principal=entry.principal,
            method="api_key",
            credential_id=entry.prefix,
            scopes=entry.scopes,
            policy_version=versions[1],  # read in the same statement: spares the authorizer one
        )

    def signing_credential(self, key_id: str, now: float) -> tuple[VerifiedKey, bytes]:
        """A usable signing key and its HMAC secret, or :class:`AuthFailure`."""
        entry = self.lookup(key_id) if is_prefix(key_id) else None
        if entry is None:
            raise AuthFailure(
                "invalid request signature: unknown x-tsuba-key-id",
                reason="unknown signing key id", method="hmac",
            )
        self._check_usable(entry, now, method="hmac")
        if not entry.signing:
            raise AuthFailure(
                f"API key {entry.prefix} is not enabled for request signing: send it as "
                "Authorization: Bearer, or issue a key with signing",
                reason="key not enabled for signing", method="hmac",
                credential_id=entry.prefix, principal=entry.principal,
            )
        secret = signing_secret(self._sign_key(entry), entry.prefix).encode()
        self._last_used.touch(entry.id, now)
        return entry, secret

    def lookup(self, prefix: str) -> VerifiedKey | None:
        """The stored key ``prefix`` as of the current versions (cached), or None."""
        return self._lookup_at(prefix, self._versions())

    def _lookup_at(self, prefix: str, versions: Versions) -> VerifiedKey | None:
        with self._lock:
            if _newer(versions, self._epoch):
                self._cache.clear()
                self._epoch = versions
            if versions == self._epoch and prefix in self._cache:
                self._cache.move_to_end(prefix)
                return self._cache[prefix]
        entry = self._conns.run(lambda conn: _load(conn, prefix))
        with self._lock:
            # Only cache what was read after reading the versions the cache stands at.
            if versions == self._epoch:
                self._cache[prefix] = entry
                if len(self._cache) > self._max:
                    self._cache.popitem(last=False)
        return entry

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()
            self._epoch = None
            self._read_at = 0.0

    def flush_last_used(self) -> int:
        return self._last_used.flush()

    def close(self) -> None:
        self._last_used.close()
        self._conns.close()

    # -- internals -------------------------------------------------------------------------
    def _versions(self) -> Versions:
        if self._check_every > 0:
            now = time.monotonic()
            epoch = self._epoch
            if epoch is not None and now - self._read_at < self._check_every:
                return epoch
            versions = self._read_versions()
            self._read_at = now
            return versions
        return self._read_versions()

    def _read_versions(self) -> Versions:
        row = self._conns.first_row(_VERSIONS)
        if row is None or row[0] is None or row[1] is None:
            raise StorageError(
                "API key store is not usable: a version row is missing (run 'tsuba db upgrade')"
            )
        return int(row[0]), int(row[1])

    def _check_usable(
        self, entry: VerifiedKey, now: float, method: AuthMethod = "api_key"
    ) -> None:
        if entry.revoked:
            raise _refused(
                entry, method, f"API key {entry.prefix} is revoked: ask for a new key",
                "revoked API key",
            )
        if entry.expires_ts is not None and entry.expires_ts <= now:
            if entry.replaced_by is not None:
                raise _refused(
                    entry, method,
                    f"API key {entry.prefix} was rotated and its grace period ended at "
                    f"{iso(entry.expires_at)}: use its successor",
                    "rotated API key past its grace period",
                )
            raise _refused(
                entry, method, f"API key {entry.prefix} expired at {iso(entry.expires_at)}",
                "expired API key",
            )
        if entry.principal_disabled:
            raise _refused(
                entry, method, f"the principal of API key {entry.prefix} is disabled",
                f"principal '{entry.principal}' is disabled",
            )

    def _hash_key(self, entry: VerifiedKey) -> bytes:
        try:
            return self._pepper.hash_key(entry.pepper_version)
        except PepperVersionGone as exc:
            raise AuthFailure(
                f"API key {entry.prefix} can no longer be verified: ask for a new key",
                reason=f"API key {exc.message}", method="api_key",
                credential_id=entry.prefix, principal=entry.principal,
            ) from exc

    def _sign_key(self, entry: VerifiedKey) -> bytes:
        try:
            return self._pepper.sign_key(entry.pepper_version)
        except PepperVersionGone as exc:
            raise AuthFailure(
                f"API key {entry.prefix} can no longer be verified: ask for a new key",
                reason=f"signing key {exc.message}", method="hmac",
                credential_id=entry.prefix, principal=entry.principal,
            ) from exc


def _refused(entry: VerifiedKey, method: AuthMethod, message: str, reason: str) -> AuthFailure:
    return AuthFailure(
        message, reason=reason, method=method, credential_id=entry.prefix,
        principal=entry.principal,
    )


def _load(conn: Connection, prefix: str) -> VerifiedKey | None:
    row = conn.execute(_LOAD, {"prefix": prefix}).one_or_none()
    if row is None:
        return None
    expires_at: datetime | None = row.expires_at
    return VerifiedKey(
        id=row.id,
        prefix=row.prefix,
        principal=row.name,
        principal_disabled=bool(row.disabled),
        secret_hash=bytes(row.secret_hash),
        pepper_version=int(row.pepper_version),
        scopes=frozenset(row.scopes),
        revoked=row.status != "active",
        signing=bool(row.signing),
        expires_at=expires_at,
        expires_ts=None if expires_at is None else expires_at.astimezone(UTC).timestamp(),
        replaced_by=row.replaced_by,
    )
