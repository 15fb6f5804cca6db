"""``tsuba soar`` through the real entry point, on SQLite and PostgreSQL: events in,
incidents through their life cycle, every change in the audit log, metrics out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

T0 = datetime.now(UTC) - timedelta(minutes=30)


def _line(seconds: int, **fields: Any) -> str:
    return json.dumps({"time": (T0 + timedelta(seconds=seconds)).isoformat(), **fields})


def _attack(path: Path) -> Path:
    lines = [_line(i, **{"class": "authentication", "outcome": "failure",
                         "src_ip": "203.0.113.9", "credential_id": f"tsk_{i}"})
             for i in range(10)]
    lines.append(_line(40, **{"class": "authentication", "outcome": "success",
                              "src_ip": "203.0.113.9", "actor": "victim",
                              "credential_id": "tsk_victim"}))
    lines += [_line(100 + i, **{"class": "detection_finding", "actor": "mallory",
                                "outcome": "failure", "stage": "input",
                                "finding": {"guard": "injection", "verdict": "block"}})
              for i in range(3)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _error(res: Any, code: int = 2) -> str:
    assert res.code == code, res
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res
    return str(res.stderr)


def _incident_events(cli: Any) -> list[dict[str, Any]]:
    res = cli("audit", "tail", "-n", "50", "--format", "json")
    assert res.code == 0, res
    return [r["event"] for r in res.json() if r["event"]["class"] == "incident_finding"]


def test_incident_life_cycle_on_each_backend(
    cli, home: Path, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
    assert cli("init").code == 0

    res = cli("soar", "ingest", str(_attack(tmp_path / "attack.jsonl")), "--format", "json")
    assert res.code == 0, res
    filed = res.json()
    assert filed["events"] == 14
    by_rule = {a["rule_id"]: a for a in filed["alerts"]}
    assert set(by_rule) == {"tsuba.auth.credential_stuffing",
                            "tsuba.auth.failures_then_success",
                            "tsuba.guards.prompt_injection_repeated"}
    stuffing = by_rule["tsuba.auth.credential_stuffing"]["incident"]
    assert by_rule["tsuba.auth.failures_then_success"]["incident"] == stuffing
    injection = by_rule["tsuba.guards.prompt_injection_repeated"]["incident"]
    assert injection != stuffing

    listed = cli("soar", "incidents", "--format", "json").json()
    assert [(i["id"], i["severity"], i["state"]) for i in listed] == [
        (injection, "P1", "open"), (stuffing, "P1", "open")]
    assert cli("soar", "incidents", "--severity", "P0", "--format", "json").json() == []

    shown = cli("soar", "show", str(stuffing), "--format", "json").json()
    assert shown["alert_count"] == 2
    assert "src_ip:203.0.113.9" in shown["entities"]
    assert {a["rule_id"] for a in shown["alerts"]} == {"tsuba.auth.credential_stuffing",
                                                        "tsuba.auth.failures_then_success"}

    assert cli("soar", "ack", str(stuffing), "-m", "on it").code == 0
    _error(cli("soar", "ack", str(stuffing)))
    assert cli("soar", "contain", str(stuffing), "-m", "key revoked").code == 0
    assert cli("soar", "resolve", str(stuffing)).code == 0
    message = _error(cli("soar", "close", str(stuffing)))
    assert "needs a post-mortem" in message
    pm = tmp_path / "pm.yaml"
    pm.write_text("summary: stuffed key from a leaked list\nroot_cause: reused password\n"
                  "actions: [revoke key, enforce MFA]\n", encoding="utf-8")
    closed = cli("soar", "close", str(stuffing), "--postmortem", str(pm), "--format", "json")
    assert closed.code == 0, closed
    assert closed.json()["state"] == "closed"
    assert cli("soar", "show", str(stuffing), "--format", "json").json()["postmortem"][
        "actions"] == ["revoke key", "enforce MFA"]

    alert_id = cli("soar", "show", str(injection), "--format", "json").json()["alerts"][0]["id"]
    fp = cli("soar", "false-positive", alert_id, "--reason", "red-team exercise",
             "--format", "json")
    assert fp.code == 0, fp
    assert fp.json()["incident"]["state"] == "closed"
    assert fp.json()["incident"]["resolution"] == "false_positive"

    actions = [(e["resource"], e["attributes"]["action"]) for e in _incident_events(cli)]
    assert actions == [
        (f"incident/{stuffing}", "open"), (f"incident/{stuffing}", "correlate"),
        (f"incident/{injection}", "open"),
        (f"incident/{stuffing}", "acknowledge"), (f"incident/{stuffing}", "contain"),
        (f"incident/{stuffing}", "resolve"), (f"incident/{stuffing}", "close"),
        (f"incident/{injection}", "false_positive"), (f"incident/{injection}", "close"),
    ]
    assert cli("audit", "verify").code == 0

    metrics = cli("soar", "metrics", "--format", "json").json()
    assert metrics["incidents"] == 2 and metrics["alerts"] == 3
    assert metrics["false_positive_alerts"] == 1
    assert metrics["false_positive_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert metrics["open_by_severity"] == {"P0": 0, "P1": 0, "P2": 0, "P3": 0}
    assert metrics["mttd_seconds"] > 0 and metrics["mttr_seconds"] is not None
    assert metrics["sla_breaches"] == 0
    assert cli("soar", "metrics", "--since", "1h").code == 0
    assert cli("soar", "incidents", "--format", "json").json() == []
    assert len(cli("soar", "incidents", "--all", "--format", "json").json()) == 2


def test_refusals_are_one_line(cli, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").code == 0
    assert "no incident 7" in _error(cli("soar", "show", "7"))
    assert "no incident 7" in _error(cli("soar", "ack", "7"))
    assert "P0, P1, P2 or P3" in _error(cli("soar", "incidents", "--severity", "P9"))
    assert "exclude each other" in _error(cli("soar", "incidents", "--all", "--state", "open"))
    assert "invalid --since" in _error(cli("soar", "metrics", "--since", "yesterday"))
    assert "no alert" in _error(cli("soar", "false-positive", "x", "--reason", "r"))
    bad_pm = tmp_path / "pm.yaml"
    bad_pm.write_text("summary: [unclosed", encoding="utf-8")
    assert "not YAML or JSON" in _error(cli("soar", "close", "1", "--postmortem", str(bad_pm)))
    bad_pm.write_text("summary: too short\n", encoding="utf-8")
    assert "post-mortem" in _error(cli("soar", "close", "1", "--postmortem", str(bad_pm)))
    assert "does not exist" in _error(
        cli("soar", "close", "1", "--postmortem", str(tmp_path / "none.yaml")))
    truncated = tmp_path / "t.jsonl"
    truncated.write_text('{"class": "authentication", "outc', encoding="utf-8")
    assert "line 1" in _error(cli("soar", "ingest", str(truncated)))
    assert cli("soar", "metrics", "--format", "json").json()["incidents"] == 0


def test_sla_check_escalates_into_the_audit_log(
    cli, home: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").code == 0
    quiet = cli("soar", "sla-check", "--format", "json")
    assert quiet.code == 0 and quiet.json() == []
    # The CLI works on wall-clock time: an incident is not late yet.
    cli("soar", "ingest", str(_attack(tmp_path / "a.jsonl")))
    assert cli("soar", "sla-check").code == 0
    assert not [e for e in _incident_events(cli) if e["attributes"]["action"] == "escalate"]


def test_falco_and_trivy_findings_join_incidents(
    cli, home: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").code == 0
    now = datetime.now(UTC).isoformat()
    falco = tmp_path / "falco.jsonl"
    falco.write_text(json.dumps({
        "hostname": "gpu-node-3", "priority": "Critical", "rule": "Terminal shell in container",
        "time": now, "output": "shell in model-server", "tags": ["T1059"],
        "output_fields": {"container.id": "8f3a2b", "container.name": "model-server",
                          "user.name": "root"}}) + "\n", encoding="utf-8")
    res = cli("soar", "import-falco", str(falco), "--format", "json")
    assert res.code == 0, res
    [filed] = res.json()["alerts"]
    assert filed["rule_id"] == "falco.terminal_shell_in_container" and filed["opened"]
    shown = cli("soar", "show", str(filed["incident"]), "--format", "json").json()
    assert shown["severity"] == "P0" and "actor:root" in shown["entities"]

    trivy = tmp_path / "trivy.json"
    trivy.write_text(json.dumps({
        "SchemaVersion": 2, "ArtifactName": "model-server:1.4", "CreatedAt": now,
        "Results": [{"Target": "debian", "Vulnerabilities": [
            {"VulnerabilityID": "CVE-2024-0001", "Severity": "HIGH"}]}]}), encoding="utf-8")
    res = cli("soar", "import-trivy", str(trivy), "--format", "json")
    assert res.code == 0, res
    assert [a["rule_id"] for a in res.json()["alerts"]] == ["trivy.findings"]
    quiet = cli("soar", "import-trivy", str(trivy), "--min-severity", "critical",
                "--format", "json")
    assert quiet.code == 0 and quiet.json()["alerts"] == []

    trivy.write_text('{"SchemaVersion": 2', encoding="utf-8")
    assert "not valid JSON" in _error(cli("soar", "import-trivy", str(trivy)))
    assert "--min-severity" in _error(cli("soar", "import-trivy", str(trivy),
                                          "--min-severity", "dire"))
    falco.write_text('{"rule": "x", "priority": "Loud", "time": "2026-01-01T00:00Z"}\n',
                     encoding="utf-8")
    assert "line 1: unknown 'priority'" in _error(cli("soar", "import-falco", str(falco)))


def test_export_to_siem_forms(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    events = _attack(tmp_path / "events.jsonl")
    count = len(events.read_text().splitlines())
    ocsf = cli("soar", "export", str(events))
    assert ocsf.code == 0, ocsf
    docs = [json.loads(line) for line in ocsf.stdout.splitlines()]
    assert len(docs) == count and docs[0]["class_uid"] == 3002
    assert docs[-1]["class_uid"] == 2004
    for form, check in (
        ("cef", lambda line: line.startswith("CEF:0|tsuba|tsuba|")),
        ("syslog", lambda line: line.startswith("<") and "[tsuba@32473 " in line),
        ("hec", lambda line: json.loads(line)["event"]["metadata"]["product"]["name"]
         == "tsuba"),
        ("ecs", lambda line: "@timestamp" in json.loads(line)),
    ):
        res = cli("soar", "export", str(events), "--to", form)
        assert res.code == 0, (form, res)
        lines = res.stdout.splitlines()
        assert len(lines) == count and all(check(line) for line in lines), form
    out = tmp_path / "siem" / "ecs.ndjson"
    out.parent.mkdir()
    for _ in range(2):  # appends
        assert cli("soar", "export", str(events), "--to", "ecs", "--index", "tsuba",
                   "-o", str(out)).code == 0
    bulk = out.read_text().splitlines()
    assert len(bulk) == 4 * count
    assert json.loads(bulk[0])["create"]["_index"] == "tsuba"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(events.read_text() + "{oops\n", encoding="utf-8")
    res = cli("soar", "export", str(bad), "-o", str(tmp_path / "never.ndjson"))
    assert "line" in _error(res) and not (tmp_path / "never.ndjson").exists()
    assert "--to" in cli("soar", "export", str(events), "--to", "xml").stderr


def test_playbook_revokes_a_leaked_key_on_each_backend(
    cli, home: Path, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
    assert cli("init").code == 0
    assert cli("principal", "create", "svc", "--kind", "service").code == 0
    prefix = cli("apikeys", "create", "--principal", "svc", "--format", "json").json()["prefix"]
    lines = [_line(i * 60, **{"class": "authentication", "outcome": "success", "actor": "svc",
                              "src_ip": f"10.0.0.{i + 1}", "credential_id": prefix})
             for i in range(6)]
    lines.append(_line(400, **{"class": "authentication", "outcome": "success", "actor": "svc",
                               "src_ip": "203.0.113.50", "credential_id": prefix}))
    events = tmp_path / "leak.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    filed = cli("soar", "ingest", str(events), "--format", "json").json()["alerts"]
    assert [a["rule_id"] for a in filed] == ["tsuba.auth.key_new_network"]
    incident = str(filed[0]["incident"])
    playbook = tmp_path / "leaked-key.yaml"
    playbook.write_text(
        "id: leaked-key\ntitle: Leaked key\ntrigger: {rules: ['tsuba.auth.*']}\nsteps:\n"
        "  - id: note\n    action: incident_note\n"
        "    params: {incident: '{incident.id}', text: 'revoking {alert.group.credential_id}'}\n"
        "  - id: revoke\n    action: revoke_api_key\n"
        "    params: {prefix: '{alert.group.credential_id}'}\n", encoding="utf-8")

    plan = cli("soar", "playbook", "run", str(playbook), "--incident", incident, "--dry-run",
               "--format", "json")
    assert plan.code == 0, plan
    assert [s["status"] for s in plan.json()["steps"]] == ["planned", "planned"]
    waiting = cli("soar", "playbook", "run", str(playbook), "--incident", incident,
                  "--format", "json")
    assert waiting.code == 1
    assert [s["status"] for s in waiting.json()["steps"]] == ["done", "needs_approval"]
    keys = cli("apikeys", "list", "--format", "json").json()
    assert [k["state"] for k in keys] == ["active"]
    done = cli("soar", "playbook", "run", str(playbook), "--incident", incident,
               "--approved-by", "second-responder", "--format", "json")
    assert done.code == 0, done
    assert [s["status"] for s in done.json()["steps"]] == ["already_done", "done"]
    assert [k["state"] for k in cli("apikeys", "list", "--format", "json").json()] == [
        "revoked"]
    steps = [e["attributes"] for e in _incident_events(cli)
             if e["attributes"]["action"] == "playbook_step"]
    assert [(s["step"], s["status"]) for s in steps] == [
        ("note", "done"), ("revoke", "needs_approval"), ("revoke", "done")]

    cacao = cli("soar", "playbook", "export", str(playbook))
    assert cacao.code == 0 and cacao.json()["spec_version"] == "cacao-2.0"
    exported = tmp_path / "cacao.json"
    exported.write_text(cacao.stdout, encoding="utf-8")
    back = cli("soar", "playbook", "import", str(exported))
    assert back.code == 0 and "action: revoke_api_key" in back.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: x\ntitle: t\nsteps: []\n", encoding="utf-8")
    assert "steps" in _error(cli("soar", "playbook", "run", str(broken), "--incident", "1"))


def test_export_refuses_events_that_break_the_ocsf_schema(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    events = tmp_path / "old.jsonl"
    fine = {"time": "2026-03-01T12:00:00Z", "class": "authentication", "outcome": "failure",
            "src_ip": "203.0.113.9"}
    stale = {**fine, "time": "1990-01-01T00:00:00Z"}  # before OCSF's time range
    events.write_text(json.dumps(fine) + "\n" + json.dumps(stale) + "\n", encoding="utf-8")
    for form in ("ocsf", "hec"):
        res = cli("soar", "export", str(events), "--to", form, "-o", str(tmp_path / "x.json"))
        assert res.code == 2 and "event 2:" in res.stderr and "time" in res.stderr, res
        assert not (tmp_path / "x.json").exists()  # nothing written
    sent = cli("soar", "export", str(events), "--no-validate")
    assert sent.code == 0 and len(sent.stdout.splitlines()) == 2
    # CEF has no schema to break: the same events convert.
    assert cli("soar", "export", str(events), "--to", "cef").code == 0
