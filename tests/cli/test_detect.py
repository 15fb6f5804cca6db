"""``tsuba detect``: the rule pack, replaying JSON-lines events, testing a custom rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _line(seconds: int, **fields: Any) -> str:
    return json.dumps({"time": (T0 + timedelta(seconds=seconds)).isoformat(), **fields})


def _stuffing_then_login() -> str:
    lines = [
        _line(i, **{"class": "authentication", "outcome": "failure", "src_ip": "203.0.113.9",
                    "credential_id": f"tsk_{i}"})
        for i in range(5)
    ]
    lines.append(_line(40, **{"class": "authentication", "outcome": "success",
                              "src_ip": "203.0.113.9", "actor": "alice",
                              "credential_id": "tsk_alice"}))
    return "\n".join(lines) + "\n\n"


RULE = """
id: custom.refusals
title: Refusals by one principal
kind: threshold
severity: medium
match: {class: api_activity, outcome: failure}
group_by: [actor]
threshold: {count: 2, window: 1m}
mitre_atlas: [AML.T0040]
"""


def test_rules_lists_the_pack_as_json(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("detect", "rules", "--format", "json")
    assert result.code == 0
    rules = result.json()
    ids = {r["id"] for r in rules}
    assert "tsuba.auth.failures_then_success" in ids
    stuffing = next(r for r in rules if r["id"] == "tsuba.auth.credential_stuffing")
    assert stuffing["owasp_llm"] == ["LLM10"] and stuffing["mitre_atlas"] == ["AML.T0012"]
    assert stuffing["threshold"]["window"] == "600s"
    text = cli("detect", "rules")
    assert text.code == 0 and "tsuba.auth" in text.stdout


def test_replay_prints_alerts_and_exits_1(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    events = tmp_path / "events.jsonl"
    events.write_text(_stuffing_then_login(), encoding="utf-8")
    result = cli("detect", "replay", str(events), "--format", "json")
    assert result.code == 1
    data = result.json()
    assert data["events"] == 6
    [alert] = data["alerts"]
    assert alert["rule_id"] == "tsuba.auth.failures_then_success"
    assert alert["group"] == {"src_ip": "203.0.113.9"}
    assert alert["time"] == "2026-03-01T12:00:40Z"
    text = cli("detect", "replay", str(events))
    assert text.code == 1 and "1 alert(s) from 6 event(s)" in text.stdout


def test_replay_from_stdin_without_alerts_exits_0(cli) -> None:  # type: ignore[no-untyped-def]
    quiet = _line(0, **{"class": "api_activity", "outcome": "success", "actor": "a"}) + "\n"
    result = cli("detect", "replay", "-", "--format", "json", stdin=quiet)
    assert result.code == 0
    assert result.json() == {"events": 1, "alerts": []}


def test_replay_refuses_bad_lines_naming_them(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cases = {
        "truncated": _line(0, **{"class": "authentication"}) + "\n{\"class\": \"auth",
        "no class": '{"message": "x"}',
        "not an object": "[1, 2]",
        "naive time": '{"class": "api_activity", "time": "2026-01-01T00:00:00"}',
        "unknown class": '{"class": "nonsense"}',
    }
    for name, body in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(body, encoding="utf-8")
        result = cli("detect", "replay", str(path))
        assert result.code == 2, name
        assert result.stderr.startswith("error: line "), (name, result.stderr)
        assert "Traceback" not in result.stderr
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    result = cli("detect", "replay", str(binary))
    assert result.code == 2 and "not UTF-8" in result.stderr
    missing = cli("detect", "replay", str(tmp_path / "missing.jsonl"))
    assert missing.code == 2 and "does not exist" in missing.stderr


def test_custom_rules_run_beside_the_pack(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(
        _line(i, **{"class": "api_activity", "outcome": "failure", "actor": "bob"})
        for i in range(2)), encoding="utf-8")
    result = cli("detect", "replay", str(events), "--rules", str(rule), "--format", "json")
    assert [a["rule_id"] for a in result.json()["alerts"]] == ["custom.refusals"]
    # Only the custom rule, and a clash with a built-in id is refused.
    only = cli("detect", "rules", "--no-builtin", "--rules", str(rule), "--format", "json")
    assert [r["id"] for r in only.json()] == ["custom.refusals"]
    clash = tmp_path / "clash.yaml"
    clash.write_text(RULE.replace("custom.refusals", "tsuba.auth.brute_force"), "utf-8")
    result = cli("detect", "rules", "--rules", str(clash))
    assert result.code == 2 and "already defined" in result.stderr
    none = cli("detect", "rules", "--no-builtin")
    assert none.code == 2 and "no rules" in none.stderr


def test_test_command_checks_a_rule(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rule = tmp_path / "rule.yaml"
    rule.write_text(RULE, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(
        _line(i * 40, **{"class": "api_activity", "outcome": "failure", "actor": "bob"})
        for i in range(4)), encoding="utf-8")
    ok = cli("detect", "test", str(rule), str(events), "--expect", "2", "--format", "json")
    assert ok.code == 0, ok.stderr
    assert len(ok.json()["alerts"]) == 2
    wrong = cli("detect", "test", str(rule), str(events), "--expect", "1")
    assert wrong.code == 1 and "expected 1 alert(s), got 2" in wrong.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(RULE.replace("LLM", "X").replace("AML.T0040", "T-1"), "utf-8")
    bad = cli("detect", "test", str(broken), str(events))
    assert bad.code == 2 and "broken.yaml: rule 'custom.refusals'" in bad.stderr
    broken.write_text("rules: [ {id: x", "utf-8")
    bad = cli("detect", "test", str(broken), str(events))
    assert bad.code == 2 and "not valid YAML" in bad.stderr and "line 1" in bad.stderr
    assert bad.stderr.count("\n") == 1


def test_replay_with_anomaly_baselines(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Thirty quiet minutes of one principal, then a burst of 300 calls in one minute.
    lines = [_line(m * 60 + k, **{"class": "api_activity", "activity": "create",
                                 "outcome": "success", "actor": "svc", "resource": "model/a"})
             for m in range(30) for k in range(2)]
    lines += [_line(31 * 60 + i // 10, **{"class": "api_activity", "activity": "create",
                                         "outcome": "success", "actor": "svc",
                                         "resource": "model/a"}) for i in range(300)]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines), encoding="utf-8")
    plain = cli("detect", "replay", str(events), "--format", "json")
    assert plain.code == 0 and plain.json()["alerts"] == []
    result = cli("detect", "replay", str(events), "--anomaly", "--format", "json")
    assert result.code == 1
    [alert] = result.json()["alerts"]
    assert alert["rule_id"] == "tsuba.anomaly.baseline"
    assert alert["group"] == {"actor": "svc"} and "requests=300" in alert["message"]


def test_replay_reads_gateway_summaries_as_authentication(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The gateway's request summaries nest the logon under ``auth``; replay reads them the
    way the live loop does, so credential stuffing fires on an exported gateway stream."""
    lines = [
        _line(i, **{"class": "authentication", "activity": "logon", "outcome": "failure",
                    "src_ip": "198.51.100.7", "attributes": {"route": "chat", "status": 401,
                                   "auth": {"outcome": "failure", "method": "api_key",
                                            "reason": "unknown API key prefix",
                                            "credential_id": f"tsk_{i:04d}"}}})
        for i in range(12)
    ]
    events = tmp_path / "gateway.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli("detect", "replay", str(events), "--format", "json")
    assert result.code == 1, result
    data = result.json()
    assert data["events"] == 12
    fired = {a["rule_id"] for a in data["alerts"]}
    assert "tsuba.auth.credential_stuffing" in fired
    # One credential tried over and over is brute force, not stuffing.
    same = [_line(i, **{"class": "authentication", "outcome": "failure", "src_ip": "198.51.100.7",
                        "attributes": {"auth": {"outcome": "failure",
                                                "credential_id": "tsk_same"}}})
            for i in range(12)]
    events.write_text("\n".join(same) + "\n", encoding="utf-8")
    again = cli("detect", "replay", str(events), "--format", "json")
    assert "tsuba.auth.credential_stuffing" not in {a["rule_id"] for a in again.json()["alerts"]}
