"""``tsuba model scan``: exit codes, formats, thresholds; signed scan results."""

from __future__ import annotations

import base64
import json
import os
import pickle as P
from pathlib import Path

import pytest
from scan_builders import call, proto, reduce_call, su

from tsuba.core.errors import InputError, IntegrityError
from tsuba.core.keys import KeyKind
from tsuba.core.keys.local import LocalKeyManager
from tsuba.core.keys.master import MasterSecret
from tsuba.models.scan import Severity, scan_path, sign_report, verify_report

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "ok.pkl").write_bytes(P.dumps({"a": [1, 2]}))
    (root / "config.json").write_text('{"model_type": "bert"}')
    (root / "sub" / "evil.bin").write_bytes(reduce_call("os", "system", "id"))
    return root


def test_exit_codes_and_recursion(cli, folder: Path) -> None:  # type: ignore[no-untyped-def]
    top = cli("model", "scan", str(folder))
    assert top.code == 0, top
    deep = cli("model", "scan", "--recursive", str(folder))
    assert deep.code == 1
    assert "evil.bin" in deep.stdout and "critical" in deep.stdout
    missing = cli("model", "scan", str(folder / "nope"))
    assert missing.code == 2 and "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_fail_on_threshold(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    unknown = tmp_path / "custom.pkl"  # an import outside the allow-list: medium
    unknown.write_bytes(proto(2) + b"cmypkg.models\nNet\n)\x81.")
    assert cli("model", "scan", str(unknown)).code == 1
    assert cli("model", "scan", "--fail-on", "high", str(unknown)).code == 0
    assert cli("model", "scan", "--fail-on", "bogus", str(unknown)).code == 2


def test_json_output(cli, folder: Path) -> None:  # type: ignore[no-untyped-def]
    res = cli("model", "scan", "-r", "--format", "json", str(folder))
    data = res.json()
    assert res.code == 1
    assert data["summary"]["max_severity"] == "critical"
    evil = next(f for f in data["files"] if f["path"].endswith("evil.bin"))
    assert evil["format"] == "pickle"
    assert {x["rule"] for x in evil["findings"]} >= {"pickle.dangerous-import"}


def test_sarif_output(cli, folder: Path) -> None:  # type: ignore[no-untyped-def]
    res = cli("model", "scan", "-r", "-f", "sarif", str(folder))
    sarif = res.json()
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    assert run["tool"]["driver"]["name"] == "tsuba"
    rule_ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
    result = run["results"][0]
    assert result["ruleId"] in rule_ids
    assert result["level"] == "error"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith(
        "evil.bin")
    assert float(run["tool"]["driver"]["rules"][0]["properties"]["security-severity"]) >= 9


def test_unreadable_file_exits_2(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if os.geteuid() == 0:
        target = tmp_path / "dir.pkl"
        target.mkdir()
        link = tmp_path / "loop"
        link.symlink_to(link)
        res = cli("model", "scan", str(link))
    else:
        f = tmp_path / "locked.pkl"
        f.write_bytes(b"N.")
        f.chmod(0)
        res = cli("model", "scan", str(f))
    assert res.code == 2


def test_library_report_verdicts(folder: Path) -> None:
    report = scan_path(folder)  # the library descends by default
    assert report.exit_code() == 1
    assert report.unsafe(Severity.CRITICAL)
    with pytest.raises(InputError):
        scan_path(folder / "missing")


@pytest.fixture
def km(tmp_path: Path) -> LocalKeyManager:
    manager = LocalKeyManager.initialise(tmp_path / "keyring.json",
                                         MasterSecret(source="test", key=os.urandom(32)))
    manager.create("scan-ed", KeyKind.ED25519)
    manager.create("scan-ec", KeyKind.ECDSA_P256)
    return manager


@pytest.mark.parametrize("key", ["scan-ed", "scan-ec"])
def test_signed_scan_result_round_trip(km: LocalKeyManager, folder: Path, key: str) -> None:
    report = scan_path(folder, recursive=False)
    envelope = sign_report(report, km, key, DIGEST, subject_name="bert")
    att = verify_report(envelope, km.public_key_pem(key), subject_digest=DIGEST)
    assert att.clean and att.subject_digest == DIGEST and att.subject_name == "bert"
    assert att.scanner_version == report.tool_version
    assert att.key_id == f"{key}:1"
    unsafe = sign_report(scan_path(folder, recursive=True), km, key, DIGEST)
    assert not verify_report(unsafe, km.public_key_pem(key)).clean


def test_signed_result_refuses_tampering_other_keys_and_other_models(
    km: LocalKeyManager, folder: Path
) -> None:
    envelope = sign_report(scan_path(folder, recursive=True), km, "scan-ed", DIGEST)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["verdict"] = "clean"
    forged = dict(envelope, payload=base64.b64encode(json.dumps(statement).encode()).decode())
    with pytest.raises(IntegrityError):
        verify_report(forged, km.public_key_pem("scan-ed"))
    with pytest.raises(IntegrityError):
        verify_report(envelope, km.public_key_pem("scan-ec"))
    with pytest.raises(IntegrityError, match="not sha256"):
        verify_report(envelope, km.public_key_pem("scan-ed"), subject_digest="sha256:" + "cd" * 32)
    with pytest.raises(InputError):
        verify_report({"payload": "!!"}, km.public_key_pem("scan-ed"))
    with pytest.raises(InputError):
        sign_report(scan_path(folder, recursive=False), km, "scan-ed", "not-a-digest")


def test_cli_writes_a_signed_result(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").code == 0
    assert cli("keys", "create", "scan-signing", "--kind", "ed25519").code == 0
    model = tmp_path / "m.pkl"
    model.write_bytes(P.dumps([1, 2, 3]))
    out = tmp_path / "scan.dsse.json"
    res = cli("model", "scan", str(model), "--sign-with", "scan-signing", "--subject-digest",
              DIGEST, "--attestation", str(out))
    assert res.code == 0, res
    pem = cli("keys", "public", "scan-signing")
    assert pem.code == 0, pem
    envelope = json.loads(out.read_text())
    assert verify_report(envelope, pem.stdout.encode(), subject_digest=DIGEST).clean
    assert cli("model", "scan", str(model), "--sign-with", "x").code == 2


def test_streams_built_by_hand_reach_the_cli(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "tokenizer.json"  # a pickle under a JSON name
    f.write_bytes(call("builtins", "exec", "print(1)"))
    assert cli("model", "scan", str(f)).code == 1
    g = tmp_path / "weights.bin"
    g.write_bytes(proto(4) + su("x") + b".")
    assert cli("model", "scan", str(g)).code == 0
