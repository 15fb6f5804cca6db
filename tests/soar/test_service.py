"""The response loop in-process: live detection, automatic playbooks, SIEM forwarding, the
lease that keeps one loop per database, and what ``status`` and /metrics report; on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine

from processes import wait_for
from tsuba.core.config import load_settings
from tsuba.core.errors import ConfigError
from tsuba.core.events import EventClass, SecurityEvent
from tsuba.core.home import init_home
from tsuba.core.identity import IdentityService
from tsuba.core.platform import Platform
from tsuba.gateway.auth import ApiKeyService, create_api_key
from tsuba.soar.incidents import IncidentService
from tsuba.soar.lease import Lease, read_lease
from tsuba.soar.service import ResponseService, loop_status

LEAK_RULE = """
rules:
  - id: test.leaked_key
    title: A key marked leaked authenticated
    kind: match
    severity: high
    match: {class: authentication, outcome: success, leaked: true}
    group_by: [credential_id]
    mitre_attack: [T1078]
"""

REVOKE_PLAYBOOK = """
id: revoke-leaked
title: Revoke a leaked key
author: secops
version: "1"
trigger: {rules: [test.leaked_key], min_severity: P1}
steps:
  - id: revoke
    action: revoke_api_key
    approval: auto
    params: {prefix: "{alert.group.credential_id}"}
  - id: note
    action: incident_note
    params: {incident: "{incident.id}", text: "revoked {alert.group.credential_id}"}
