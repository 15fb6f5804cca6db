"""Playbooks on SQLite and PostgreSQL: dry runs, approvals by a second person, idempotent
re-runs, retries then escalation, a real webhook receiver, and CACAO v2.0 round trips."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
import yaml
from soar_events import Clock, alert
from sqlalchemy import Engine

from tsuba.core.errors import InputError
from tsuba.core.events import SecurityEvent, Severity
from tsuba.soar.incidents import IncidentService
from tsuba.soar.playbooks import (
    FunctionAction,
    PlaybookRunner,
    from_cacao,
    note_action,
    parse_playbook,
    to_cacao,
    webhook_action,
)

PLAYBOOK = yaml.safe_load("""
id: leaked-key
title: Leaked API key
trigger: {rules: ["tsuba.auth.*"], min_severity: P1}
steps:
  - id: note
    action: incident_note
    params: {incident: "{incident.id}", text: "key from {alert.group.src_ip} under review"}
  - id: revoke
    action: revoke_api_key
    when: {alert.group.credential_id: {exists: true}}
    params: {prefix: "{alert.group.credential_id}"}
  - id: block
    action: block_ip
    when: {alert.group.src_ip: {regex: "^203\\\\."}}
    params: {ip: "{alert.group.src_ip}"}
""")


class Recorder:
    def __init__(self, fail_times: int = 0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_times = fail_times

    def __call__(self, params: dict[str, Any]) -> str:
        self.calls.append(params)
        if len(self.calls) <= self.fail_times:
            raise ConnectionError("upstream down")
        return f"ok {params}"


@pytest.fixture
def setup(engine: Engine) -> Iterator[dict[str, Any]]:
    events: list[SecurityEvent] = []
    svc = IncidentService(engine, emit=events.append, actor="alice", clock=Clock())
    revoke, block = Recorder(), Recorder()
    sleeps: list[float] = []
    runner = PlaybookRunner(
        svc,
        {"incident_note": note_action(svc),
         "revoke_api_key": FunctionAction(revoke, destructive=True),
         "block_ip": FunctionAction(block, destructive=True)},
        emit=events.append, sleep=sleeps.append, backoff=0.5,
    )
    inc = svc.ingest(alert("tsuba.auth.key_new_network", Severity.HIGH,
                           group={"credential_id": "tsk_abc", "src_ip": "203.0.113.9"}))
    yield {"svc": svc, "runner": runner, "revoke": revoke, "block": block, "events": events,
           "incident": inc.incident, "sleeps": sleeps}


def test_trigger_matches_rule_patterns_and_priority(setup: dict[str, Any]) -> None:
    pb = parse_playbook(PLAYBOOK)
    inc = setup["svc"].get(setup["incident"].id)
    assert pb.matches(inc, ["tsuba.auth.key_new_network"])
    assert not pb.matches(inc, ["tsuba.guards.sensitive_output"])
    low = setup["svc"].ingest(alert("tsuba.auth.x", Severity.MEDIUM, group={"actor": "z"}))
    assert not pb.matches(low.incident, ["tsuba.auth.x"])


def test_dry_run_plans_without_acting(setup: dict[str, Any]) -> None:
    results = setup["runner"].run(parse_playbook(PLAYBOOK), setup["incident"].id, dry_run=True)
    assert [(r.step, r.status) for r in results] == [
        ("note", "planned"), ("revoke", "planned"), ("block", "planned")]
    assert results[1].params == {"prefix": "tsk_abc"}
    assert "second person" in results[1].detail
    assert setup["revoke"].calls == [] and setup["svc"].get(
        setup["incident"].id).history[-1]["action"] == "open"


def test_destructive_steps_wait_for_a_second_person_then_run_once(
    setup: dict[str, Any],
) -> None:
    runner, pb, inc = setup["runner"], parse_playbook(PLAYBOOK), setup["incident"]
    first = runner.run(pb, inc.id)
    assert [r.status for r in first] == ["done", "needs_approval", "needs_approval"]
    assert setup["revoke"].calls == []
    history = setup["svc"].get(inc.id).history
    assert history[-1]["note"] == "key from 203.0.113.9 under review"
    with pytest.raises(InputError, match="second person"):
        runner.run(pb, inc.id, approved_by="alice")
    second = runner.run(pb, inc.id, approved_by="bob")
    assert [r.status for r in second] == ["already_done", "done", "done"]
    assert setup["revoke"].calls == [{"prefix": "tsk_abc"}]
    assert setup["block"].calls == [{"ip": "203.0.113.9"}]
    third = runner.run(pb, inc.id, approved_by="bob")
    assert [r.status for r in third] == ["already_done"] * 3
    assert len(setup["revoke"].calls) == 1
    audited = [e for e in setup["events"] if e.attributes.get("action") == "playbook_step"]
    assert [(e.attributes["step"], e.attributes["status"]) for e in audited] == [
        ("note", "done"), ("revoke", "needs_approval"), ("block", "needs_approval"),
        ("revoke", "done"), ("block", "done")]
    assert audited[3].attributes["approved_by"] == "bob"


def test_auto_approval_runs_destructive_steps_at_once_and_says_who_approved(
    setup: dict[str, Any],
) -> None:
    data = {**PLAYBOOK, "author": "carol@example.org", "version": "3",
            "steps": [{**PLAYBOOK["steps"][1], "approval": "auto"}, PLAYBOOK["steps"][2]]}
    pb, runner, inc = parse_playbook(data), setup["runner"], setup["incident"]
    plan = runner.run(pb, inc.id, dry_run=True)
    assert "pre-approved by playbook:leaked-key@3 by carol@example.org" in plan[0].detail
    assert "second person" in plan[1].detail
    results = runner.run(pb, inc.id)
    assert [r.status for r in results] == ["done", "needs_approval"]
    assert setup["revoke"].calls == [{"prefix": "tsk_abc"}] and setup["block"].calls == []
    done = next(e for e in setup["events"] if e.attributes.get("status") == "done")
    assert done.attributes["pre_approved"] is True
    assert done.attributes["approved_by"] == "playbook:leaked-key@3 by carol@example.org"
    assert done.attributes["playbook_author"] == "carol@example.org"
    assert "pre-approved by playbook:leaked-key@3" in done.message
    # a person approving the run is named as such, not the playbook
    again = runner.run(pb, inc.id, approved_by="bob")
    assert [r.status for r in again] == ["already_done", "done"]
    last = setup["events"][-1]
    assert last.attributes["approved_by"] == "bob" and last.attributes["pre_approved"] is False


def test_approval_required_holds_even_a_harmless_step(setup: dict[str, Any]) -> None:
    step = {**PLAYBOOK["steps"][0], "approval": "required"}
    pb = parse_playbook({**PLAYBOOK, "steps": [step]})
    results = setup["runner"].run(pb, setup["incident"].id)
    assert results[0].status == "needs_approval"
    assert "approval: required" in results[0].detail
    assert setup["runner"].run(pb, setup["incident"].id, approved_by="bob")[0].status == "done"


def test_conditions_skip_steps(setup: dict[str, Any]) -> None:
    other = setup["svc"].ingest(alert("tsuba.auth.brute_force", Severity.HIGH,
                                      group={"src_ip": "198.51.100.4"}))
    pb = parse_playbook({**PLAYBOOK, "steps": PLAYBOOK["steps"][1:]})
    results = setup["runner"].run(pb, other.incident.id, approved_by="bob")
    assert [r.status for r in results] == ["skipped", "skipped"]


def test_failing_action_is_retried_then_escalated(setup: dict[str, Any]) -> None:
    svc, events = setup["svc"], setup["events"]
    flaky, dead = Recorder(fail_times=1), Recorder(fail_times=99)
    runner = PlaybookRunner(svc, {"flaky": FunctionAction(flaky), "dead": FunctionAction(dead),
                                  "never": FunctionAction(Recorder())},
                            emit=events.append, sleep=setup["sleeps"].append, backoff=0.5)
    pb = parse_playbook({"id": "p", "title": "t", "steps": [
        {"id": "a", "action": "flaky"}, {"id": "b", "action": "dead"},
        {"id": "c", "action": "never"}]})
    results = runner.run(pb, setup["incident"].id)
    assert [(r.status, r.attempts) for r in results] == [("done", 2), ("failed", 3)]
    assert "ConnectionError: upstream down" in results[1].detail
    assert setup["sleeps"] == [0.5, 0.5, 1.0]
    escalation = [e for e in events if e.attributes.get("status") == "failed"]
    assert len(escalation) == 1 and escalation[0].severity is Severity.HIGH
    assert "needs a person" in svc.get(setup["incident"].id).history[-1]["note"]


def test_missing_values_and_actions_are_refused(setup: dict[str, Any]) -> None:
    runner = setup["runner"]
    pb = parse_playbook({"id": "p", "title": "t", "steps": [
        {"id": "a", "action": "incident_note",
         "params": {"incident": "{incident.id}", "text": "{alert.group.nothing}"}}]})
    with pytest.raises(InputError, match="has no value"):
        runner.run(pb, setup["incident"].id)
    unknown = parse_playbook({"id": "p", "title": "t", "steps": [{"id": "a", "action": "nuke"}]})
    with pytest.raises(InputError, match="does not have: nuke"):
        runner.run(unknown, setup["incident"].id)


@pytest.mark.parametrize(
    ("data", "message"),
    [([], "a mapping"), ({"id": "Bad Id", "title": "t", "steps": [{"id": "a", "action": "x"}]},
                         "id"),
     ({"id": "p", "title": "t", "steps": []}, "steps"),
     ({"id": "p", "title": "t", "steps": [{"id": "a", "action": "x"}, {"id": "a",
                                                                        "action": "y"}]},
      "unique"),
     ({"id": "p", "title": "t", "steps": [{"id": "a", "action": "x",
                                           "when": {"f": {"like": 1}}}]}, "operators"),
     ({"id": "p", "title": "t", "steps": [{"id": "a", "action": "x",
                                           "when": {"f": {"regex": "("}}}]}, "invalid regex"),
     ({"id": "p", "title": "t", "steps": [{"id": "a", "action": "x", "approval": "maybe"}]},
      "approval"),
     ({"id": "p", "title": "t", "trigger": {"min_severity": "P7"},
       "steps": [{"id": "a", "action": "x"}]}, "P0, P1, P2 or P3")],
)
def test_bad_playbooks(data: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_playbook(data)


def test_cacao_round_trip_and_refusals() -> None:
    pb = parse_playbook(PLAYBOOK)
    doc = json.loads(json.dumps(to_cacao(pb)))
    assert doc["spec_version"] == "cacao-2.0" and doc["type"] == "playbook"
    assert doc["id"].startswith("playbook--") and doc["workflow_start"] in doc["workflow"]
    kinds = sorted(step["type"] for step in doc["workflow"].values())
    assert kinds == ["action", "action", "action", "end", "if-condition", "if-condition",
                     "start"]
    assert from_cacao(doc) == pb
    assert to_cacao(pb)["id"] == doc["id"]  # stable ids
    signed = parse_playbook({**PLAYBOOK, "author": "carol", "version": "2", "steps": [
        {**PLAYBOOK["steps"][1], "approval": "auto"}, PLAYBOOK["steps"][0]]})
    back = from_cacao(json.loads(json.dumps(to_cacao(signed))))
    assert back == signed and back.steps[0].approval == "auto" and back.version == "2"
    with pytest.raises(InputError, match=r"not a CACAO v2\.0"):
        from_cacao({**doc, "spec_version": "cacao-1.0"})
    looped = json.loads(json.dumps(doc))
    end = next(k for k, v in looped["workflow"].items() if v["type"] == "end")
    last = next(k for k, v in looped["workflow"].items() if v.get("on_completion") == end)
    looped["workflow"][last]["on_completion"] = looped["workflow_start"]
    with pytest.raises(InputError, match="loops"):
        from_cacao(looped)
    foreign = json.loads(json.dumps(doc))
    for step in foreign["workflow"].values():
        step.pop("x_tsuba", None)
    with pytest.raises(InputError, match="no tsuba"):
        from_cacao(foreign)


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(_Hook.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhook_posts_slack_compatible_json_to_a_real_server() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        hook = webhook_action(timeout=5)
        assert "HTTP 200" in hook({"url": url, "text": "incident 1 opened"})
        assert _Hook.received[-1] == {"text": "incident 1 opened"}
        _Hook.status = 500
        with pytest.raises(InputError, match="HTTP 500"):
            hook({"url": url, "text": "x"})
        with pytest.raises(InputError, match="needs a 'url'"):
            hook({"url": "file:///etc/passwd", "text": "x"})
    finally:
        server.shutdown()
        server.server_close()
