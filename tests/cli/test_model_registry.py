"""``tsuba model register|list|show|lineage|quarantine|release|retire|bom`` on both databases."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

DS = "sha256:" + "5" * 64


def make_model(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "bert"}\n')
    (root / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (root / "weights.bin").write_bytes(os.urandom(50_000))
    return root


@pytest.fixture
def ready(cli, home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
    assert cli("init").code == 0
    return home


def audit(cli, count: int = 30) -> list[dict]:
    res = cli("audit", "tail", "-n", str(count), "--format", "json")
    assert res.code == 0, res
    return [row["event"] for row in res.json()]


def one_line_error(res, code: int = 2) -> str:
    assert res.code == code, res
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res
    return res.stderr


def test_register_list_show_lineage_status_bom(cli, ready: Path, tmp_path: Path) -> None:
    base = make_model(tmp_path / "base")
    res = cli("model", "register", "acme/bert", "1.0", str(base), "--source",
              "https://example.org/bert", "--dataset", f"wiki={DS}", "--param", "lr=2e-5",
              "--format", "json")
    assert res.code == 0, res
    registered = res.json()
    assert registered["status"] == "active" and registered["signature"] == str(base / "model.sig")
    assert registered["scan"]["status"] == "clean"
    ft = make_model(tmp_path / "ft")
    res = cli("model", "register", "acme/bert-ft", "1.0", str(ft), "--parent", "acme/bert:1.0",
              "--hash", "blake3")
    assert res.code == 0, res
    assert "registered acme/bert-ft:1.0" in res.stdout

    listed = cli("model", "list", "--format", "json").json()
    assert [(r["name"], r["version"], r["status"]) for r in listed] == [
        ("acme/bert", "1.0", "active"), ("acme/bert-ft", "1.0", "active")]
    text = cli("model", "list")
    assert text.code == 0 and "acme/bert-ft" in text.stdout
    shown = cli("model", "show", "acme/bert-ft", "--format", "json").json()
    assert shown["parents"] == ["acme/bert:1.0"]
    assert shown["serialization"]["hash_type"] == "blake3"

    lineage = cli("model", "lineage", "acme/bert:1.0", "--format", "json").json()
    assert [d["ref"] for d in lineage["descendants"]] == ["acme/bert-ft:1.0"]
    by_data = cli("model", "lineage", "--dataset", DS)
    assert by_data.code == 0 and "acme/bert-ft:1.0 (active, depth 1)" in by_data.stdout

    quarantined = cli("model", "quarantine", "acme/bert:1.0", "--reason", "poisoned data",
                      "--format", "json")
    assert quarantined.code == 0 and quarantined.json()["status"] == "quarantined"
    assert cli("model", "release", "acme/bert:1.0", "--reason", "cleared").code == 0
    assert cli("model", "retire", "acme/bert:1.0").code == 0
    assert cli("model", "list", "--status", "retired", "-f", "json").json()[0]["name"] == (
        "acme/bert")

    out = tmp_path / "bom.json"
    assert cli("model", "bom", "acme/bert-ft:1.0", "--output", str(out)).code == 0
    doc = json.loads(out.read_text())
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out.read_text()) is None
    assert doc["metadata"]["component"]["pedigree"]["ancestors"][0]["name"] == "acme/bert"
    assert [c["name"] for c in doc["components"]] == ["wiki"]  # inherited from the parent
    printed = cli("model", "bom", "acme/bert-ft")
    assert printed.code == 0 and json.loads(printed.stdout)["specVersion"] == "1.6"

    events = [e for e in audit(cli) if e["resource"].startswith("model/")]
    assert [(e["resource"], e["activity"], e["severity"]) for e in events] == [
        ("model/acme/bert:1.0", "create", "info"),
        ("model/acme/bert-ft:1.0", "create", "info"),
        ("model/acme/bert:1.0", "update", "high"),
        ("model/acme/bert:1.0", "update", "medium"),
        ("model/acme/bert:1.0", "update", "low"),
    ]
    assert events[2]["attributes"]["reason"] == "poisoned data"


def test_register_a_model_signed_by_someone_else(cli, ready: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from model_signing import signing as ms_signing

    key = ec.generate_private_key(ec.SECP256R1())
    private = tmp_path / "pub.key"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public = tmp_path / "pub.pem"
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    model = make_model(tmp_path / "upstream")
    signature = tmp_path / "upstream.sig"
    ms_signing.Config().use_elliptic_key_signer(private_key=private).sign(model, signature)
    res = cli("model", "register", "up", "1", str(model), "--signature", str(signature),
              "--public-key", str(public), "-f", "json")
    assert res.code == 0, res
    assert res.json()["signed_by"] == f"public key {public}"
    (model / "vocab.txt").write_text("[EVIL]\n")
    res = cli("model", "register", "up", "2", str(model), "--signature", str(signature),
              "--public-key", str(public))
    assert "modified: vocab.txt" in one_line_error(res, code=1)


def test_registry_refusals_are_one_line(cli, ready: Path, tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    assert cli("model", "register", "m", "1", str(model)).code == 0
    assert "already registered" in one_line_error(
        cli("model", "register", "m", "1", str(model)))
    assert "model p:1 is not registered" in one_line_error(
        cli("model", "register", "m", "2", str(model), "--parent", "p:1"))
    assert "invalid dataset digest" in one_line_error(
        cli("model", "register", "m", "3", str(model), "--dataset", "sha256:xyz"))
    assert "invalid parameter" in one_line_error(
        cli("model", "register", "m", "4", str(model), "--param", "nokey"))
    assert "say why" in one_line_error(cli("model", "quarantine", "m:1"))
    assert "name a version" in one_line_error(cli("model", "retire", "m"))
    assert "not registered" in one_line_error(cli("model", "show", "nope:1"))
    assert cli("model", "retire", "m:1").code == 0
    assert "cannot become active" in one_line_error(
        cli("model", "release", "m:1", "--reason", "x"))
    evil = make_model(tmp_path / "evil")
    import pickle

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    (evil / "pytorch_model.bin").write_bytes(pickle.dumps(Exploit(), protocol=2))
    res = cli("model", "register", "evil", "1", str(evil))
    assert "is unsafe" in one_line_error(res, code=1)
    assert not (evil / "model.sig").exists()
