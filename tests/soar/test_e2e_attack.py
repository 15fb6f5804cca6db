"""A scripted attack on the running system, real processes throughout.

``tsuba up`` runs as a subprocess in front of the demo upstream, its response loop sending
CEF syslog to a real rsyslog and OCSF lines to a file.  The attacker, on another loopback
address (127.1.0.1: another /24 than the owner's 127.0.0.1), stuffs keys, then uses a
leaked key with the official ``openai`` SDK.  tsuba opens a P1 incident, the playbook
revokes the key, the next request with it gets 401, and the response times are on record.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from processes import free_port, stop
from processes import wait_for as _wait_for
from tsuba.core.config import load_settings
from tsuba.core.home import init_home
from tsuba.core.identity import IdentityService
from tsuba.core.platform import Platform
from tsuba.gateway.auth import ApiKeyService, create_api_key
from tsuba.gateway.auth.keyformat import format_key, new_key
from tsuba.gateway.demo import DemoServer
from tsuba.soar.incidents import IncidentService, Priority, State

RSYSLOGD = shutil.which("rsyslogd") or (
    "/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None
)
pytestmark = pytest.mark.skipif(RSYSLOGD is None, reason="rsyslog is not installed")

OWNER_IP, ATTACKER_IP = "127.0.0.1", "127.1.0.1"
CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hello"}]}

PLAYBOOK = """
id: contain-leaked-key
title: Revoke an API key that turns up on a new network during an attack
author: secops
version: "3"
trigger: {rules: [tsuba.auth.key_new_network], min_severity: P1}
steps:
  - id: revoke
    action: revoke_api_key
    approval: auto
    params: {prefix: "{alert.group.credential_id}"}
  - id: record
    action: incident_note
    params: {incident: "{incident.id}",
             text: "revoked {alert.group.credential_id}, used from {alert.src_ip}"}
  - id: contain
    action: contain_incident
    params: {incident: "{incident.id}", note: "key revoked"}
"""


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    return _wait_for(check, what, timeout, interval=0.2)


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    out = tmp_path / "rsyslog" / "received.log"
    out.parent.mkdir()
    conf = out.parent / "rsyslog.conf"
    conf.write_text(f"""
global(workDirectory="{out.parent}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="raw" type="string" string="%rawmsg%\\n")
*.* action(type="omfile" file="{out}" template="raw")
""", encoding="utf-8")
    assert RSYSLOGD is not None
    proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(out.parent / "pid")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def listening() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"rsyslogd exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            except OSError:
                return False
            return True

        wait_for(listening, "rsyslog to listen", 15)
        yield port, out
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def demo_upstream() -> Iterator[int]:
    server = DemoServer().start()
    yield server.port
    server.stop()


def _configure(home: Path, upstream: int, syslog: int) -> None:
    with (home / "tsuba.toml").open("a", encoding="utf-8") as f:
        f.write(f"""
[gateway]
allowed_upstream_hosts = ["127.0.0.1:{upstream}"]

[gateway.upstreams.demo]
base_url = "http://127.0.0.1:{upstream}/v1"

[gateway.models.demo]
upstream = "demo"

[soar]
lease_seconds = 4
sla_check_seconds = 2

[[soar.sinks]]
kind = "cef_syslog"
target = "127.0.0.1:{syslog}"

[[soar.sinks]]
kind = "ndjson_file"
target = "siem/ocsf.ndjson"
""")
    (home / "playbooks").mkdir()
    (home / "playbooks" / "contain-leaked-key.yaml").write_text(PLAYBOOK, encoding="utf-8")


def _owner_key(home: Path) -> tuple[str, str]:
    with Platform.open(load_settings(home)) as platform:
        with IdentityService(platform.engine, actor="admin") as ids:
            ids.create_principal("alice", "user")
            ids.create_role("demo-user")
            ids.add_permission("demo-user", "model:invoke", "model/demo")
            ids.bind("demo-user", "alice")
        key, record = create_api_key(platform.engine, "alice", keys=platform.keys)
    return key, record.prefix


@pytest.fixture
def server(home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, demo_upstream: int,
           rsyslog: tuple[int, Path]) -> Iterator[tuple[str, str, str]]:
    """``tsuba up`` as a subprocess; yields its base URL and the owner's key and prefix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSUBA_")}
    env["TSUBA_HOME"] = str(home)
    if not db_url.startswith("sqlite"):
        monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
        env["TSUBA_DATABASE_URL"] = db_url
    init_home(home)
    _configure(home, demo_upstream, rsyslog[0])
    key, prefix = _owner_key(home)
    port = free_port()
    log = home.parent / "up.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tsuba.cli.main", "up", "--port", str(port)],
            env=env, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"tsuba up exited: {log.read_text(errors='replace')}")
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, "tsuba up to serve")
        yield base, key, prefix
    finally:
        stop(proc, 20)


