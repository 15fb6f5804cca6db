"""POST /v1/soar/ingest/falco|trivy on the real app (API keys, RBAC, audit log), on SQLite
and PostgreSQL: accepted alerts are recorded and filed; forged credentials, missing
permissions, malformed and oversized bodies are refused and audited."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_external import FALCO, TRIVY

from tsuba.core.config import load_settings
from tsuba.core.events import EventClass, SecurityEvent
from tsuba.core.home import init_home
from tsuba.core.identity import IdentityService
from tsuba.core.platform import Platform
from tsuba.gateway.app import create_app
from tsuba.gateway.auth import create_api_key
from tsuba.soar.incidents import IncidentService

FUZZ = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass
class Api:
    client: TestClient
    platform: Platform
    sensor_key: str  # may ingest
    viewer_key: str  # authenticated, no soar:ingest

    def post(self, source: str, body: bytes | str, key: str | None = None,
             **headers: str) -> Any:
        token = self.sensor_key if key is None else key
        auth = {"authorization": f"Bearer {token}"} if token else {}
        return self.client.post(f"/v1/soar/ingest/{source}", content=body,
                                headers={**auth, **headers})

    def events(self) -> list[SecurityEvent]:
        audit = self.platform.audit
        return [e.event() for e in audit.entries(0, audit.size())]

    def incidents(self) -> int:
        return len(IncidentService(self.platform.engine).list())


def _start(home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,
           **soar: Any) -> Iterator[Api]:
    if not db_url.startswith("sqlite"):
        monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
    init_home(home)
    cfg = load_settings(home, soar={"ingest_max_body_bytes": 4096, **soar})
    platform = Platform.open(cfg)
    with IdentityService(platform.engine, actor="test") as ids:
        ids.create_principal("falco-sensor", "service")
        ids.create_principal("viewer", "user")
        ids.create_role("sensor")
        ids.add_permission("sensor", "soar:ingest", "soar/ingest/*")
        ids.bind("sensor", "falco-sensor")
    sensor, _ = create_api_key(platform.engine, "falco-sensor", keys=platform.keys)
    viewer, _ = create_api_key(platform.engine, "viewer", keys=platform.keys)
    try:
        with TestClient(create_app(cfg, platform)) as client:
            yield Api(client, platform, sensor, viewer)
    finally:
        platform.close()


@pytest.fixture
def api(home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    yield from _start(home, db_url, monkeypatch)


def _openai_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"} and error["message"]
    return error


def test_falco_alerts_in_every_form_are_recorded_and_filed(api: Api) -> None:
    one = api.post("falco", json.dumps(FALCO))
    assert one.status_code == 200, one.text
    [filed] = one.json()["alerts"]
    assert one.json()["accepted"] == 1 and filed["opened"] is True
    assert filed["rule_id"] == "falco.terminal_shell_in_container"
    second = {**FALCO, "priority": "Critical", "hostname": "gpu-node-9",
              "output_fields": {"container.id": "77aa"}}
    lines = api.post("falco", json.dumps(second) + "\n\n" + json.dumps(FALCO) + "\n",
                     **{"content-type": "application/x-ndjson"})
    assert lines.status_code == 200 and lines.json()["accepted"] == 2
    assert lines.json()["alerts"][0]["incident_severity"] == "P0"
    assert lines.json()["alerts"][1]["deduplicated"] is True  # the same alert again folds
    array = api.post("falco", json.dumps([FALCO]))
    assert array.status_code == 200 and array.json()["accepted"] == 1
    assert api.incidents() == 2
    findings = [e for e in api.events() if e.event_class is EventClass.DETECTION_FINDING]
    assert len(findings) == 4
    assert {f.attributes["source"] for f in findings} == {"falco"}
    assert {f.attributes["ingested_by"] for f in findings} == {"falco-sensor"}
    accepted = [e for e in api.events() if e.attributes.get("route") == "soar.ingest.falco"]
    assert [e.attributes["accepted"] for e in accepted] == [1, 2, 1]


def test_trivy_report_files_one_alert_and_a_clean_report_none(api: Api) -> None:
    response = api.post("trivy", json.dumps(TRIVY))
    assert response.status_code == 200, response.text
    [filed] = response.json()["alerts"]
    assert filed["rule_id"] == "trivy.findings" and filed["incident_severity"] == "P0"
    clean = {**TRIVY, "Results": [{"Target": "x", "Vulnerabilities": [
        {"VulnerabilityID": "CVE-1", "Severity": "LOW"}]}]}
    quiet = api.post("trivy", json.dumps(clean))
    assert quiet.status_code == 200 and quiet.json() == {"source": "trivy", "accepted": 0,
                                                         "alerts": []}
    assert api.incidents() == 1


def test_missing_and_forged_credentials_get_401_and_an_authentication_event(api: Api) -> None:
    for key in ("", "tsk_" + secrets.token_urlsafe(24), api.sensor_key[:-4] + "AAAA"):
        error = _openai_error(api.post("falco", json.dumps(FALCO), key=key), 401)
        assert error["type"] == "invalid_request_error"
    assert api.post("falco", json.dumps(FALCO), key="").headers["www-authenticate"]
    failures = [e for e in api.events() if e.event_class is EventClass.AUTHENTICATION]
    assert len(failures) == 4 and all(f.outcome.value == "failure" for f in failures)
    assert api.incidents() == 0


@FUZZ
@given(token=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=80))
def test_no_made_up_token_is_accepted(api: Api, token: str) -> None:
    response = api.post("falco", json.dumps(FALCO), key=token or "x")
    assert response.status_code == 401
    assert api.incidents() == 0


def test_a_principal_without_soar_ingest_gets_403_and_an_authorization_event(api: Api) -> None:
    error = _openai_error(api.post("trivy", json.dumps(TRIVY), key=api.viewer_key), 403)
    assert "soar:ingest" in error["message"]
    [denied] = [e for e in api.events() if e.event_class is EventClass.AUTHORIZE_SESSION]
    assert denied.actor == "viewer" and denied.resource == "soar/ingest/trivy"
    assert api.incidents() == 0


_JUNK = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    st.builds(json.dumps, st.dictionaries(st.text(max_size=8), st.integers(), max_size=4)),
    # truncated alerts: a valid document cut short
    st.integers(1, len(json.dumps(FALCO)) - 1).map(lambda n: json.dumps(FALCO)[:n]),
    # one field spoiled
    st.sampled_from(["rule", "priority", "time", "output_fields", "tags"]).map(
        lambda k: json.dumps({**FALCO, k: 12})),
)


@FUZZ
@given(body=_JUNK)
def test_malformed_falco_bodies_get_400_and_nothing_is_filed(api: Api, body: Any) -> None:
    raw = body.encode() if isinstance(body, str) else body
    response = api.post("falco", raw)
    _openai_error(response, 400)
    assert api.incidents() == 0
    refused = [e for e in api.events() if e.attributes.get("route") == "soar.ingest.falco"]
    assert refused and refused[-1].outcome.value == "failure"
    assert refused[-1].attributes["status"] == 400


@FUZZ
@given(body=st.one_of(
    st.text(max_size=200),
    st.integers(1, len(json.dumps(TRIVY)) - 1).map(lambda n: json.dumps(TRIVY)[:n]),
    st.sampled_from([{**TRIVY, "SchemaVersion": 1}, {**TRIVY, "ArtifactName": ""},
                     {**TRIVY, "Results": "x"}]).map(json.dumps),
))
def test_malformed_trivy_reports_get_400(api: Api, body: str) -> None:
    _openai_error(api.post("trivy", body), 400)
    assert api.incidents() == 0


def test_one_bad_line_refuses_the_whole_body(api: Api) -> None:
    body = json.dumps(FALCO) + "\n{not json\n"
    error = _openai_error(api.post("falco", body), 400)
    assert "line 2" in error["message"]
    assert api.incidents() == 0


def test_oversized_bodies_get_413(api: Api) -> None:
    big = json.dumps({**FALCO, "output": "x" * 5000})
    error = _openai_error(api.post("falco", big), 413)
    assert error["code"] == "request_too_large"
    chunked = api.client.post(  # no content-length: counted while read
        "/v1/soar/ingest/falco", content=iter([big.encode()[:3000], big.encode()[3000:]]),
        headers={"authorization": f"Bearer {api.sensor_key}"})
    assert chunked.status_code == 413
    assert api.incidents() == 0


def test_ingest_can_be_switched_off(home: Path, db_url: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for api in _start(home, db_url, monkeypatch, ingest_enabled=False):
        _openai_error(api.post("falco", json.dumps(FALCO)), 404)
        assert "/v1/soar/ingest/falco" in api.client.get("/openapi.json").json()["paths"]
