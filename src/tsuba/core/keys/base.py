"""The key-management interface every backend implements (local keyring, PKCS#11, Vault).

Keys are named and versioned.  ``wrap``/``unwrap`` use the current version of a symmetric
key-encryption key and record the version they used, so old versions keep decrypting until
retired.  ``sign`` uses an asymmetric key; ``public_key_pem`` exports what a verifier needs.
Backends raise :class:`tsuba.core.errors.KeyStoreError` on any failure: callers fail closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable


class KeyKind(StrEnum):
    AES256_GCM = "aes256-gcm"  # key-encryption key for wrap/unwrap
    ED25519 = "ed25519"  # signatures (audit tree heads, envelopes)
    ECDSA_P256 = "ecdsa-p256"  # signatures interoperable with tools that refuse Ed25519
    HMAC_SHA256 = "hmac-sha256"  # keyed hashes (pseudonyms, request signing)

    @property
    def symmetric(self) -> bool:
        return self in (KeyKind.AES256_GCM, KeyKind.HMAC_SHA256)


@dataclass(frozen=True)
class KeyInfo:
    name: str
    kind: KeyKind
    current_version: int
    versions: tuple[int, ...]
    retired: tuple[int, ...] = ()
    created_at: datetime | None = None
    backend: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Wrapped:
    """A wrapped secret and the key version that wrapped it."""

    key_name: str
    version: int
    ciphertext: bytes


@dataclass(frozen=True)
class Signature:
    key_name: str
    version: int
    algorithm: str  # "ed25519" or "ecdsa-p256-sha256"
    value: bytes


@runtime_checkable
class KeyManager(Protocol):
    backend: str

    def create(self, name: str, kind: KeyKind, *, exist_ok: bool = False) -> KeyInfo: ...

    def info(self, name: str) -> KeyInfo: ...

    def list_keys(self) -> list[KeyInfo]: ...

    def rotate(self, name: str) -> KeyInfo: ...

    def retire(self, name: str, version: int) -> KeyInfo: ...

    def wrap(self, name: str, plaintext: bytes, aad: bytes = b"") -> Wrapped: ...

    def unwrap(self, wrapped: Wrapped, aad: bytes = b"") -> bytes: ...

    def sign(self, name: str, data: bytes) -> Signature: ...

    def public_key_pem(self, name: str, version: int | None = None) -> bytes: ...

    def hmac(self, name: str, data: bytes) -> bytes: ...