def _chat(client: openai.OpenAI) -> str | None:
    answer = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "hello"}])
    return answer.choices[0].message.content


def _client(ip: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=ip), timeout=30)


def test_stuffed_then_leaked_key_is_detected_revoked_and_reported(
    server: tuple[str, str, str], home: Path, rsyslog: tuple[int, Path],
    cli: Callable[..., Any],
) -> None:
    base, key, prefix = server
    status = wait_for(lambda: (r := cli("soar", "status", "--format", "json", "--home",
                                        str(home))).code == 0 and r.json(),
                      "the response loop to hold the lease")
    assert {s["name"] for s in status["subscribers"]} >= {"soar.detect", "soar.playbooks"}

    # The owner's ordinary use: the key's history is on 127.0.0.0/24.
    owner = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0,
                          http_client=_client(OWNER_IP))
    for _ in range(5):
        assert _chat(owner)

    # Credential stuffing from the attacker's address: well-formed keys that do not exist.
    with _client(ATTACKER_IP) as raw:
        for _ in range(12):
            refused = raw.post(f"{base}/v1/chat/completions", json=CHAT,
                               headers={"authorization": f"Bearer {format_key(new_key())}"})
            assert refused.status_code == 401

    # The leaked key works for the attacker... once.
    attacker = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0,
                             http_client=_client(ATTACKER_IP))
    assert _chat(attacker)

    with Platform.open(load_settings(home)) as platform:
        keys = ApiKeyService(platform.engine, platform.keys)
        wait_for(lambda: keys.get(prefix).revoked_at is not None, "the playbook to revoke")
        incidents = IncidentService(platform.engine)
        [incident] = [i for i in incidents.list() if i.severity is Priority.P1]
        full = incidents.get(incident.id)
        rules = {a.rule_id for a in full.alerts}
        assert {"tsuba.auth.credential_stuffing", "tsuba.auth.failures_then_success",
                "tsuba.auth.key_new_network"} <= rules
        assert f"src_ip:{ATTACKER_IP}" in full.entities
        notes = wait_for(lambda: [h for h in incidents.get(incident.id).history
                                  if h["action"] == "note"], "the playbook's note")
        assert notes[0]["note"] == f"revoked {prefix}, used from {ATTACKER_IP}"

    # The next request with the key is refused, from anywhere.
    for client in (attacker, owner):
        with pytest.raises(openai.AuthenticationError):
            _chat(client)

    # The playbook marked it contained: the time to first response needs no person.
    with Platform.open(load_settings(home)) as platform:
        incidents = IncidentService(platform.engine)
        wait_for(lambda: incidents.get(incident.id).state is State.CONTAINED,
                 "the playbook to contain the incident")

    # A responder confirms and resolves; the response times are on record.
    resolved = cli("soar", "resolve", str(incident.id), "-m", "key revoked by playbook",
                   "--home", str(home))
    assert resolved.code == 0, resolved
    metrics = cli("soar", "metrics", "--format", "json", "--home", str(home))
    assert metrics.code == 0, metrics
    figures = metrics.json()
    assert figures["incidents"] >= 1
    assert figures["mttd_seconds"] is not None and figures["mttd_seconds"] >= 0
    assert figures["mtta_seconds"] is not None and figures["mtta_seconds"] >= 0
    assert figures["mttr_seconds"] is not None and figures["mttr_seconds"] > 0

    # The SIEMs got it: CEF over syslog at rsyslog, OCSF lines in the file.
    received = rsyslog[1]

    def cef_lines() -> list[str]:
        text = received.read_text(encoding="utf-8", errors="replace") \
            if received.exists() else ""
        return [line for line in text.splitlines() if "CEF:0|tsuba|tsuba|" in line]

    wait_for(lambda: any(f"src={ATTACKER_IP}" in line for line in cef_lines())
             and any(f"request=incident/{incident.id}" in line for line in cef_lines()),
             "CEF lines at rsyslog")
    ocsf = home / "siem" / "ocsf.ndjson"

    def ocsf_events() -> list[dict[str, Any]]:
        if not ocsf.exists():
            return []
        return [json.loads(line) for line in ocsf.read_text(encoding="utf-8").splitlines()]

    wait_for(lambda: {3002, 6003, 2004, 2005} <= {e["class_uid"] for e in ocsf_events()},
             "OCSF authentication, API activity and findings in the file")
    stuffing = [e for e in ocsf_events() if e["class_uid"] == 3002
                and e.get("src_endpoint", {}).get("ip") == ATTACKER_IP]
    assert len(stuffing) >= 12
    assert len({e["metadata"]["uid"] for e in ocsf_events()}) == len(ocsf_events())
