"""Tree heads and their signatures: the byte encoding that is signed, and the JSON export.

Signed bytes (fixed length, 83 bytes; integers big-endian)::

    b"tsuba-audit-sth/v1\\n"   19 bytes: context, so the signature means nothing elsewhere
    log_id                     16 bytes: random id of the log, fixed when it is created
    tree_size                   8 bytes: number of entries
    timestamp                   8 bytes: milliseconds since the Unix epoch, UTC
    root_hash                  32 bytes: RFC 9162 MTH of the first tree_size entries

JSON export (``format`` ``"tsuba-audit-sth/v1"``; hashes, ids and signatures lowercase hex)::

    {"format": "tsuba-audit-sth/v1", "log_id": "<32 hex>", "tree_size": 1000,
     "timestamp": 1767225600000, "root_hash": "<64 hex>", "algorithm": "ed25519",
     "key_id": "<64 hex: SHA-256 of the public key's DER SubjectPublicKeyInfo>",
     "signature": "<hex>"}

``algorithm`` is ``ed25519`` (default) or ``ecdsa-p256-sha256``; a verifier takes the
algorithm from the public key it trusts and only checks that the head names the same one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tsuba.core.audit import _fields as f
from tsuba.core.audit.merkle import HASH_SIZE
from tsuba.core.errors import InputError, IntegrityError

STH_FORMAT = "tsuba-audit-sth/v1"
SIGNING_CONTEXT = b"tsuba-audit-sth/v1\n"
LOG_ID_SIZE = 16
ED25519 = "ed25519"
ECDSA_P256 = "ecdsa-p256-sha256"

PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey


def tree_head_bytes(log_id: bytes, tree_size: int, timestamp_ms: int, root_hash: bytes) -> bytes:
    """The exact bytes a tree head signature covers."""
    if len(log_id) != LOG_ID_SIZE or len(root_hash) != HASH_SIZE:
        raise ValueError("log id must be 16 bytes and root hash 32 bytes")
    return (
        SIGNING_CONTEXT
        + log_id
        + tree_size.to_bytes(8, "big")
        + timestamp_ms.to_bytes(8, "big")
        + root_hash
    )


# -- public keys ---------------------------------------------------------------------------


def load_public_key(pem: bytes | str) -> PublicKey:
    """An Ed25519 or ECDSA P-256 public key from PEM; anything else is an InputError."""
    raw = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(f"not a PEM public key: {exc}") from exc
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise InputError("public key must be Ed25519 or ECDSA P-256")


def key_id(key: PublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def algorithm_of(key: PublicKey) -> str:
    return ED25519 if isinstance(key, Ed25519PublicKey) else ECDSA_P256


def signature_valid(key: PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(key, Ed25519PublicKey):
            key.verify(signature, data)
        else:
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


# -- tree heads ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeHead:
    """The log's state at a size: what a signature commits to, minus time and key."""

    log_id: bytes
    tree_size: int
    root_hash: bytes


@dataclass(frozen=True)
class SignedTreeHead:
    log_id: bytes
    tree_size: int
    root_hash: bytes
    timestamp_ms: int
    algorithm: str
    key_id: str
    signature: bytes

    @property
    def head(self) -> TreeHead:
        return TreeHead(self.log_id, self.tree_size, self.root_hash)

    def signed_bytes(self) -> bytes:
        return tree_head_bytes(self.log_id, self.tree_size, self.timestamp_ms, self.root_hash)

    def check(self, key: PublicKey) -> None:
        """Raise IntegrityError unless ``key`` made this signature."""
        if self.key_id != key_id(key):
            raise IntegrityError(
                f"signed tree head of size {self.tree_size} is signed by key {self.key_id[:16]}…, "
                f"not by the trusted key {key_id(key)[:16]}…"
            )
        if self.algorithm != algorithm_of(key):
            raise IntegrityError(
                f"signed tree head of size {self.tree_size} names algorithm "
                f"{self.algorithm!r}, the trusted key is {algorithm_of(key)}"
            )
        if not signature_valid(key, self.signature, self.signed_bytes()):
            raise IntegrityError(
                f"signed tree head of size {self.tree_size}: signature does not verify"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STH_FORMAT,
            "log_id": self.log_id.hex(),
            "tree_size": self.tree_size,
            "timestamp": self.timestamp_ms,
            "root_hash": self.root_hash.hex(),
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignedTreeHead:
        what = "signed tree head"
        f.check_format(data, what, STH_FORMAT)
        f.check_keys(
            data,
            what,
            {"format", "log_id", "tree_size", "timestamp", "root_hash", "algorithm",
             "key_id", "signature"},
        )
        algorithm = f.get_str(data, "algorithm", what)
        if algorithm not in (ED25519, ECDSA_P256):
            raise InputError(f"{what}: unsupported algorithm {algorithm!r}")
        return cls(
            log_id=f.get_hex(data, "log_id", what, LOG_ID_SIZE),
            tree_size=f.get_int(data, "tree_size", what),
            root_hash=f.get_hex(data, "root_hash", what, HASH_SIZE),
            timestamp_ms=f.get_int(data, "timestamp", what),
            algorithm=algorithm,
            key_id=f.get_hex(data, "key_id", what, 32).hex(),
            signature=f.get_hex(data, "signature", what),
        )
