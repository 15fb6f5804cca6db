"""Pick and open the key backend that the settings name; any problem fails closed."""

from __future__ import annotations

from tsuba.core.config import Settings
from tsuba.core.errors import HomeError, KeyStoreError
from tsuba.core.keys.base import KeyManager
from tsuba.core.keys.local import LocalKeyManager
from tsuba.core.keys.master import resolve_master


def open_key_manager(settings: Settings) -> KeyManager:
    """The configured :class:`KeyManager`; KeyStoreError (or HomeError) when it cannot open."""
    backend = settings.keys.backend
    if backend == "local":
        return _local(settings)
    if backend == "pkcs11":
        return _pkcs11(settings)
    if backend == "vault":
        return _vault(settings)
    raise KeyStoreError(f"unknown key backend {backend!r}: use local, pkcs11 or vault")


def _local(settings: Settings) -> KeyManager:
    if not settings.home.is_dir():
        raise HomeError(f"no data directory at {settings.home}: run 'tsuba init'")
    keyring = settings.path(settings.keys.keyring_file)
    if not keyring.exists():
        raise KeyStoreError(
            f"no keyring at {keyring}: run 'tsuba init --force' to create the missing pieces"
        )
    return LocalKeyManager(keyring, resolve_master(settings))


def _pkcs11(settings: Settings) -> KeyManager:
    keys = settings.keys
    missing = [
        f"keys.{name}"
        for name, value in (
            ("pkcs11_module", keys.pkcs11_module),
            ("pkcs11_token_label", keys.pkcs11_token_label),
            ("pkcs11_pin", keys.pkcs11_pin),
        )
        if not value
    ]
    if missing:
        raise KeyStoreError(f"key backend pkcs11 needs {', '.join(missing)} in the settings")
    try:
        from tsuba.core.keys.pkcs11 import Pkcs11KeyManager  # noqa: PLC0415 (optional extra)
    except ImportError:
        raise KeyStoreError(
            "key backend pkcs11 needs python-pkcs11: pip install 'tsuba[pkcs11]'"
        ) from None
    assert keys.pkcs11_module and keys.pkcs11_token_label and keys.pkcs11_pin
    return Pkcs11KeyManager(
        keys.pkcs11_module, keys.pkcs11_token_label, keys.pkcs11_pin.get_secret_value()
    )


def _vault(settings: Settings) -> KeyManager:
    keys = settings.keys
    if not keys.vault_addr or not keys.vault_token:
        raise KeyStoreError(
            "key backend vault needs keys.vault_addr and keys.vault_token in the settings "
            "(TSUBA_KEYS__VAULT_ADDR, TSUBA_KEYS__VAULT_TOKEN)"
        )
    try:
        from tsuba.core.keys.vault import VaultKeyManager  # noqa: PLC0415 (optional extra)
    except ImportError:
        raise KeyStoreError("key backend vault needs hvac: pip install 'tsuba[vault]'") from None
    return VaultKeyManager(
        keys.vault_addr,
        keys.vault_token.get_secret_value(),
        mount=keys.vault_mount,
        namespace=keys.vault_namespace,
    )
