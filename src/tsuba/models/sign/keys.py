"""Public keys a verifier trusts: PEM files, or signing keys of tsuba's key store."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tsuba.core.errors import InputError, KeyStoreError
from tsuba.core.keys.base import KeyKind, KeyManager
from tsuba.models.sign.bundle import TrustedKey, load_public_key

# Key store key that ``tsuba model sign`` and ``tsuba model register`` use by default.
DEFAULT_SIGNING_KEY = "model-signing"


def public_key_files(paths: Iterable[str | Path]) -> list[TrustedKey]:
    keys = []
    for path in paths:
        try:
            pem = Path(path).read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read public key {path}: {exc.strerror}") from None
        load_public_key(pem, what=f"public key {path}")
        keys.append(TrustedKey(pem, f"public key {path}"))
    return keys


def key_store_keys(keys: KeyManager, name: str | None = None) -> list[TrustedKey]:
    """Every version of key ``name`` (or of every EC P-256 key) in the key store.

    Older versions stay trusted so that a rotation does not invalidate what they signed;
    retired versions too, since a retired signing key can no longer sign anything new.
    """
    infos = [keys.info(name)] if name is not None else [
        info for info in keys.list_keys() if info.kind is KeyKind.ECDSA_P256
    ]
    trusted = []
    for info in infos:
        if info.kind is not KeyKind.ECDSA_P256:
            raise KeyStoreError(
                f"key '{info.name}' is {info.kind.value}: model signatures use ecdsa-p256 keys"
            )
        for version in info.versions:
            try:
                pem = keys.public_key_pem(info.name, version)
            except KeyStoreError:
                continue  # a version whose public key the backend no longer holds
            trusted.append(TrustedKey(pem, f"key store key '{info.name}' version {version}"))
    return trusted


__all__ = ["DEFAULT_SIGNING_KEY", "key_store_keys", "public_key_files"]
