"""The master key that encrypts the local keyring, and where it comes from.

Sources, first found wins: ``TSUBA_MASTER_KEY`` (base64 of 32 bytes), ``TSUBA_MASTER_PASSPHRASE``
(stretched with scrypt and the salt in the keyring header), then the master key file that
``tsuba init`` writes (0600; refused when group or others can read it, as ssh does).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tsuba.core.config import Settings
from tsuba.core.errors import KeyStoreError
from tsuba.core.keys.files import create_exclusive, loose_permissions

MASTER_KEY_BYTES = 32


@dataclass(frozen=True)
class MasterSecret:
    """A raw master key or a passphrase; ``source`` says where it came from, for messages."""

    source: str
    key: bytes | None = field(default=None, repr=False)
    passphrase: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.key is None) == (self.passphrase is None):
            raise ValueError("a master secret is either a key or a passphrase")
        if self.key is not None and len(self.key) != MASTER_KEY_BYTES:
            raise KeyStoreError(
                f"master key from {self.source} must be {MASTER_KEY_BYTES} bytes, "
                f"got {len(self.key)}"
            )
        if self.passphrase is not None and not self.passphrase:
            raise KeyStoreError(f"master passphrase from {self.source} is empty")

    @classmethod
    def from_base64(cls, text: str, source: str) -> MasterSecret:
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeyStoreError(
                f"master key from {source} is not valid base64: it must be base64 of "
                f"{MASTER_KEY_BYTES} random bytes"
            ) from None
        return cls(source=source, key=key)

    def root_key(self, salt: bytes, n: int, r: int, p: int) -> bytes:
        """The 32-byte root the keyring keys derive from (scrypt only for a passphrase)."""
        if self.key is not None:
            return self.key
        assert self.passphrase is not None
        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(self.passphrase)


def resolve_master(settings: Settings) -> MasterSecret:
    """The master secret the settings point at; KeyStoreError when there is none usable."""
    if settings.master_key is not None:
        return MasterSecret.from_base64(settings.master_key.get_secret_value(), "TSUBA_MASTER_KEY")
    if settings.master_passphrase is not None:
        return MasterSecret(
            source="TSUBA_MASTER_PASSPHRASE",
            passphrase=settings.master_passphrase.get_secret_value().encode(),
        )
    return read_master_key_file(settings.path(settings.keys.master_key_file))


def read_master_key_file(path: Path) -> MasterSecret:
    try:
        loose = loose_permissions(path)
        raw = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise KeyStoreError(
            f"no master key: {path} does not exist and neither TSUBA_MASTER_KEY nor "
            "TSUBA_MASTER_PASSPHRASE is set (run 'tsuba init' to create one)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyStoreError(f"cannot read master key file {path}: {exc}") from exc
    if loose is not None:
        raise KeyStoreError(
            f"master key file {path} is accessible by group or others (mode {loose:04o}): "
            f"run 'chmod 600 {path}'"
        )
    return MasterSecret.from_base64(raw, str(path))


def write_master_key_file(path: Path) -> bool:
    """Create a new random master key file (0600); False when one already exists."""
    data = base64.b64encode(os.urandom(MASTER_KEY_BYTES)) + b"\n"
    return create_exclusive(path, data)
