"""Vault Transit backend: the requests it sends, its error mapping, and a real Vault when set.

No Vault binary exists here, so most tests talk to ``fake_vault.py``, an HTTP stand-in that
answers with Vault's documented JSON and records each request.  The tests marked ``vault``
run against a real server when TSUBA_VAULT_ADDR and TSUBA_VAULT_TOKEN are set.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fake_vault import TOKEN, FakeTransit

from tsuba.core.config import load_settings
from tsuba.core.errors import DecryptionError, KeyStoreError
from tsuba.core.keys import KeyKind, Wrapped, envelope, open_key_manager
from tsuba.core.keys.vault import VaultKeyManager


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _last(transit: FakeTransit, method: str, path_end: str) -> dict[str, object] | None:
    for req in reversed(transit.requests):
        if req.method == method and req.path.endswith(path_end):
            assert req.token == TOKEN
            return req.body
    raise AssertionError(f"no {method} …{path_end} among {[r.path for r in transit.requests]}")


def test_request_shapes(vault_stand_in: tuple[FakeTransit, str], vault_km: VaultKeyManager,
                        ) -> None:
    transit, _ = vault_stand_in
    vault_km.create("data", KeyKind.AES256_GCM)
    assert _last(transit, "POST", "/v1/transit/keys/data") == {"type": "aes256-gcm96"}
    vault_km.create("mac", KeyKind.HMAC_SHA256)
    assert _last(transit, "POST", "/v1/transit/keys/mac") == {"type": "hmac", "key_size": 32}
    vault_km.create("ed", KeyKind.ED25519)
    assert _last(transit, "POST", "/v1/transit/keys/ed") == {"type": "ed25519"}
    vault_km.create("ec", KeyKind.ECDSA_P256)
    assert _last(transit, "POST", "/v1/transit/keys/ec") == {"type": "ecdsa-p256"}

    wrapped = vault_km.wrap("data", b"k" * 32, b"row:1")
    assert _last(transit, "POST", "/v1/transit/encrypt/data") == {
        "plaintext": _b64(b"k" * 32), "associated_data": _b64(b"row:1")}
    assert wrapped.ciphertext.startswith(b"vault:v1:") and wrapped.version == 1
    vault_km.wrap("data", b"k" * 32)
    assert _last(transit, "POST", "/v1/transit/encrypt/data") == {"plaintext": _b64(b"k" * 32)}
    vault_km.unwrap(wrapped, b"row:1")
    assert _last(transit, "POST", "/v1/transit/decrypt/data") == {
        "ciphertext": wrapped.ciphertext.decode(), "associated_data": _b64(b"row:1")}

    vault_km.sign("ec", b"msg")
    assert _last(transit, "POST", "/v1/transit/sign/ec") == {
        "input": _b64(b"msg"), "hash_algorithm": "sha2-256", "marshaling_algorithm": "asn1"}
    vault_km.sign("ed", b"msg")
    assert _last(transit, "POST", "/v1/transit/sign/ed") == {"input": _b64(b"msg")}
    vault_km.hmac("mac", b"msg")
    assert _last(transit, "POST", "/v1/transit/hmac/mac") == {
        "input": _b64(b"msg"), "algorithm": "sha2-256"}

    vault_km.rotate("data")
    assert _last(transit, "POST", "/v1/transit/keys/data/rotate") is None
    vault_km.retire("data", 1)
    assert _last(transit, "POST", "/v1/transit/keys/data/config") == {
        "min_decryption_version": 2}
    assert [k.name for k in vault_km.list_keys()] == ["data", "ec", "ed", "mac"]
    assert _last(transit, "LIST", "/v1/transit/keys") is None


def test_retire_goes_oldest_first(vault_km: VaultKeyManager) -> None:
    vault_km.create("data", KeyKind.AES256_GCM)
    vault_km.rotate("data")
    vault_km.rotate("data")
    with pytest.raises(KeyStoreError, match="retire version 1 of key 'data' before version 2"):
        vault_km.retire("data", 2)
    assert vault_km.retire("data", 1).retired == (1,)
    assert vault_km.retire("data", 2).retired == (1, 2)


def test_tampered_wrapped_version_is_refused(vault_km: VaultKeyManager) -> None:
    vault_km.create("data", KeyKind.AES256_GCM)
    vault_km.rotate("data")
    wrapped = vault_km.wrap("data", b"k" * 32)
    with pytest.raises(DecryptionError, match="says version 2, its envelope says 1"):
        vault_km.unwrap(Wrapped("data", 1, wrapped.ciphertext))
    with pytest.raises(DecryptionError, match="not a Vault ciphertext"):
        vault_km.unwrap(Wrapped("data", 2, b"\xff" * 40))


def test_empty_mount_lists_nothing(vault_km: VaultKeyManager) -> None:
    assert vault_km.list_keys() == []


def test_bad_token_and_unknown_mount(vault_stand_in: tuple[FakeTransit, str]) -> None:
    _, addr = vault_stand_in
    with pytest.raises(KeyStoreError, match="refused to read a key: the token lacks permission"):
        VaultKeyManager(addr, "wrong-token").info("data")
    with pytest.raises(KeyStoreError, match="has no transit mount 'elsewhere'"):
        VaultKeyManager(addr, TOKEN, mount="elsewhere").list_keys()


def test_unreachable_vault_fails_closed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    km = VaultKeyManager(f"http://127.0.0.1:{port}", TOKEN, timeout=2)
    with pytest.raises(KeyStoreError, match=f"cannot reach Vault at http://127.0.0.1:{port}"):
        km.wrap("data", b"k" * 32)


def test_foreign_key_type_is_refused(
    vault_stand_in: tuple[FakeTransit, str], vault_km: VaultKeyManager
) -> None:
    transit, _ = vault_stand_in
    transit.handle("POST", "/v1/transit/keys/legacy", TOKEN, {"type": "rsa-2048"})
    with pytest.raises(KeyStoreError, match="has type 'rsa-2048', which tsuba does not use"):
        vault_km.info("legacy")


def test_factory_opens_vault(
    vault_stand_in: tuple[FakeTransit, str], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSUBA_KEYS__BACKEND", "vault")
    with pytest.raises(KeyStoreError, match=r"needs keys\.vault_addr and keys\.vault_token"):
        open_key_manager(load_settings(home))
    monkeypatch.setenv("TSUBA_KEYS__VAULT_ADDR", vault_stand_in[1])
    monkeypatch.setenv("TSUBA_KEYS__VAULT_TOKEN", TOKEN)
    km = open_key_manager(load_settings(home))
    assert isinstance(km, VaultKeyManager)
    km.create("data", KeyKind.AES256_GCM)
    blob = envelope.encrypt(km, "data", b"through vault")
    assert envelope.decrypt(km, blob) == b"through vault"


# -- a real Vault ---------------------------------------------------------------------------
@pytest.fixture
def real_vault() -> VaultKeyManager:
    addr, token = os.environ.get("TSUBA_VAULT_ADDR"), os.environ.get("TSUBA_VAULT_TOKEN")
    if not addr or not token:
        pytest.skip("no Vault server (set TSUBA_VAULT_ADDR and TSUBA_VAULT_TOKEN)")
    return VaultKeyManager(addr, token, mount=os.environ.get("TSUBA_VAULT_MOUNT", "transit"))


@pytest.mark.vault
def test_real_vault_envelope_and_rotation(real_vault: VaultKeyManager) -> None:
    name = f"tsuba-test-{uuid.uuid4().hex[:8]}"
    real_vault.create(name, KeyKind.AES256_GCM)
    blob = envelope.encrypt(real_vault, name, b"hello vault", aad=b"id:1")
    real_vault.rotate(name)
    moved = envelope.rewrap(real_vault, blob, aad=b"id:1")
    assert envelope.read_header(moved).kek_version == 2
    real_vault.retire(name, 1)
    with pytest.raises(KeyStoreError):
        envelope.decrypt(real_vault, blob, aad=b"id:1")
    assert envelope.decrypt(real_vault, moved, aad=b"id:1") == b"hello vault"


@pytest.mark.vault
@pytest.mark.parametrize("kind", [KeyKind.ED25519, KeyKind.ECDSA_P256])
def test_real_vault_signatures_verify(real_vault: VaultKeyManager, kind: KeyKind) -> None:
    name = f"tsuba-test-{uuid.uuid4().hex[:8]}"
    real_vault.create(name, kind)
    sig = real_vault.sign(name, b"tree head")
    public = load_pem_public_key(real_vault.public_key_pem(name))
    if kind is KeyKind.ED25519:
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(sig.value, b"tree head")
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(sig.value, b"tree head", ec.ECDSA(hashes.SHA256()))


@pytest.mark.vault
def test_real_vault_hmac(real_vault: VaultKeyManager) -> None:
    name = f"tsuba-test-{uuid.uuid4().hex[:8]}"
    real_vault.create(name, KeyKind.HMAC_SHA256)
    assert real_vault.hmac(name, b"x") == real_vault.hmac(name, b"x")
    assert len(real_vault.hmac(name, b"x")) == 32
