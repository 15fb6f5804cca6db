"""PKCS#11 specifics against a real SoftHSM2 token (common behaviour: test_keys_contract.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pkcs11 import Attribute, ObjectClass

from conftest import SoftHsm
from tsuba.core.config import load_settings
from tsuba.core.errors import KeyStoreError
from tsuba.core.keys import KeyKind, envelope, open_key_manager
from tsuba.core.keys.pkcs11 import Pkcs11KeyManager


def _objects(km: Pkcs11KeyManager, label: str) -> dict[ObjectClass, list[Any]]:
    """The token objects carrying ``label``, read through the manager's own logged-in session."""
    found: dict[ObjectClass, list[Any]] = {}
    for obj in km._shared.session.get_objects({Attribute.LABEL: label}):
        found.setdefault(obj[Attribute.CLASS], []).append(obj)
    return found


def test_versions_are_labelled_objects_that_never_leave_the_token(
    pkcs11_km: Pkcs11KeyManager, key_name: str
) -> None:
    pkcs11_km.create(key_name, KeyKind.AES256_GCM)
    pkcs11_km.rotate(key_name)
    for version in (1, 2):
        objs = _objects(pkcs11_km, f"{key_name}.v{version}")
        (secret,) = objs[ObjectClass.SECRET_KEY]
        assert secret[Attribute.SENSITIVE] is True
        assert secret[Attribute.EXTRACTABLE] is False
        assert secret[Attribute.ID] == f"{key_name}.v{version}".encode()


def test_retire_destroys_secret_and_leaves_tombstone(
    pkcs11_km: Pkcs11KeyManager, key_name: str
) -> None:
    pkcs11_km.create(key_name, KeyKind.ECDSA_P256)
    pem1 = pkcs11_km.public_key_pem(key_name)
    pkcs11_km.rotate(key_name)
    info = pkcs11_km.retire(key_name, 1)
    assert info.retired == (1,) and info.versions == (1, 2)
    objs = _objects(pkcs11_km, f"{key_name}.v1")
    assert ObjectClass.PRIVATE_KEY not in objs
    assert len(objs[ObjectClass.DATA]) == 1 and len(objs[ObjectClass.PUBLIC_KEY]) == 1
    assert pkcs11_km.public_key_pem(key_name, 1) == pem1  # old signatures still verify
    assert pkcs11_km.sign(key_name, b"x").version == 2
    assert pkcs11_km.retire(key_name, 1).retired == (1,)  # idempotent: one tombstone
    assert len(_objects(pkcs11_km, f"{key_name}.v1")[ObjectClass.DATA]) == 1


def test_duplicate_label_is_refused(pkcs11_km: Pkcs11KeyManager, key_name: str) -> None:
    pkcs11_km.create(key_name, KeyKind.AES256_GCM)
    pkcs11_km._generate(pkcs11_km._shared.session, key_name, KeyKind.AES256_GCM, 1)
    with pytest.raises(KeyStoreError, match=f"2 objects labelled '{key_name}.v1'"):
        pkcs11_km.wrap(key_name, b"k" * 32)


def test_envelope_survives_new_manager(softhsm: SoftHsm, key_name: str) -> None:
    first = Pkcs11KeyManager(softhsm.module, softhsm.label, softhsm.pin)
    first.create(key_name, KeyKind.AES256_GCM)
    blob = envelope.encrypt(first, key_name, b"kept in the HSM", aad=b"id:1")
    second = Pkcs11KeyManager(softhsm.module, softhsm.label, softhsm.pin)
    assert envelope.decrypt(second, blob, aad=b"id:1") == b"kept in the HSM"


def test_wrong_pin_on_fresh_login(softhsm: SoftHsm) -> None:
    with pytest.raises(KeyStoreError, match=f"login to token '{softhsm.spare_label}' failed: "
                                            "wrong PIN"):
        Pkcs11KeyManager(softhsm.module, softhsm.spare_label, "000000")


def test_wrong_pin_on_shared_session(pkcs11_km: Pkcs11KeyManager, softhsm: SoftHsm) -> None:
    with pytest.raises(KeyStoreError, match="wrong PIN"):
        Pkcs11KeyManager(softhsm.module, softhsm.label, softhsm.pin + "0")


def test_unknown_token_and_module(softhsm: SoftHsm) -> None:
    with pytest.raises(KeyStoreError, match="no PKCS#11 token labelled 'absent'"):
        Pkcs11KeyManager(softhsm.module, "absent", softhsm.pin)
    with pytest.raises(KeyStoreError, match=r"cannot load PKCS#11 module /nonexistent/lib\.so"):
        Pkcs11KeyManager("/nonexistent/lib.so", softhsm.label, softhsm.pin)


def test_factory_opens_pkcs11(
    softhsm: SoftHsm, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSUBA_KEYS__BACKEND", "pkcs11")
    with pytest.raises(KeyStoreError, match=r"needs keys\.pkcs11_module, keys\.pkcs11_token"):
        open_key_manager(load_settings(home))
    monkeypatch.setenv("TSUBA_KEYS__PKCS11_MODULE", softhsm.module)
    monkeypatch.setenv("TSUBA_KEYS__PKCS11_TOKEN_LABEL", softhsm.label)
    monkeypatch.setenv("TSUBA_KEYS__PKCS11_PIN", softhsm.pin)
    km = open_key_manager(load_settings(home))
    assert isinstance(km, Pkcs11KeyManager) and km.backend == "pkcs11"
