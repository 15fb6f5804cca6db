"""What the audit log needs from a key: sign bytes, show the public key.

The log does not care where the private key lives (local keyring, HSM, Vault), so it asks
only for this small protocol; :class:`KeyManagerSigner` adapts any
:class:`tsuba.core.keys.KeyManager`, and :class:`PrivateKeySigner` wraps a key held in
memory.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tsuba.core.audit.treehead import ECDSA_P256, ED25519
from tsuba.core.errors import KeyStoreError
from tsuba.core.keys.base import KeyManager


@runtime_checkable
class Signer(Protocol):
    def sign(self, data: bytes) -> bytes: ...

    def public_key_pem(self) -> bytes: ...


class PrivateKeySigner:
    """An Ed25519 or ECDSA P-256 private key held in this process."""

    def __init__(self, key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> None:
        if isinstance(key, ec.EllipticCurvePrivateKey) and not isinstance(key.curve, ec.SECP256R1):
            raise KeyStoreError("audit signing key must be Ed25519 or ECDSA P-256")
        self._key = key

    @classmethod
    def generate(cls) -> PrivateKeySigner:
        return cls(Ed25519PrivateKey.generate())

    def sign(self, data: bytes) -> bytes:
        if isinstance(self._key, Ed25519PrivateKey):
            return self._key.sign(data)
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

    def public_key_pem(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class KeyManagerSigner:
    """The named key of a key manager; every version stays trusted for old tree heads."""

    def __init__(self, keys: KeyManager, name: str) -> None:
        self._keys = keys
        self._name = name

    def sign(self, data: bytes) -> bytes:
        sig = self._keys.sign(self._name, data)
        if sig.algorithm not in (ED25519, ECDSA_P256):
            raise KeyStoreError(
                f"key '{self._name}' signs with {sig.algorithm}; audit tree heads need an "
                "ed25519 (or ecdsa-p256) key"
            )
        return sig.value

    def public_key_pem(self) -> bytes:
        return self._keys.public_key_pem(self._name)

    def all_public_keys_pem(self) -> list[bytes]:
        """Public keys of every version, retired ones included: old heads still verify."""
        info = self._keys.info(self._name)
        return [self._keys.public_key_pem(self._name, v) for v in info.versions]
