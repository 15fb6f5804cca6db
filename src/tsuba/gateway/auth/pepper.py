"""Keys derived from the key store's pepper key, and the hashes made with them.

Why HMAC-SHA256 under a pepper rather than plain SHA-256: the secrets are 256-bit random,
so either resists guessing; the pepper adds that someone who can write to the database
(a restored backup, an injection elsewhere) still cannot plant a key hash of their own and
mint a working key, and a leaked table cannot be checked against candidate keys.

Why derive instead of calling the key store per request: a Vault or HSM round trip costs
milliseconds; ``keys.hmac(pepper, label)`` once per process gives a 32-byte key for local
HMACs (a standard KDF step) and the hot path stays in microseconds.  Each stored hash
records the pepper version it was made under.  The key store computes HMACs only with a
key's current version, so rotating the pepper key retires every API key hashed before:
processes started afterwards refuse them with that reason, while a running process keeps
what it derived until it restarts.  Revoke keys to end them everywhere at once; rotate the
pepper only when it may have leaked, and reissue keys after.
"""

from __future__ import annotations

import hashlib
import hmac
import threading

from tsuba.core.errors import KeyStoreError
from tsuba.core.keys import KeyInfo, KeyKind, KeyManager
from tsuba.gateway.auth.keyformat import SECRET_CHARS, base62

_HASH_LABEL = b"tsuba/apikeys/secret-hash/v1"
_SIGN_LABEL = b"tsuba/apikeys/request-signing/v1"
SIGNING_SECRET_SCHEME = "tss"  # noqa: S105 (a label, not a secret)


class PepperVersionGone(KeyStoreError):
    """A hash was made under a pepper version the key store no longer computes with."""

    def __init__(self, name: str, version: int, current: int) -> None:
        super().__init__(
            f"hashed under version {version} of key '{name}', which is now at version "
            f"{current}: issue a new API key"
        )
        self.version = version


def secret_hash(hash_key: bytes, prefix: str, secret: str) -> bytes:
    """The stored form of a key; the prefix is bound in so a hash cannot move between rows."""
    return hmac.new(hash_key, f"{prefix}\x00{secret}".encode(), hashlib.sha256).digest()


def signing_secret(sign_key: bytes, prefix: str) -> str:
    """The per-key request-signing secret, recomputable by the server and never stored."""
    raw = hmac.new(sign_key, prefix.encode(), hashlib.sha256).digest()
    return f"{SIGNING_SECRET_SCHEME}_{base62(raw, SECRET_CHARS)}"


class Pepper:
    """Per-version derived keys of one pepper key in the key store, cached in memory."""

    def __init__(self, keys: KeyManager, name: str) -> None:
        self._keys = keys
        self.name = name
        self._lock = threading.Lock()
        self._derived: dict[int, tuple[bytes, bytes]] = {}
        self._gone: dict[int, int] = {}  # version -> the newer current version seen

    def ensure(self) -> tuple[KeyInfo, bool]:
        """The pepper key (its current version is what new hashes use), and whether it was
        created now because it was missing."""
        names = {k.name for k in self._keys.list_keys()}
        if self.name in names:
            return self._keys.info(self.name), False
        return self._keys.create(self.name, KeyKind.HMAC_SHA256, exist_ok=True), True

    def hash_key(self, version: int) -> bytes:
        return self._pair(version)[0]

    def sign_key(self, version: int) -> bytes:
        return self._pair(version)[1]

    def _pair(self, version: int) -> tuple[bytes, bytes]:
        pair = self._derived.get(version)
        if pair is not None:
            return pair
        with self._lock:
            if version in self._gone:
                raise PepperVersionGone(self.name, version, self._gone[version])
            pair = self._derived.get(version)
            if pair is None:
                pair = self._derive(version)
                self._derived[version] = pair
        return pair

    def _derive(self, version: int) -> tuple[bytes, bytes]:
        # The interface computes HMACs only with the current version: read it before and
        # after, so a rotation in between cannot label one version's output as another's.
        before = self._keys.info(self.name).current_version
        pair = (self._keys.hmac(self.name, _HASH_LABEL), self._keys.hmac(self.name, _SIGN_LABEL))
        after = self._keys.info(self.name).current_version
        if before != after:
            raise KeyStoreError(
                f"key '{self.name}' was rotated while in use: retry the request"
            )
        if after != version:
            if version < after:  # versions only grow: this one is gone for good
                self._gone[version] = after
            raise PepperVersionGone(self.name, version, after)
        return pair
