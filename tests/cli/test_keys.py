"""``tsuba keys`` through the real entry point (local keyring), and over PKCS#11 in a
real subprocess with its own SoftHSM2 token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import load_pem_public_key


@pytest.fixture
def ready(cli, home: Path) -> Path:
    assert cli("init").code == 0
    return home


def test_needs_a_data_directory(cli, home: Path) -> None:
    res = cli("keys", "list")
    assert res.code == 2
    assert res.stderr.strip() == f"error: no data directory at {home}: run 'tsuba init'"


def test_list(cli, ready: Path) -> None:
    res = cli("keys", "list", "-f", "json")
    assert res.code == 0, res
    rows = {row["name"]: row for row in res.json()}
    assert rows["audit-signing"]["kind"] == "ed25519"
    assert rows["data"] == rows["data"] | {
        "kind": "aes256-gcm", "current_version": 1, "versions": [1], "retired": [],
        "backend": "local"}
    text = cli("keys", "list")
    assert text.code == 0 and "audit-signing" in text.stdout and "aes256-gcm" in text.stdout


def test_create_rotate_retire_info(cli, ready: Path) -> None:
    res = cli("keys", "create", "pseudonyms", "--kind", "hmac-sha256", "-f", "json")
    assert res.code == 0, res
    assert res.json()["kind"] == "hmac-sha256"
    assert cli("keys", "rotate", "pseudonyms", "-f", "json").json()["current_version"] == 2
    res = cli("keys", "retire", "pseudonyms", "1", "-f", "json")
    assert res.code == 0 and res.json()["retired"] == [1]
    info = cli("keys", "info", "pseudonyms")
    assert info.code == 0 and "retired          1" in info.stdout


def test_public_key_pem(cli, ready: Path) -> None:
    res = cli("keys", "public", "audit-signing")
    assert res.code == 0
    assert isinstance(load_pem_public_key(res.stdout.encode()), ed25519.Ed25519PublicKey)
    assert cli("keys", "rotate", "audit-signing").code == 0
    v1 = cli("keys", "public", "audit-signing", "--version", "1", "-f", "json").json()
    assert v1["version"] == 1 and v1["public_key_pem"] == res.stdout
    current = cli("keys", "public", "audit-signing", "-f", "json").json()
    assert current["version"] == 2 and current["public_key_pem"] != res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("keys", "info", "nope"), "no key named 'nope'"),
        (("keys", "public", "data"), "needs a ed25519 or ecdsa-p256 key"),
        (("keys", "retire", "data", "1"), "it is the current version"),
        (("keys", "create", "data", "--kind", "aes256-gcm"), "already exists"),
        (("keys", "create", "Bad", "--kind", "ed25519"), "invalid key name"),
    ],
)
def test_errors_are_one_line(cli, ready: Path, args: tuple[str, ...], message: str) -> None:
    res = cli(*args)
    assert res.code == 2
    assert res.stderr.count("\n") == 1 and message in res.stderr


def test_unknown_kind_is_usage_error(cli, ready: Path) -> None:
    res = cli("keys", "create", "x", "--kind", "rsa")
    assert res.code == 2 and "--kind" in res.stderr


def test_wrong_master_key_is_reported(cli, ready: Path) -> None:
    (ready / "master.key").write_text("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
    res = cli("keys", "list")
    assert res.code == 2
    assert f"wrong master key for keyring {ready / 'keyring.json'}" in res.stderr


@pytest.mark.skipif(not os.environ.get("TSUBA_TEST_PKCS11_MODULE"),
                    reason="SoftHSM2 not configured (set TSUBA_TEST_PKCS11_MODULE)")
def test_keys_over_pkcs11_in_a_subprocess(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSUBA_")}
    env.update(
        SOFTHSM2_CONF=str(conf),
        TSUBA_HOME=str(tmp_path / "home"),
        TSUBA_KEYS__BACKEND="pkcs11",
        TSUBA_KEYS__PKCS11_MODULE=os.environ["TSUBA_TEST_PKCS11_MODULE"],
        TSUBA_KEYS__PKCS11_TOKEN_LABEL="cli-token",
        TSUBA_KEYS__PKCS11_PIN="246810",
    )
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "cli-token",
                    "--so-pin", "13579111", "--pin", "246810"], env=env, check=True,
                   capture_output=True)

    def tsuba(*args: str, extra: dict[str, str] | None = None,
              ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tsuba.cli.main", *args],
                              env={**env, **(extra or {})}, check=False,
                              capture_output=True, text=True, timeout=120)

    res = tsuba("init", "-f", "json")
    assert res.returncode == 0, res.stderr
    assert "keys live in the pkcs11 backend" in res.stdout
    res = tsuba("keys", "create", "signer", "--kind", "ecdsa-p256")
    assert res.returncode == 0, res.stderr
    pem = tsuba("keys", "public", "signer")
    assert pem.returncode == 0 and pem.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert tsuba("keys", "rotate", "signer").returncode == 0
    listed = tsuba("keys", "list", "-f", "json")
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["signer"]["versions"] == [1, 2] and rows["signer"]["backend"] == "pkcs11"
    assert set(rows) >= {"audit-signing", "data"}
    res = tsuba("keys", "list", extra={"TSUBA_KEYS__PKCS11_PIN": "000000"})
    assert res.returncode == 2 and "wrong PIN" in res.stderr


def _key_events(home: Path) -> list[dict]:
    from tsuba.core.bus import SqlOutbox
    from tsuba.core.config import load_settings
    from tsuba.core.storage import open_engine

    engine = open_engine(load_settings(home).sqlalchemy_url)
    try:
        outbox = SqlOutbox(engine)
        records = outbox.read(0, outbox.head(), limit=1000, classes=["entity_management"])
    finally:
        engine.dispose()
    return [e for e in (json.loads(r.payload) for r in records)
            if e["resource"].startswith("key/")]


def test_key_changes_are_recorded_as_events(cli, ready: Path) -> None:
    created = _key_events(ready)  # by init
    assert {(e["activity"], e["resource"]) for e in created} == {
        ("create", "key/audit-signing"), ("create", "key/data")}
    assert cli("keys", "rotate", "data").code == 0
    assert cli("keys", "retire", "data", "1").code == 0
    assert cli("keys", "rotate", "audit-signing").code == 0
    assert cli("keys", "create", "extra", "--kind", "ecdsa-p256").code == 0
    events = _key_events(ready)[2:]
    assert [(e["activity"], e["resource"], e["attributes"]["version"]) for e in events] == [
        ("rotate", "key/data", 2), ("retire", "key/data", 1),
        ("rotate", "key/audit-signing", 2), ("create", "key/extra", 1)]
    retire = events[1]
    assert retire["severity"] == "medium" and retire["actor"].startswith("cli")
    assert "secret" not in json.dumps(events)


def test_failed_change_records_nothing(cli, ready: Path) -> None:
    before = len(_key_events(ready))
    assert cli("keys", "retire", "data", "1").code == 2  # current version
    assert len(_key_events(ready)) == before


def test_keys_create_with_principal_issues_an_api_key(cli, home) -> None:
    assert cli("init").code == 0
    assert cli("principal", "create", "carol", "--kind", "service").code == 0
    res = cli("keys", "create", "--principal", "carol", "--expires", "7d", "--format", "json")
    assert res.code == 0, res
    data = res.json()
    assert data["principal"] == "carol" and data["key"].startswith("tsk_")
    listed = cli("apikeys", "list", "--principal", "carol", "--format", "json").json()
    assert [k["prefix"] for k in listed] == [data["prefix"]]
    # one or the other, never both; neither is a usage error
    assert cli("keys", "create", "x", "--kind", "ed25519", "--principal", "carol").code == 2
    res = cli("keys", "create")
    assert res.code == 2 and "--principal" in res.stderr
