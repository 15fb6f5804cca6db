"""Envelope encryption over the local keyring (every backend: see test_keys_contract.py)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsuba.core.errors import DecryptionError, InputError, KeyStoreError, TsubaError
from tsuba.core.keys import KeyKind, envelope
from tsuba.core.keys.local import LocalKeyManager
from tsuba.core.keys.master import MasterSecret

_FIXTURE_OK = settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def km(local_km: LocalKeyManager) -> LocalKeyManager:
    local_km.create("data", KeyKind.AES256_GCM)
    return local_km


@pytest.mark.parametrize("size", [0, 1, 1024, 65536, 1 << 20])
def test_round_trip(km: LocalKeyManager, size: int) -> None:
    plaintext = os.urandom(size)
    blob = envelope.encrypt(km, "data", plaintext, aad=b"table:docs/id:9")
    assert envelope.decrypt(km, blob, aad=b"table:docs/id:9") == plaintext
    header = envelope.read_header(blob)
    assert (header.kek_name, header.kek_version) == ("data", 1)
    assert len(blob) == header.data_offset + size + 16


def test_fresh_key_and_nonce_per_object(km: LocalKeyManager) -> None:
    a = envelope.encrypt(km, "data", b"same")
    b = envelope.encrypt(km, "data", b"same")
    ha, hb = envelope.read_header(a), envelope.read_header(b)
    assert ha.wrapped_key != hb.wrapped_key and ha.nonce != hb.nonce
    assert a[ha.data_offset :] != b[hb.data_offset :]
    assert b"same" not in a


def test_wrong_associated_data(km: LocalKeyManager) -> None:
    blob = envelope.encrypt(km, "data", b"salary: 100", aad=b"row:1")
    for wrong in (b"", b"row:2", b"row:1 "):
        with pytest.raises(DecryptionError, match="wrong associated data"):
            envelope.decrypt(km, blob, aad=wrong)


def test_swapped_wrapped_key_does_not_decrypt(km: LocalKeyManager) -> None:
    a = envelope.encrypt(km, "data", b"first")
    b = envelope.encrypt(km, "data", b"second")
    ha, hb = envelope.read_header(a), envelope.read_header(b)
    wrapped_len_at = ha.data_offset - 12 - len(ha.wrapped_key)
    forged = a[:wrapped_len_at] + hb.wrapped_key + a[ha.data_offset - 12 :]
    with pytest.raises(DecryptionError):
        envelope.decrypt(km, forged)


def test_rewrap_keeps_data_bytes_and_moves_to_current_version(km: LocalKeyManager) -> None:
    blob = envelope.encrypt(km, "data", b"x" * 5000, aad=b"r")
    assert envelope.rewrap(km, blob, aad=b"r") == blob  # already current
    km.rotate("data")
    km.rotate("data")
    moved = envelope.rewrap(km, blob, aad=b"r")
    old_h, new_h = envelope.read_header(blob), envelope.read_header(moved)
    assert new_h.kek_version == 3
    assert new_h.nonce == old_h.nonce
    assert moved[new_h.data_offset :] == blob[old_h.data_offset :]  # not re-encrypted
    assert new_h.wrapped_key != old_h.wrapped_key
    assert envelope.decrypt(km, moved, aad=b"r") == b"x" * 5000
    with pytest.raises(DecryptionError):
        envelope.rewrap(km, blob, aad=b"other")


def test_retired_version_stops_decrypting(km: LocalKeyManager) -> None:
    blob = envelope.encrypt(km, "data", b"secret")
    km.rotate("data")
    assert envelope.decrypt(km, blob) == b"secret"  # old versions work until retired
    km.retire("data", 1)
    with pytest.raises(KeyStoreError, match="key 'data' version 1 is retired"):
        envelope.decrypt(km, blob)
    with pytest.raises(KeyStoreError, match="retired"):
        envelope.rewrap(km, blob)


def test_other_keyring_cannot_decrypt(km: LocalKeyManager, tmp_path: Path) -> None:
    blob = envelope.encrypt(km, "data", b"secret")
    other = LocalKeyManager.initialise(
        tmp_path / "other.json", MasterSecret(source="t", key=os.urandom(32))
    )
    other.create("data", KeyKind.AES256_GCM)
    with pytest.raises(DecryptionError):
        envelope.decrypt(other, blob)


def test_kek_must_be_an_aes_key(km: LocalKeyManager) -> None:
    km.create("sig", KeyKind.ED25519)
    with pytest.raises(KeyStoreError, match="needs a aes256-gcm key"):
        envelope.encrypt(km, "sig", b"x")


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "not a tsuba envelope"),
        (b"XYZ\x01rest", "not a tsuba envelope"),
        (b"TSE\x02" + b"\x00" * 60, "unsupported envelope format 2"),
        (b"TSE\x01", "truncated"),
        (b"TSE\x01\x04dat", "truncated"),
        (b"TSE\x01\x04data" + struct.pack(">IH", 1, 40) + b"\x00" * 30, "truncated"),
        (b"TSE\x01\x04DATA" + struct.pack(">IH", 1, 4) + b"\x00" * 40, "invalid key name"),
        (b"TSE\x01\x04da\xfft" + struct.pack(">IH", 1, 4) + b"\x00" * 40, "not ASCII"),
        (b"TSE\x01\x04data" + struct.pack(">IH", 0, 4) + b"\x00" * 40, "corrupted"),
    ],
)
def test_malformed_envelopes_are_named(km: LocalKeyManager, blob: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        envelope.decrypt(km, blob)


@_FIXTURE_OK
@given(st.data())
def test_truncations_never_decrypt(km: LocalKeyManager, data: st.DataObject) -> None:
    plaintext = data.draw(st.binary(max_size=300), label="plaintext")
    blob = envelope.encrypt(km, "data", plaintext, aad=b"a")
    cut = data.draw(st.integers(0, len(blob) - 1), label="cut")
    with pytest.raises((InputError, DecryptionError)):
        envelope.decrypt(km, blob[:cut], aad=b"a")


@_FIXTURE_OK
@given(st.data())
def test_bit_flips_never_decrypt(km: LocalKeyManager, data: st.DataObject) -> None:
    plaintext = data.draw(st.binary(max_size=300), label="plaintext")
    blob = bytearray(envelope.encrypt(km, "data", plaintext, aad=b"a"))
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 7)),
                 min_size=1, max_size=3, unique_by=lambda f: f[0]),
        label="flips",
    )
    for pos, bit in flips:
        blob[pos] ^= 1 << bit
    with pytest.raises(TsubaError) as exc:
        envelope.decrypt(km, bytes(blob), aad=b"a")
    assert isinstance(exc.value, InputError | KeyStoreError)


@_FIXTURE_OK
@given(st.binary(max_size=200))
def test_random_bytes_are_refused(km: LocalKeyManager, junk: bytes) -> None:
    with pytest.raises((InputError, KeyStoreError)):
        envelope.decrypt(km, junk)