"""


@pytest.fixture
def open_platform(
    home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Platform]]:
    """``open_platform(soar={...})``: a Platform on a fresh home and database."""
    if not db_url.startswith("sqlite"):
        monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
    init_home(home)
    (home / "rules.yaml").write_text(LEAK_RULE, encoding="utf-8")
    opened: list[Platform] = []

    def build(**soar: Any) -> Platform:
        cfg = {"rules": ["rules.yaml"], "lease_seconds": 2, **soar}
        platform = Platform.open(load_settings(home, soar=cfg))
        opened.append(platform)
        return platform

    yield build
    for platform in opened:
        platform.close()


def _principal_with_key(platform: Platform, name: str = "alice") -> tuple[str, str]:
    with IdentityService(platform.engine, actor="test") as ids:
        ids.create_principal(name, "user")
    key, record = create_api_key(platform.engine, name, keys=platform.keys)
    return key, record.prefix


def _leak(prefix: str, ip: str = "198.51.100.7") -> SecurityEvent:
    return SecurityEvent.from_dict({
        "class": "authentication", "activity": "logon", "outcome": "success",
        "actor": "alice", "src_ip": ip, "credential_id": prefix, "leaked": True,
    })


def _events(platform: Platform) -> list[SecurityEvent]:
    return [e.event() for e in platform.audit.entries(0, platform.audit.size())]


def _service(platform: Platform, **kw: Any) -> ResponseService:
    return ResponseService(platform, registry=kw.pop("registry", None), **kw)


def test_lease_has_one_holder_expires_and_is_handed_back(engine: Engine) -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    clock: Callable[[], datetime] = lambda: now[0]  # noqa: E731
    first = Lease(engine, holder="a", ttl=10, clock=clock)
    second = Lease(engine, holder="b", ttl=10, clock=clock)
    assert first.acquire({"state": "active"})
    assert not second.acquire()
    now[0] += timedelta(seconds=5)
    assert first.renew()  # renewing keeps it for another ttl from now
    now[0] += timedelta(seconds=9)
    assert not second.acquire()
    info = read_lease(engine)
    assert info is not None and info.holder == "a" and info.health == {"state": "active"}
    now[0] += timedelta(seconds=2)  # a's lease ran out: b may take it, a has lost it
    assert second.acquire()
    assert not first.renew()
    second.release()
    assert first.acquire()  # handed back: no waiting for expiry
    info = read_lease(engine)
    assert info is not None and info.holder == "a"


def test_loop_detects_files_and_revokes_by_playbook(
    open_platform: Callable[..., Platform], home: Path
) -> None:
    (home / "playbooks").mkdir()
    (home / "playbooks" / "revoke.yaml").write_text(REVOKE_PLAYBOOK, encoding="utf-8")
    platform = open_platform(sinks=[{"kind": "ndjson_file", "target": "siem/ocsf.ndjson"}])
    _key, prefix = _principal_with_key(platform)
    registry = CollectorRegistry()
    service = _service(platform, registry=registry).start()
    try:
        assert service.wait_active(30)
        platform.record(_leak(prefix))
        keys = ApiKeyService(platform.engine, platform.keys)
        wait_for(lambda: keys.get(prefix).revoked_at is not None, "the playbook's revocation")
        incidents = IncidentService(platform.engine)
        [incident] = incidents.list()
        assert incident.severity.value == "P1"
        full = wait_for(lambda: [
            h for h in incidents.get(incident.id).history if h["action"] == "note"
        ], "the playbook's note")
        assert full[0]["note"] == f"revoked {prefix}"
        out = home / "siem" / "ocsf.ndjson"

        def classes() -> set[int]:
            if not out.exists():
                return set()
            return {json.loads(line)["class_uid"] for line in out.read_text().splitlines()}

        # authentication, the Detection Finding, the Incident Findings, the key's revocation
        wait_for(lambda: {3002, 2004, 2005} <= classes(), "OCSF lines in the file")
        status = wait_for(lambda: (s := loop_status(platform.engine))["active"] and all(
            sub["lag"] == 0 for sub in s["subscribers"]) and s, "the loop to catch up")
        assert status["holder"] == service.holder
        assert {s["name"] for s in status["subscribers"]} == {
            "soar.detect", "soar.playbooks", "soar.siem.ndjson_file"}
        assert status["playbooks"] == ["revoke-leaked"]
        text = generate_latest(registry).decode()
        assert "tsuba_soar_loop_active 1.0" in text
        assert 'tsuba_soar_incidents_open{severity="P1"} 1.0' in text
        # The step ledger: a redelivered Incident Finding does not revoke twice.
        steps = [e for e in _events(platform) if e.event_class is
                 EventClass.INCIDENT_FINDING and e.attributes.get("action") == "playbook_step"]
        assert [s.attributes["step"] for s in steps] == ["revoke", "note"]
        assert steps[0].attributes["approved_by"] == "playbook:revoke-leaked@1 by secops"
    finally:
        service.stop()
    assert not loop_status(platform.engine)["active"]  # handed back on stop


def test_a_second_loop_stands_by_until_the_first_stops(
    open_platform: Callable[..., Platform],
) -> None:
    platform = open_platform()
    first = _service(platform).start()
    second = _service(platform)
    try:
        assert first.wait_active(30)
        second.start()
        assert not second.wait_active(3)  # more than a lease period: it really waits
        assert loop_status(platform.engine)["holder"] == first.holder
        first.stop()
        assert second.wait_active(30)
        assert loop_status(platform.engine)["holder"] == second.holder
        _key, prefix = _principal_with_key(platform)
        platform.record(_leak(prefix))
        incidents = IncidentService(platform.engine)
        wait_for(incidents.list, "the standby, now active, to file the incident")
    finally:
        first.stop()
        second.stop()
    assert len(IncidentService(platform.engine).list()) == 1


def test_a_failing_sink_and_a_broken_playbook_are_reported_not_dropped(
    open_platform: Callable[..., Platform], home: Path
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    (home / "playbooks").mkdir()
    (home / "playbooks" / "broken.yaml").write_text(
        REVOKE_PLAYBOOK.replace("{alert.group.credential_id}", "{alert.group.nothing}"),
        encoding="utf-8")
    platform = open_platform(sinks=[{"kind": "cef_syslog", "target": f"127.0.0.1:{dead_port}",
                                     "name": "down"}])
    _key, prefix = _principal_with_key(platform)
    service = _service(platform).start()
    try:
        assert service.wait_active(30)
        platform.record(_leak(prefix))
        [incident] = wait_for(IncidentService(platform.engine).list, "the incident")
        status = wait_for(lambda: (s := loop_status(platform.engine))["errors"].keys() >= {
            "soar.siem.down", "soar.playbooks"} and s, "the errors in the loop's status")
        assert "syslog tcp://127.0.0.1" in status["errors"]["soar.siem.down"]["last_error"]
        assert "alert.group.nothing" in status["errors"]["soar.playbooks"]["last_error"]
        history = wait_for(lambda: [
            h for h in IncidentService(platform.engine).get(incident.id).history
            if "a person must act" in (h["note"] or "")], "the escalation note")
        assert history[0]["note"].startswith(f"playbook revoke-leaked cannot run on incident "
                                             f"{incident.id}")
        assert ApiKeyService(platform.engine, platform.keys).get(prefix).revoked_at is None
        errors = [e for e in _events(platform)
                  if e.attributes.get("action") == "playbook_error"]
        assert errors and errors[0].severity.name == "HIGH"
    finally:
        service.stop()


@pytest.mark.parametrize(("soar", "files", "message"), [
    ({"rules": ["missing.yaml"]}, {}, "soar.rules: rule file"),
    ({"builtin_rules": False, "rules": []}, {}, "no detection rules"),
    ({}, {"playbooks/bad.yaml": "id: x\ntitle: t\nsteps: []\n"}, "soar.playbooks_dir"),
    ({}, {"playbooks/a.yaml": REVOKE_PLAYBOOK, "playbooks/b.yml": REVOKE_PLAYBOOK},
     "appears twice"),
    ({}, {"playbooks/a.yaml": REVOKE_PLAYBOOK.replace("revoke_api_key", "launch_missiles")},
     "unknown action"),
    ({}, {"playbooks/a.yaml": REVOKE_PLAYBOOK.replace("incident_note", "email")},
     "soar.smtp"),
    ({"sinks": [{"kind": "syslog", "target": "no-port"}]}, {}, "must be host:port"),
    ({"sinks": [{"kind": "ocsf_http", "target": "ftp://x"}]}, {}, "http(s) URL"),
    ({"sinks": [{"kind": "splunk_hec", "target": "https://hec.example/services"}]}, {},
     "HEC token"),
])
def test_bad_configuration_stops_the_loop_before_it_starts(
    open_platform: Callable[..., Platform], home: Path, soar: dict[str, Any],
    files: dict[str, str], message: str,
) -> None:
    for name, text in files.items():
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_text(text, encoding="utf-8")
    platform = open_platform(**soar)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ResponseService(platform, registry=None)


def _gateway_summary(seconds: int, ip: str, prefix: str | None) -> SecurityEvent:
    """A request summary as the gateway records it: the logon nested under ``auth``."""
    ok = prefix is not None
    return SecurityEvent.from_dict({
        "class": "api_activity" if ok else "authentication",
        "activity": "create" if ok else "logon",
        "outcome": "success" if ok else "failure", "actor": "alice" if ok else None,
        "src_ip": ip, "time": (datetime(2026, 3, 1, tzinfo=UTC)
                               + timedelta(seconds=seconds)).isoformat(),
        "auth": {"outcome": "success", "method": "api_key", "credential_id": prefix}
        if ok else {"outcome": "failure", "reason": "invalid API key"},
        "status": 200 if ok else 401, "route": "chat",
    })


def test_gateway_request_summaries_are_read_as_authentication_events() -> None:
    from tsuba.soar.rules import DetectionEngine, builtin_rules
    from tsuba.soar.rules.views import authentication_view

    stream = [_gateway_summary(i, "127.0.0.1", "tsk_victim") for i in range(5)]
    stream += [_gateway_summary(10 + i, "127.1.0.1", None) for i in range(6)]
    stream.append(_gateway_summary(30, "127.1.0.1", "tsk_victim"))
    engine = DetectionEngine(builtin_rules())
    alerts = [a for e in stream for view in authentication_view(e)
              for a in engine.process(view)]
    by_rule = {a.rule_id: a for a in alerts}
    assert set(by_rule) == {"tsuba.auth.failures_then_success", "tsuba.auth.key_new_network"}
    assert by_rule["tsuba.auth.key_new_network"].group == {"credential_id": "tsk_victim"}
    assert by_rule["tsuba.auth.failures_then_success"].group == {"src_ip": "127.1.0.1"}
    # alerts cite the stored events, not copies
    assert set(by_rule["tsuba.auth.key_new_network"].event_ids) <= {e.id for e in stream}
    # an event already in the Authentication shape is read as it is
    plain = SecurityEvent.from_dict({"class": "authentication", "outcome": "success",
                                     "credential_id": "tsk_a"})
    assert authentication_view(plain) == [plain]


def test_a_sink_outage_waits_as_lag_and_delivers_in_order_after(
    open_platform: Callable[..., Platform], home: Path
) -> None:
    target = home / "siem" / "events.ndjson"
    target.mkdir(parents=True)  # a directory where the file should be: every write fails
    platform = open_platform(sinks=[{"kind": "ndjson_file", "target": "siem/events.ndjson",
                                     "name": "file"}], siem_backoff_max_seconds=0.2)
    service = _service(platform).start()
    try:
        assert service.wait_active(30)
        sent = [SecurityEvent.from_dict({"class": "api_activity", "message": f"call {i}"})
                for i in range(5)]
        for event in sent:
            platform.record(event)
        status = wait_for(lambda: (s := loop_status(platform.engine))["errors"].get(
            "soar.siem.file") and s, "the outage in the status")
        [sub] = [s for s in status["subscribers"] if s["name"] == "soar.siem.file"]
        assert sub["lag"] >= 1 and sub["dead_letters"] == 0
        target.rmdir()  # the sink comes back
        lines = wait_for(lambda: target.is_file() and len(
            target.read_text().splitlines()) >= 5 and target.read_text().splitlines(),
            "delivery after the outage")
        ids = [json.loads(line)["metadata"]["uid"] for line in lines]
        assert ids[:5] == [e.id for e in sent]
        wait_for(lambda: [s for s in loop_status(platform.engine)["subscribers"]
                          if s["name"] == "soar.siem.file" and s["lag"] == 0
                          and s["dead_letters"] == 0], "the sink to catch up")
    finally:
        service.stop()


def test_soar_serve_processes_take_turns_on_one_database(
    home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Any],
) -> None:
    """Two real ``tsuba soar serve`` processes: one loop, one standby that takes over."""
    import os
    import signal
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("TSUBA_")}
    env.update(TSUBA_HOME=str(home), TSUBA_SOAR__LEASE_SECONDS="2")
    if not db_url.startswith("sqlite"):
        monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
        env["TSUBA_DATABASE_URL"] = db_url
    init_home(home)

    def serve() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "tsuba.cli.main", "soar", "serve"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def holder() -> str | None:
        result = cli("soar", "status", "--format", "json", "--home", str(home))
        data = result.json()
        return data["holder"] if result.code == 0 else None

    first = serve()
    second: subprocess.Popen[bytes] | None = None
    try:
        held = wait_for(lambda: (h := holder()) and f":{first.pid}:" in h and h,
                        "the first loop to hold the lease", 60)
        second = serve()
        assert second.stderr is not None
        assert b"active once it holds the lease" in second.stderr.readline()  # it has tried
        renewed = cli("soar", "status", "--format", "json", "--home", str(home)).json()
        for _ in range(2):  # two renewals by the first while the second stands by
            renewed = wait_for(lambda r=renewed: (n := cli(
                "soar", "status", "--format", "json", "--home", str(home)).json())[
                "renewed_at"] != r["renewed_at"] and n, "a renewal")
        assert renewed["holder"] == held and second.poll() is None
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0  # a clean stop hands the lease back
        wait_for(lambda: (h := holder()) and f":{second.pid}:" in h, "the standby to take over",
                 60)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(30)
    stopped = cli("soar", "status", "--format", "json", "--home", str(home))
    assert stopped.code == 1 and stopped.json()["state"] == "stopped"


def test_open_incidents_past_their_response_time_are_escalated_on_a_timer(
    open_platform: Callable[..., Platform],
) -> None:
    platform = open_platform(respond_within_seconds={"P1": 0.5}, sla_check_seconds=0.2)
    _key, prefix = _principal_with_key(platform)
    service = _service(platform).start()
    try:
        assert service.wait_active(30)
        platform.record(_leak(prefix))
        incidents = IncidentService(platform.engine)
        [incident] = wait_for(incidents.list, "the incident")
        escalated = wait_for(lambda: incidents.get(incident.id).escalated_at,
                             "the SLA escalation")
        assert escalated > incident.respond_due_at
        checks = read_lease(platform.engine).health["parts"]["sla"]["handled"]  # type: ignore[union-attr]
        wait_for(lambda: read_lease(platform.engine).health["parts"]["sla"][  # type: ignore[union-attr]
            "handled"] >= checks + 3, "more SLA checks")
        after = incidents.get(incident.id)
        assert after.sla_breached
        assert [h["action"] for h in after.history].count("escalate") == 1  # once
        events = wait_for(lambda: [e for e in _events(platform)
                                   if e.attributes.get("action") == "escalate"], "the event")
        assert events[0].severity.name == "HIGH"
    finally:
        service.stop()


def test_each_sink_kind_sends_its_form_to_its_target(tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tsuba.core.config import SiemSinkSettings
    from tsuba.soar.service import build_sink

    received: list[tuple[str, dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    event = SecurityEvent.from_dict({"class": "authentication", "activity": "logon",
                                     "outcome": "failure", "src_ip": "192.0.2.4",
                                     "actor": "mallory", "message": "bad key"})
    try:
        for kind, target, token in (("ocsf_http", f"{url}/ocsf", "t0k"),
                                    ("splunk_hec", f"{url}/services/collector", "hec-1"),
                                    ("ecs_http", f"{url}/_bulk", None)):
            cfg = SiemSinkSettings.model_validate(
                {"kind": kind, "target": target, "token": token, "index": "sec"})
            sink, encode = build_sink(cfg, tmp_path)
            sink.send(encode(event))
            sink.close()
    finally:
        server.shutdown()
    (ocsf_path, ocsf_headers, ocsf), (_, hec_headers, hec), (_, bulk_headers, bulk) = received
    assert ocsf_path == "/ocsf" and ocsf_headers["authorization"] == "Bearer t0k"
    assert json.loads(ocsf)["class_uid"] == 3002
    assert hec_headers["authorization"] == "Splunk hec-1"
    hec_doc = json.loads(hec)
    assert hec_doc["index"] == "sec" and hec_doc["event"]["class_uid"] == 3002
    action, doc = (json.loads(line) for line in bulk.splitlines())
    assert action == {"create": {"_index": "sec", "_id": event.id}}
    assert doc["source"]["ip"] == "192.0.2.4" and "authorization" not in bulk_headers
    assert bulk_headers["content-type"] == "application/x-ndjson"
    files: list[tuple[str, str, Callable[[str], object], object]] = [
        ("ecs_file", "ocsf", lambda line: json.loads(line)["event"]["id"], event.id),
        ("ndjson_file", "cef", lambda line: line.split("|")[0], "CEF:0"),
        ("ndjson_file", "ocsf", lambda line: json.loads(line)["class_uid"], 3002),
    ]
    for kind, fmt, read, expected in files:
        cfg = SiemSinkSettings.model_validate({"kind": kind, "target": f"out/{kind}-{fmt}",
                                               "format": fmt})
        sink, encode = build_sink(cfg, tmp_path)
        sink.send(encode(event))
        assert read((tmp_path / "out" / f"{kind}-{fmt}").read_text().strip()) == expected
