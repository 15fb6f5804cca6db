"""``tsuba model sign`` / ``tsuba model verify`` through the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def make_model(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "llama"}\n')
    (root / "model.safetensors").write_bytes(os.urandom(200_000))
    (root / "sub").mkdir()
    (root / "sub" / "tokenizer.json").write_text("{}\n")
    return root


@pytest.fixture
def ready(cli, home: Path) -> Path:
    assert cli("init").code == 0
    return home


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "model")


def one_line_error(res, code: int = 2) -> str:
    assert res.code == code, res
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res
    return res.stderr


def test_sign_creates_the_key_once_records_events_and_verifies(
    cli, ready: Path, model: Path
) -> None:
    res = cli("model", "sign", str(model), "--format", "json")
    assert res.code == 0, res
    signed = res.json()
    assert signed["signature"] == str(model / "model.sig") and signed["files"] == 3
    assert signed["serialization"]["method"] == "shards"
    assert signed["key"] == "local key 'model-signing' version 1"
    keys = cli("keys", "list", "-f", "json").json()
    assert [k["kind"] for k in keys if k["name"] == "model-signing"] == ["ecdsa-p256"]
    assert cli("model", "sign", str(model), "--hash", "blake3").code == 0
    events = [r["event"] for r in cli("audit", "tail", "-n", "10", "-f", "json").json()]
    created = [e for e in events if e["resource"] == "key/model-signing"]
    assert [e["activity"] for e in created] == ["create"]  # created once, on first use
    signs = [e for e in events if e["resource"] == f"model-path/{model}"]
    assert len(signs) == 2 and signs[-1]["attributes"]["serialization"]["hash_type"] == "blake3"

    ok = cli("model", "verify", str(model))
    assert ok.code == 0, ok
    assert "3 files match" in ok.stdout and "key store key 'model-signing'" in ok.stdout
    report = cli("model", "verify", str(model), "-f", "json").json()
    assert report["ok"] is True and report["changes"] == []


def test_verify_names_changes_and_exits_1(cli, ready: Path, model: Path) -> None:
    assert cli("model", "sign", str(model), "--shard-size", "50000").code == 0
    (model / "config.json").write_text('{"model_type": "evil"}\n')
    (model / "sub" / "tokenizer.json").rename(model / "tokenizer.json")
    (model / "payload.pkl").write_bytes(b"")
    res = cli("model", "verify", str(model))
    assert res.code == 1, res
    assert "3 change(s)" in res.stderr
    assert "modified: config.json" in res.stdout
    assert "renamed: sub/tokenizer.json -> tokenizer.json" in res.stdout
    assert "added: payload.pkl (empty file)" in res.stdout
    data = cli("model", "verify", str(model), "-f", "json")
    assert data.code == 1
    assert {(c["change"], c["path"]) for c in data.json()["changes"]} == {
        ("modified", "config.json"), ("renamed", "tokenizer.json"), ("added", "payload.pkl")
    }


def test_old_signatures_verify_after_rotation_and_with_an_exported_key(
    cli, ready: Path, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("model", "sign", str(model)).code == 0
    pem = cli("keys", "public", "model-signing").stdout
    assert cli("keys", "rotate", "model-signing").code == 0
    assert cli("model", "verify", str(model), "--key", "model-signing").code == 0
    public = tmp_path / "signer.pub"
    public.write_text(pem)
    # A verifier with only the public key needs no data directory at all.
    monkeypatch.setenv("TSUBA_HOME", str(tmp_path / "nowhere"))
    res = cli("model", "verify", str(model), "--public-key", str(public))
    assert res.code == 0, res


def test_refusals_are_one_line(cli, ready: Path, model: Path, tmp_path: Path) -> None:
    assert "BLAKE3 hashes each file" in one_line_error(
        cli("model", "sign", str(model), "--hash", "blake3", "--shard-size", "1000"))
    assert "unknown hash algorithm 'md5'" in one_line_error(
        cli("model", "sign", str(model), "--hash", "md5"))
    assert "need an EC P-256 key" in one_line_error(
        cli("model", "sign", str(model), "--key", "audit-signing"))
    assert "no key named 'absent'" in one_line_error(
        cli("model", "sign", str(model), "--key", "absent"))
    assert "no such file or directory" in one_line_error(
        cli("model", "sign", str(tmp_path / "missing")))
    assert "no signature at" in one_line_error(cli("model", "verify", str(model)))
    assert cli("model", "sign", str(model)).code == 0
    (model / "model.sig").write_text('{"mediaType": "x"')
    assert "not valid JSON" in one_line_error(cli("model", "verify", str(model)))
    stranger = tmp_path / "stranger.pub"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    stranger.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert cli("model", "sign", str(model)).code == 0
    res = cli("model", "verify", str(model), "--public-key", str(stranger))
    assert "made with another key" in one_line_error(res, code=1)


def test_sign_needs_a_data_directory_for_key_store_keys(cli, home: Path, model: Path) -> None:
    res = cli("model", "sign", str(model))
    assert res.stderr.strip() == f"error: no data directory at {home}: run 'tsuba init'"
    assert res.code == 2


@pytest.mark.skipif(not os.environ.get("TSUBA_TEST_PKCS11_MODULE"),
                    reason="SoftHSM2 not configured (set TSUBA_TEST_PKCS11_MODULE)")
def test_sign_with_a_pkcs11_uri_in_a_real_subprocess(cli, home: Path, tmp_path: Path) -> None:
    module = os.environ["TSUBA_TEST_PKCS11_MODULE"]
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf), "TSUBA_HOME": str(home)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "signing",
                    "--so-pin", "87654321", "--pin", "2468"], check=True, capture_output=True,
                   env=env)
    create = ("import sys; from tsuba.core.keys import KeyKind; "
              "from tsuba.core.keys.pkcs11 import Pkcs11KeyManager as M; "
              "m = M(sys.argv[1], 'signing', '2468'); m.create('hsm-model', KeyKind.ECDSA_P256);"
              " sys.stdout.write(m.public_key_pem('hsm-model').decode())")
    made = subprocess.run([sys.executable, "-c", create, module], capture_output=True,
                          text=True, env=env, check=False, timeout=60)
    assert made.returncode == 0, made.stderr
    public = tmp_path / "hsm.pub"
    public.write_text(made.stdout)
    pin_file = tmp_path / "pin"
    pin_file.write_text("2468\n")
    model = make_model(tmp_path / "hsm-model")
    uri = f"pkcs11:token=signing;object=hsm-model?module-path={module}&pin-source={pin_file}"
    tsuba = [sys.executable, "-c", "from tsuba.cli.main import run; run()"]
    signed = subprocess.run([*tsuba, "model", "sign", str(model), "--pkcs11", uri, "-f", "json"],
                            capture_output=True, text=True, env=env, check=False, timeout=120)
    assert signed.returncode == 0, signed.stderr
    assert json.loads(signed.stdout)["key"] == "pkcs11 key 'hsm-model' version 1"
    assert cli("model", "verify", str(model), "--public-key", str(public)).code == 0
    wrong = subprocess.run(
        [*tsuba, "model", "sign", str(model), "--pkcs11", uri.replace(str(pin_file), "/nope")],
        capture_output=True, text=True, env=env, check=False, timeout=60)
    assert wrong.returncode == 2 and "cannot read the PIN from /nope" in wrong.stderr
