"""The local keyring file: encryption at rest, integrity, master key sources, concurrency."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsuba.core.config import load_settings
from tsuba.core.errors import KeyStoreError
from tsuba.core.keys import KeyKind, Wrapped
from tsuba.core.keys.local import LocalKeyManager, _canonical, _Subkeys
from tsuba.core.keys.master import (
    MasterSecret,
    read_master_key_file,
    resolve_master,
    write_master_key_file,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _filled(km: LocalKeyManager) -> LocalKeyManager:
    km.create("data", KeyKind.AES256_GCM)
    km.create("audit-signing", KeyKind.ED25519)
    km.create("pseudonyms", KeyKind.HMAC_SHA256)
    return km


def test_keyring_and_lock_are_private(local_km: LocalKeyManager) -> None:
    _filled(local_km)
    assert _mode(local_km.path) == 0o600
    assert _mode(local_km.path.with_name("keyring.json.lock")) == 0o600
    leftovers = [p.name for p in local_km.path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_key_material_is_not_in_the_file(local_km: LocalKeyManager) -> None:
    _filled(local_km)
    secret = local_km._secret(local_km._current(), "data",
                              local_km._current().doc.keys["data"], 1)
    raw = local_km.path.read_bytes()
    assert secret not in raw and base64.b64encode(secret) not in raw
    doc = json.loads(raw)
    assert doc["format"] == "tsuba-keyring" and doc["version"] == 1
    assert "BEGIN PUBLIC KEY" in doc["keys"]["audit-signing"]["versions"]["1"]["public"]


def test_reopen_with_same_master(local_km: LocalKeyManager, master: MasterSecret) -> None:
    _filled(local_km)
    wrapped = local_km.wrap("data", b"k" * 32, b"aad")
    again = LocalKeyManager(local_km.path, master)
    assert again.unwrap(wrapped, b"aad") == b"k" * 32
    assert again.public_key_pem("audit-signing") == local_km.public_key_pem("audit-signing")


def test_wrong_master_key_is_named_and_file_untouched(local_km: LocalKeyManager) -> None:
    _filled(local_km)
    before = local_km.path.read_bytes()
    other = MasterSecret(source="TSUBA_MASTER_KEY", key=os.urandom(32))
    with pytest.raises(KeyStoreError) as exc:
        LocalKeyManager(local_km.path, other)
    assert str(exc.value).startswith(f"wrong master key for keyring {local_km.path}")
    assert "TSUBA_MASTER_KEY" in str(exc.value)
    assert local_km.path.read_bytes() == before


def test_passphrase_master(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    good = MasterSecret(source="TSUBA_MASTER_PASSPHRASE", passphrase=b"correct horse")
    km = LocalKeyManager.initialise(path, good)
    km.create("data", KeyKind.AES256_GCM)
    wrapped = km.wrap("data", b"s" * 32)
    assert LocalKeyManager(path, good).unwrap(wrapped) == b"s" * 32
    bad = MasterSecret(source="TSUBA_MASTER_PASSPHRASE", passphrase=b"correct horsf")
    with pytest.raises(KeyStoreError, match="wrong master key"):
        LocalKeyManager(path, bad)
    # The salt is in the header: the same passphrase on another keyring gives another root.
    other = LocalKeyManager.initialise(tmp_path / "other.json", good)
    assert json.loads(path.read_text())["kdf"]["salt"] != json.loads(
        other.path.read_text())["kdf"]["salt"]


def test_initialise_refuses_to_replace(local_km: LocalKeyManager, master: MasterSecret) -> None:
    _filled(local_km)
    before = local_km.path.read_bytes()
    with pytest.raises(KeyStoreError, match="already exists"):
        LocalKeyManager.initialise(local_km.path, master)
    assert local_km.path.read_bytes() == before


def test_missing_keyring(tmp_path: Path, master: MasterSecret) -> None:
    with pytest.raises(KeyStoreError, match=r"no keyring at .*run 'tsuba init'"):
        LocalKeyManager(tmp_path / "keyring.json", master)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "truncated or corrupted"),
        (b"\x00\xff garbage", "truncated or corrupted"),
        (b"[1, 2]", "is not a tsuba keyring"),
        (b'{"format": "tsuba-keyring", "version": 9}', "format version 9"),
        (b'{"format": "tsuba-keyring", "version": 1}', "is malformed"),
    ],
)
def test_corrupted_keyring_is_named(
    local_km: LocalKeyManager, master: MasterSecret, content: bytes, reason: str
) -> None:
    local_km.path.write_bytes(content)
    with pytest.raises(KeyStoreError) as exc:
        LocalKeyManager(local_km.path, master)
    assert str(local_km.path) in str(exc.value) and reason in str(exc.value)
    assert "left unchanged" in str(exc.value)
    assert local_km.path.read_bytes() == content


def test_truncated_keyring_fails_writes_without_losing_anything(
    local_km: LocalKeyManager,
) -> None:
    _filled(local_km)
    whole = local_km.path.read_bytes()
    cut = whole[: len(whole) // 2]
    local_km.path.write_bytes(cut)
    for attempt in (lambda: local_km.rotate("data"), lambda: local_km.create("x", KeyKind.ED25519),
                    lambda: local_km.retire("data", 1), lambda: local_km.wrap("data", b"k")):
        with pytest.raises(KeyStoreError, match="truncated or corrupted"):
            attempt()
        assert local_km.path.read_bytes() == cut
    local_km.path.write_bytes(whole)  # restored from backup: everything is back
    assert local_km.info("data").current_version == 1


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_truncation_or_bit_flip_is_refused(
    tmp_path: Path, master: MasterSecret, data: st.DataObject
) -> None:
    path = tmp_path / "keyring.json"
    if not path.exists():
        _filled(LocalKeyManager.initialise(path, master))
    good = path.read_bytes()
    raw = bytearray(good)
    if data.draw(st.booleans(), label="truncate"):
        raw = raw[: data.draw(st.integers(0, len(raw) - 2), label="keep")]
    else:
        pos = data.draw(st.integers(0, len(raw) - 1), label="pos")
        raw[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    if bytes(raw).rstrip() == good.rstrip():
        return  # only the trailing newline changed
    path.write_bytes(bytes(raw))
    try:
        with pytest.raises(KeyStoreError):
            LocalKeyManager(path, master)
        assert path.read_bytes() == bytes(raw)
    finally:
        path.write_bytes(good)


def test_edited_metadata_fails_integrity(local_km: LocalKeyManager, master: MasterSecret) -> None:
    _filled(local_km)
    old = local_km.wrap("data", b"k" * 32)
    backup = json.loads(local_km.path.read_text())
    local_km.rotate("data")
    local_km.retire("data", 1)
    # Un-retire version 1 by pasting its old entry back: the MAC catches it.
    doc = json.loads(local_km.path.read_text())
    doc["keys"]["data"]["versions"]["1"] = backup["keys"]["data"]["versions"]["1"]
    local_km.path.write_text(json.dumps(doc))
    with pytest.raises(KeyStoreError, match="failed its integrity check"):
        LocalKeyManager(local_km.path, master).unwrap(old)


def test_entries_cannot_be_swapped(local_km: LocalKeyManager, master: MasterSecret) -> None:
    """Even with a valid MAC (an attacker who has the master key's MAC subkey), an entry moved
    to another name or version does not decrypt: its associated data names key, version, kind."""
    local_km.create("a", KeyKind.AES256_GCM)
    local_km.create("b", KeyKind.AES256_GCM)
    local_km.rotate("b")
    doc = json.loads(local_km.path.read_text())
    sub = _Subkeys.derive(master.key or b"", doc["id"])
    b_v1 = doc["keys"]["b"]["versions"]["1"]["secret"]
    doc["keys"]["a"]["versions"]["1"]["secret"] = b_v1  # other name, same version
    doc["keys"]["b"]["versions"]["2"]["secret"] = b_v1  # same name, other version
    body = {k: v for k, v in doc.items() if k != "mac"}
    doc["mac"] = base64.b64encode(sub.hmac(sub.mac, _canonical(body))).decode()
    local_km.path.write_text(json.dumps(doc))
    km = LocalKeyManager(local_km.path, master)
    with pytest.raises(KeyStoreError, match="key 'a' version 1 that does not decrypt"):
        km.wrap("a", b"x")
    with pytest.raises(KeyStoreError, match="key 'b' version 2 that does not decrypt"):
        km.wrap("b", b"x")


def test_retire_erases_secret_but_keeps_public_key(local_km: LocalKeyManager) -> None:
    _filled(local_km)
    pem1 = local_km.public_key_pem("audit-signing")
    local_km.rotate("audit-signing")
    local_km.retire("audit-signing", 1)
    entry = json.loads(local_km.path.read_text())["keys"]["audit-signing"]["versions"]["1"]
    assert entry["secret"] is None and entry["retired"] is True
    assert local_km.public_key_pem("audit-signing", 1) == pem1
    assert local_km.sign("audit-signing", b"x").version == 2
    assert local_km.retire("audit-signing", 1).retired == (1,)  # idempotent


def test_other_process_changes_are_seen(local_km: LocalKeyManager, master: MasterSecret) -> None:
    _filled(local_km)
    old = local_km.wrap("data", b"k" * 32)
    elsewhere = LocalKeyManager(local_km.path, master)
    elsewhere.rotate("data")
    assert local_km.wrap("data", b"k" * 32).version == 2
    elsewhere.retire("data", 1)
    with pytest.raises(KeyStoreError, match="retired"):
        local_km.unwrap(old)
    # The retired version's material is gone from this process's memory too.
    live = local_km._current().doc.keys["data"].versions
    assert live[1].secret is None and len(local_km._aeads) == 1
    assert all(sealed == live[2].secret or sealed in {
        v.secret for k in local_km._current().doc.keys.values() for v in k.versions.values()
    } for sealed in local_km._secrets)


_ROTATOR = """
import base64, sys
from pathlib import Path
from tsuba.core.keys.local import LocalKeyManager
from tsuba.core.keys.master import MasterSecret
path, key, who, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
km = LocalKeyManager(Path(path), MasterSecret(source="test", key=base64.b64decode(key)))
for i in range(rounds):
    km.rotate("shared")
    km.create(f"{who}-{i}", "hmac-sha256")
"""


def test_two_processes_rotating_lose_nothing(
    local_km: LocalKeyManager, master: MasterSecret
) -> None:
    local_km.create("shared", KeyKind.ED25519)
    rounds = 12
    key_b64 = base64.b64encode(master.key or b"").decode()
    procs = [
        subprocess.Popen([sys.executable, "-c", _ROTATOR, str(local_km.path), key_b64, who,
                          str(rounds)], stderr=subprocess.PIPE)
        for who in ("p", "q")
    ]
    for proc in procs:
        _, errors = proc.communicate(timeout=120)
        assert proc.returncode == 0, errors.decode()
    info = local_km.info("shared")
    assert info.versions == tuple(range(1, 2 * rounds + 2))
    assert info.current_version == 2 * rounds + 1
    pems = {local_km.public_key_pem("shared", v) for v in info.versions}
    assert len(pems) == 2 * rounds + 1  # every version has its own key material
    names = {k.name for k in local_km.list_keys()}
    assert {f"{w}-{i}" for w in "pq" for i in range(rounds)} <= names
    for name in ("p-0", "q-11"):
        assert len(local_km.hmac(name, b"x")) == 32


def test_unwrap_rejects_short_input(local_km: LocalKeyManager) -> None:
    _filled(local_km)
    with pytest.raises(KeyStoreError, match="truncated"):
        local_km.unwrap(Wrapped("data", 1, b"short"))
    with pytest.raises(KeyStoreError, match="no version 5"):
        local_km.unwrap(Wrapped("data", 5, b"x" * 40))


# -- master key sources -------------------------------------------------------------------
def test_master_key_file_is_created_private_and_once(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    assert write_master_key_file(path) is True
    assert _mode(path) == 0o600
    first = path.read_bytes()
    assert len(base64.b64decode(first.strip())) == 32
    assert write_master_key_file(path) is False
    assert path.read_bytes() == first
    assert read_master_key_file(path).key == base64.b64decode(first.strip())


def test_master_key_file_with_loose_permissions_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    write_master_key_file(path)
    path.chmod(0o644)
    with pytest.raises(KeyStoreError, match=r"mode 0644.*chmod 600"):
        read_master_key_file(path)


def test_master_key_file_missing_or_malformed(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match=r"no master key.*tsuba init"):
        read_master_key_file(tmp_path / "absent.key")
    bad = tmp_path / "bad.key"
    bad.write_text("not base64!!\n")
    bad.chmod(0o600)
    with pytest.raises(KeyStoreError, match="not valid base64"):
        read_master_key_file(bad)
    bad.write_text(base64.b64encode(b"short").decode())
    with pytest.raises(KeyStoreError, match="must be 32 bytes, got 5"):
        read_master_key_file(bad)


def test_master_source_priority(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home.mkdir()
    write_master_key_file(home / "master.key")
    assert resolve_master(load_settings(home)).source == str(home / "master.key")
    monkeypatch.setenv("TSUBA_MASTER_PASSPHRASE", "pass")
    assert resolve_master(load_settings(home)).source == "TSUBA_MASTER_PASSPHRASE"
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("TSUBA_MASTER_KEY", key)
    resolved = resolve_master(load_settings(home))
    assert resolved.source == "TSUBA_MASTER_KEY" and resolved.key == base64.b64decode(key)
    assert key not in repr(resolved)
    monkeypatch.setenv("TSUBA_MASTER_KEY", base64.b64encode(b"x" * 16).decode())
    with pytest.raises(KeyStoreError, match="TSUBA_MASTER_KEY must be 32 bytes"):
        resolve_master(load_settings(home))
