"""What every KeyManager backend must do, run against local, PKCS#11 and the Vault stand-in."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tsuba.core.errors import DecryptionError, InputError, KeyStoreError
from tsuba.core.keys import KeyKind, KeyManager, Wrapped, envelope


def _verify(pem: bytes, kind: KeyKind, signature: bytes, data: bytes) -> None:
    public = load_pem_public_key(pem)
    if kind is KeyKind.ED25519:
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(signature, data)
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert public.curve.name == "secp256r1"
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))


def test_is_a_key_manager(any_km: KeyManager) -> None:
    assert isinstance(any_km, KeyManager)
    assert any_km.backend in ("local", "pkcs11", "vault")


@pytest.mark.parametrize("kind", list(KeyKind))
def test_create_and_info(any_km: KeyManager, key_name: str, kind: KeyKind) -> None:
    info = any_km.create(key_name, kind)
    assert (info.name, info.kind, info.current_version, info.versions, info.retired) == (
        key_name, kind, 1, (1,), ())
    assert info.backend == any_km.backend
    assert any_km.info(key_name) == info
    assert key_name in {k.name for k in any_km.list_keys()}


def test_create_existing(any_km: KeyManager, key_name: str) -> None:
    any_km.create(key_name, KeyKind.AES256_GCM)
    with pytest.raises(KeyStoreError, match="already exists"):
        any_km.create(key_name, KeyKind.AES256_GCM)
    assert any_km.create(key_name, KeyKind.AES256_GCM, exist_ok=True).current_version == 1
    with pytest.raises(KeyStoreError, match="already exists"):
        any_km.create(key_name, KeyKind.ED25519, exist_ok=True)


def test_unknown_key_and_bad_name(any_km: KeyManager, key_name: str) -> None:
    with pytest.raises(KeyStoreError, match=f"no key named '{key_name}'"):
        any_km.info(key_name)
    with pytest.raises(KeyStoreError, match=f"no key named '{key_name}'"):
        any_km.wrap(key_name, b"x")
    with pytest.raises(InputError, match="invalid key name"):
        any_km.create("Bad/Name", KeyKind.AES256_GCM)


def test_wrap_unwrap(any_km: KeyManager, key_name: str) -> None:
    any_km.create(key_name, KeyKind.AES256_GCM)
    secret = bytes(range(32))
    wrapped = any_km.wrap(key_name, secret, b"record-7")
    assert (wrapped.key_name, wrapped.version) == (key_name, 1)
    assert secret not in wrapped.ciphertext
    assert any_km.unwrap(wrapped, b"record-7") == secret
    assert any_km.wrap(key_name, secret, b"record-7").ciphertext != wrapped.ciphertext
    with pytest.raises(DecryptionError):
        any_km.unwrap(wrapped, b"record-8")
    flipped = bytearray(wrapped.ciphertext)
    flipped[-3] ^= 0x01
    with pytest.raises(DecryptionError):
        any_km.unwrap(Wrapped(key_name, 1, bytes(flipped)), b"record-7")


def test_wrap_needs_an_aes_key(any_km: KeyManager, key_name: str) -> None:
    any_km.create(key_name, KeyKind.ED25519)
    # Vault refuses by itself, in its own words.
    with pytest.raises(KeyStoreError, match=r"needs a aes256-gcm key|does not support encryption"):
        any_km.wrap(key_name, b"x" * 32)
    with pytest.raises(KeyStoreError, match="needs a hmac-sha256 key"):
        any_km.hmac(key_name, b"x")


def test_rotate_then_retire(any_km: KeyManager, key_name: str) -> None:
    any_km.create(key_name, KeyKind.AES256_GCM)
    old = any_km.wrap(key_name, b"k" * 32)
    info = any_km.rotate(key_name)
    assert (info.current_version, info.versions) == (2, (1, 2))
    new = any_km.wrap(key_name, b"n" * 32)
    assert new.version == 2
    assert any_km.unwrap(old) == b"k" * 32  # old versions keep decrypting
    with pytest.raises(KeyStoreError, match="current version"):
        any_km.retire(key_name, 2)
    info = any_km.retire(key_name, 1)
    assert info.retired == (1,) and info.current_version == 2
    with pytest.raises(KeyStoreError, match="retired"):
        any_km.unwrap(old)
    assert any_km.unwrap(new) == b"n" * 32
    with pytest.raises(KeyStoreError, match="no version 9"):
        any_km.retire(key_name, 9)


@pytest.mark.parametrize("kind", [KeyKind.ED25519, KeyKind.ECDSA_P256])
def test_sign_verifies_with_exported_public_key(
    any_km: KeyManager, key_name: str, kind: KeyKind
) -> None:
    any_km.create(key_name, kind)
    sig = any_km.sign(key_name, b"tree head 42")
    assert (sig.key_name, sig.version) == (key_name, 1)
    assert sig.algorithm == ("ed25519" if kind is KeyKind.ED25519 else "ecdsa-p256-sha256")
    pem = any_km.public_key_pem(key_name)
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    _verify(pem, kind, sig.value, b"tree head 42")
    with pytest.raises(InvalidSignature):
        _verify(pem, kind, sig.value, b"tree head 43")

    any_km.rotate(key_name)
    sig2 = any_km.sign(key_name, b"tree head 43")
    assert sig2.version == 2
    assert any_km.public_key_pem(key_name) != pem
    assert any_km.public_key_pem(key_name, 1) == pem
    _verify(any_km.public_key_pem(key_name, 2), kind, sig2.value, b"tree head 43")
    with pytest.raises(InvalidSignature):
        _verify(pem, kind, sig2.value, b"tree head 43")


def test_public_key_needs_a_signing_key(any_km: KeyManager, key_name: str) -> None:
    any_km.create(key_name, KeyKind.AES256_GCM)
    with pytest.raises(KeyStoreError, match="needs a ed25519 or ecdsa-p256 key"):
        any_km.public_key_pem(key_name)
    with pytest.raises(KeyStoreError, match="needs a ed25519 or ecdsa-p256 key"):
        any_km.sign(key_name, b"x")


def test_hmac(any_km: KeyManager, key_name: str) -> None:
    any_km.create(key_name, KeyKind.HMAC_SHA256)
    mac = any_km.hmac(key_name, b"alice@example.com")
    assert len(mac) == 32
    assert any_km.hmac(key_name, b"alice@example.com") == mac
    assert any_km.hmac(key_name, b"bob@example.com") != mac
    any_km.rotate(key_name)
    assert any_km.hmac(key_name, b"alice@example.com") != mac


def test_envelope_with_every_backend(any_km: KeyManager, key_name: str) -> None:
    any_km.create(key_name, KeyKind.AES256_GCM)
    blob = envelope.encrypt(any_km, key_name, b"patient record", aad=b"row:1")
    assert envelope.decrypt(any_km, blob, aad=b"row:1") == b"patient record"
    with pytest.raises(DecryptionError):
        envelope.decrypt(any_km, blob, aad=b"row:2")

    any_km.rotate(key_name)
    moved = envelope.rewrap(any_km, blob, aad=b"row:1")
    old_h, new_h = envelope.read_header(blob), envelope.read_header(moved)
    assert (old_h.kek_version, new_h.kek_version) == (1, 2)
    assert blob[old_h.data_offset - 12 :] == moved[new_h.data_offset - 12 :]  # nonce + data
    any_km.retire(key_name, 1)
    with pytest.raises(KeyStoreError, match="retired"):
        envelope.decrypt(any_km, blob, aad=b"row:1")
    assert envelope.decrypt(any_km, moved, aad=b"row:1") == b"patient record"
