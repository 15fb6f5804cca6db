"""Every event class tsuba emits maps to OCSF 1.8.0 that the schema accepts, built by the
real producers (gateway authentication and request summaries, guard findings, rule alerts,
the incident service); and the validator names what is wrong in events that are not."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from soar_events import PM, T0, Clock, auth
from sqlalchemy import Engine

from tsuba.core.errors import InputError, RateLimitedError
from tsuba.core.events import (
    OCSF_VERSION,
    EventClass,
    Outcome,
    SecurityEvent,
    Severity,
    epoch_ms,
)
from tsuba.gateway.auth.events import auth_event
from tsuba.gateway.auth.failures import AuthFailure
from tsuba.gateway.context import AuthRequest, Identity, LimitRequest
from tsuba.gateway.guards import Finding, Verdict
from tsuba.gateway.pipeline import Exchange
from tsuba.gateway.ratelimit.events import limit_event
from tsuba.soar.incidents import IncidentService
from tsuba.soar.rules import DetectionEngine, builtin_rules
from tsuba.soar.siem.ocsf_schema import InvalidOcsfEvent, check, validate

REQUEST = AuthRequest(method="POST", path="/v1/chat/completions?api-key=secret",
                      headers={"user-agent": "openai-python/1.40"}, body=b"",
                      client_ip="203.0.113.9")


def valid(event: SecurityEvent) -> dict[str, Any]:
    data = event.to_ocsf()
    assert validate(data) == [], (validate(data), data)
    assert data["type_uid"] == data["class_uid"] * 100 + data["activity_id"]
    assert data["metadata"]["version"] == OCSF_VERSION
    assert data["metadata"]["uid"] == event.id
    assert data["time"] == epoch_ms(event.time)
    return data


# -- the producers -------------------------------------------------------------------------


def test_gateway_authentication_success_and_failure() -> None:
    who = Identity(principal="alice", method="api_key", credential_id="tsk_ab12",
                   scopes=frozenset({"chat"}))
    ok = valid(auth_event(who, REQUEST, correlation_id="c-1"))
    assert (ok["class_uid"], ok["type_uid"], ok["activity_name"]) == (3002, 300201, "Logon")
    assert (ok["status_id"], ok["status"]) == (1, "Success")
    assert ok["user"] == {"name": "alice", "credential_uid": "tsk_ab12"}
    assert ok["src_endpoint"] == {"ip": "203.0.113.9"}
    assert ok["http_request"]["url"]["path"] == "/v1/chat/completions"
    assert ok["http_request"]["http_method"] == "POST"
    assert ok["metadata"]["correlation_uid"] == "c-1"
    assert "secret" not in str(ok)

    bad = AuthFailure("invalid API key", reason="unknown key prefix", method="api_key",
                      credential_id="tsk_zz99", severity=Severity.MEDIUM)
    failed = valid(auth_event(bad, REQUEST))
    assert (failed["status_id"], failed["status"]) == (2, "Failure")
    assert failed["status_detail"] == "unknown key prefix"
    assert failed["user"] == {"name": "unknown", "credential_uid": "tsk_zz99"}
    assert (failed["severity_id"], failed["severity"]) == (3, "Medium")


def test_gateway_inference_is_api_activity_with_the_ai_profile() -> None:
    ex = Exchange(route="chat", method="POST", path="/v1/chat/completions",
                  client_ip="2001:db8::7",
                  identity=Identity(principal="svc-bot", method="jwt", credential_id="iss|s|k"),
                  model="gpt-4o-mini", upstream="openai", upstream_status=200,
                  upstream_seconds=0.4, prompt_tokens=12, completion_tokens=30)
    ex.findings.append(("output", Finding(guard="pii", verdict=Verdict.REDACT,
                                          reason="email address")))
    summary, guard = ex.events()
    api = valid(summary)
    assert (api["class_uid"], api["type_uid"]) == (6003, 600301)
    assert api["metadata"]["profiles"] == ["ai_operation"]
    assert api["ai_model"] == {"name": "gpt-4o-mini", "ai_provider": "openai"}
    assert api["message_context"] == {"service": {"name": "openai"}, "prompt_tokens": 12,
                                      "completion_tokens": 30, "total_tokens": 42}
    assert api["api"]["operation"] == "chat" and api["api"]["response"] == {"code": 200}
    assert api["api"]["request"] == {"uid": ex.correlation_id}
    assert api["actor"] == {"user": {"name": "svc-bot"}}
    assert api["src_endpoint"] == {"ip": "2001:db8::7"}
    finding = valid(guard)
    assert finding["class_uid"] == 2004
    assert finding["finding_info"]["analytic"] == {"name": "pii", "type_id": 99,
                                                   "type": "Guard"}
    assert finding["evidences"][0]["actor"]["user"]["name"] == "svc-bot"

    # Refused before any upstream: no model or provider to name, so no AI profile.
    refused = Exchange(route="chat", method="POST", path="/v1/chat/completions",
                       client_ip="198.51.100.4", status=401,
                       error=AuthFailure("missing credentials", reason="no header"))
    [event] = refused.events()
    data = valid(event)
    assert data["class_uid"] == 3002 and "profiles" not in data["metadata"]


def test_rate_limit_decisions_are_api_activity() -> None:
    refusal = RateLimitedError("token budget spent", retry_after=12.5)
    request = LimitRequest(principal="alice", model="gpt-4o", estimated_tokens=900)
    data = valid(limit_event(request, refusal, correlation_id="c-9", src_ip="192.0.2.5"))
    assert data["activity_id"] == 99 and data["activity_name"] == "rate_limit"
    assert data["type_name"] == "API Activity: Other"
    assert data["api"]["operation"] == "rate_limit"
    assert "ai_model" not in data  # the model is known, its provider is not


def test_rule_alert_is_a_detection_finding() -> None:
    events = [auth(i, False, "203.0.113.7", cred=f"tsk_{i}") for i in range(5)]
    events.append(auth(30, True, "203.0.113.7", cred="tsk_real", actor="alice"))
    [alert] = DetectionEngine(builtin_rules()).run(events)
    data = valid(alert.to_event())
    info = data["finding_info"]
    assert (data["class_uid"], data["type_uid"], data["status"]) == (2004, 200401, "New")
    assert info["uid"] == alert.id and info["title"] == alert.title
    assert info["analytic"]["uid"] == alert.rule_id and info["analytic"]["type"] == "Rule"
    assert info["first_seen_time"] == epoch_ms(alert.first_seen)
    assert {r["uid"] for r in info["related_events"]} == set(alert.event_ids)
    assert info["types"] == list(alert.owasp_llm)
    uids = [a.get("sub_technique", a.get("technique"))["uid"] for a in info["attacks"]]
    assert uids == [*alert.mitre_attack, *alert.mitre_atlas]
    assert data["evidences"][0]["src_endpoint"] == {"ip": "203.0.113.7"}
    assert data["is_alert"] is True and data["count"] == alert.count


def test_incident_service_emits_incident_findings(engine: Engine) -> None:
    emitted: list[SecurityEvent] = []
    svc = IncidentService(engine, emit=emitted.append, actor="analyst", clock=Clock())
    events = [auth(i, False, "203.0.113.7", cred=f"tsk_{i}") for i in range(5)]
    events.append(auth(30, True, "203.0.113.7", cred="tsk_real", actor="alice"))
    [alert] = DetectionEngine(builtin_rules()).run(events)
    inc = svc.ingest(alert).incident
    svc.acknowledge(inc.id, "looking")
    svc.contain(inc.id)
    svc.resolve(inc.id)
    svc.close(inc.id, PM)
    docs = [valid(e) for e in emitted]
    assert [d["status"] for d in docs] == ["New", "In Progress", "In Progress", "Resolved",
                                           "Closed"]
    assert [d["activity_name"] for d in docs] == ["Create", "Update", "Update", "Update",
                                                  "Close"]
    first = docs[0]
    assert first["class_uid"] == 2005 and first["priority_id"] == 3  # P1: High
    assert first["finding_info_list"][0]["uid"] == f"incident/{inc.id}"
    assert first["finding_info_list"][1]["uid"] == alert.id
    assert first["assignee_group"] == {"name": "tsuba-soar"}
    assert first["unmapped"]["actor"] == "analyst"  # no actor in Incident Finding


def test_incident_closed_as_false_positive_carries_the_verdict(engine: Engine) -> None:
    emitted: list[SecurityEvent] = []
    svc = IncidentService(engine, emit=emitted.append, actor="analyst", clock=Clock())
    [alert] = DetectionEngine(builtin_rules()).run(
        [auth(i, False, "203.0.113.8", cred=f"tsk_{i}") for i in range(5)]
        + [auth(30, True, "203.0.113.8", cred="tsk_real", actor="bob")])
    result = svc.ingest(alert)
    svc.mark_false_positive(result.alert_id, "load test from our own office")
    closing = valid(emitted[-1])
    assert closing["status"] == "Closed" and closing["verdict"] == "False Positive"


# -- any event, whatever its fields --------------------------------------------------------

json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_value = st.recursive(json_leaf, lambda kids: st.lists(kids, max_size=3)
                          | st.dictionaries(st.text(max_size=8), kids, max_size=3),
                          max_leaves=8)
# Attribute names the mapping reads, with values of every shape (right and wrong).
known = st.fixed_dictionaries({}, optional={
    "alert": st.fixed_dictionaries({}, optional={
        "id": json_value, "rule_id": json_value, "title": json_value, "count": json_value,
        "first_seen": st.sampled_from(["2026-01-01T00:00:00Z", "yesterday", "2026-01-01"]),
        "event_ids": json_value | st.lists(st.text(max_size=6), max_size=3),
        "mitre_attack": st.lists(st.sampled_from(["T1110", "T1110.004", "TA0006", "", "."]),
                                 max_size=3),
        "mitre_atlas": st.lists(st.sampled_from(["AML.T0012", "AML.T0051.000", "AML.TA0002",
                                                 "AML"]), max_size=3),
        "owasp_llm": json_value}),
    "incident": st.fixed_dictionaries({}, optional={
        "id": json_value, "title": json_value, "state": st.sampled_from(
            ["open", "acknowledged", "contained", "resolved", "closed", "weird", 3]),
        "severity": st.sampled_from(["P0", "P1", "P2", "P3", "P9", None]),
        "resolution": st.sampled_from(["false_positive", "fixed", None]),
        "first_event_at": st.sampled_from(["2026-01-01T00:00:00+00:00", "bad", 5]),
        "alert_count": json_value}),
    "upstream": st.fixed_dictionaries({}, optional={"name": json_value}),
    "tokens": st.fixed_dictionaries({}, optional={"prompt": json_value,
                                                 "completion": json_value}),
    "route": json_value, "status": json_value, "http_method": json_value,
    "user_agent": json_value, "method": json_value, "credential_id": json_value,
    "reason": json_value, "action": json_value, "model": json_value,
    "error": st.fixed_dictionaries({}, optional={"code": json_value,
                                                "message": json_value}),
    "finding": st.fixed_dictionaries({}, optional={"guard": json_value}),
})
ips = st.ip_addresses().map(str) | st.text(max_size=12) | st.just("fe80::1%eth0")
activities = st.sampled_from(["create", "update", "close", "delete", "logon", "logoff",
                              "read", "query", "rate_limit", "authorize", "other", "",
                              "Password Change", "assign-privileges"]) | st.text(max_size=10)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cls=st.sampled_from(list(EventClass)), activity=activities,
    severity=st.sampled_from(list(Severity)), outcome=st.sampled_from(list(Outcome)),
    actor=st.none() | st.text(max_size=20), resource=st.none() | st.text(max_size=20),
    src_ip=st.none() | ips, correlation_id=st.none() | st.text(min_size=1, max_size=10),
    message=st.text(max_size=30),
    when=st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30),
                      timezones=st.just(UTC)),
    attributes=known, extra=st.dictionaries(st.text(max_size=8), json_value, max_size=3),
)
def test_every_event_maps_to_valid_ocsf(
    cls: EventClass, activity: str, severity: Severity, outcome: Outcome,
    actor: str | None, resource: str | None, src_ip: str | None,
    correlation_id: str | None, message: str, when: datetime,
    attributes: dict[str, Any], extra: dict[str, Any],
) -> None:
    event = SecurityEvent(event_class=cls, activity=activity, severity=severity,
                          outcome=outcome, actor=actor, resource=resource, src_ip=src_ip,
                          correlation_id=correlation_id, message=message, time=when,
                          attributes={**extra, **attributes})
    data = valid(event)
    found = set(_leaves(data))
    for name in ("actor", "src_ip", "resource"):
        value = getattr(event, name)
        if value:  # never dropped: mapped somewhere, or kept as unmapped
            assert value in found or _ip(value) in found, name


def _leaves(data: Any) -> Iterator[Any]:
    if isinstance(data, dict):
        for value in data.values():
            yield from _leaves(value)
    elif isinstance(data, list):
        for value in data:
            yield from _leaves(value)
    else:
        yield data


def _ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


# -- what the validator catches ------------------------------------------------------------


def _auth() -> dict[str, Any]:
    return auth(0, False, "203.0.113.7").to_ocsf()


def _api() -> dict[str, Any]:
    return SecurityEvent(event_class=EventClass.API_ACTIVITY, activity="create",
                         actor="alice", src_ip="192.0.2.1", resource="model/m",
                         attributes={"upstream": {"name": "local"}}).to_ocsf()


def _problems(data: dict[str, Any]) -> str:
    found = validate(data)
    assert found, data
    return "\n".join(found)


@pytest.mark.parametrize(("break_it", "named"), [
    (lambda d: d.pop("user"), "'user' is a required property"),
    (lambda d: d.pop("service"), "needs at least one of service, dst_endpoint"),
    (lambda d: d.update(type_uid=300202), "class_uid * 100 + activity_id is 300201"),
    (lambda d: d.update(severity="Info"), "'Info' is not the caption of severity_id 1"),
    (lambda d: d.update(status="failed"), "'failed' is not the caption of status_id 2"),
    (lambda d: d.update(activity_id=99, type_uid=300299, activity_name=""),
     "activity_name: activity_id is 99 (Other), so activity_name must name it"),
    (lambda d: d.update(activity_id=42, type_uid=300242), "activity_id: 42 is not one of"),
    (lambda d: d.update(time=d["time"] // 1000), "not epoch milliseconds"),
    (lambda d: d.update(time="2026-03-01T12:00:00Z"), 'time: "2026-03-01T12:00:00Z" is not'),
    (lambda d: d.update(category_uid=6), "category_uid: 3 was expected"),
    (lambda d: d["metadata"].update(version="1.3.0"), "checked against OCSF 1.8.0"),
    (lambda d: d["metadata"].pop("product"), "metadata: 'product' is a required property"),
    (lambda d: d["metadata"].update(profiles=["telepathy"]), "'telepathy' is not an OCSF"),
    (lambda d: d["src_endpoint"].update(ip="999.1.1.1"), "src_endpoint.ip: '999.1.1.1'"),
    (lambda d: d.update(user={"credential_uid": "x"}), "user: needs at least one of"),
    (lambda d: d.update(colour="red"), "'colour' is not an attribute OCSF defines here"),
    (lambda d: d.update(is_alert=True),
     "'is_alert' belongs to the OCSF profile 'security_control'"),
])
def test_broken_authentication_events_are_named(break_it: Any, named: str) -> None:
    data = _auth()
    assert validate(data) == []
    break_it(data)
    assert named in _problems(data)


def test_ai_profile_attributes_need_the_profile() -> None:
    data = _api()
    assert validate(data) == [] and data["metadata"]["profiles"] == ["ai_operation"]
    del data["metadata"]["profiles"]
    assert "'ai_model' belongs to the OCSF profile 'ai_operation'" in _problems(data)
    data = _api()
    del data["ai_model"]["ai_provider"]
    assert "ai_model: 'ai_provider' is a required property" in _problems(data)
    data = _api()
    data["api"].pop("operation")
    assert "api: 'operation' is a required property" in _problems(data)


def test_nested_captions_and_finding_requirements() -> None:
    events = [auth(i, False, "203.0.113.7", cred=f"tsk_{i}") for i in range(5)]
    events.append(auth(30, True, "203.0.113.7", cred="tsk_real", actor="alice"))
    [alert] = DetectionEngine(builtin_rules()).run(events)
    data = alert.to_event().to_ocsf()
    broken = copy.deepcopy(data)
    broken["finding_info"]["analytic"]["type"] = "Regex"
    assert ("finding_info.analytic.type: 'Regex' is not the caption of type_id 1"
            in _problems(broken))
    broken = copy.deepcopy(data)
    del broken["finding_info"]["uid"]
    assert "finding_info: 'uid' is a required property" in _problems(broken)
    broken = copy.deepcopy(data)
    broken["finding_info"]["attacks"][0] = {"version": "14"}
    assert "finding_info.attacks[0]: needs at least one of" in _problems(broken)
    incident = SecurityEvent(event_class=EventClass.INCIDENT_FINDING, activity="create",
                             resource="incident/1").to_ocsf()
    assert validate(incident) == []
    del incident["assignee_group"]
    assert "needs at least one of assignee, assignee_group" in _problems(incident)


@pytest.mark.parametrize("data", [
    [], "event", None, {}, {"class_uid": "3002"}, {"class_uid": True}, {"class_uid": 9999},
    {"class_uid": 3002, "metadata": "x"}, {"class_uid": 3002, "metadata": {"profiles": "x"}},
    {"class_uid": 3002, 7: "a key that is not a string"},
])
def test_malformed_input_is_reported_not_raised(data: Any) -> None:
    problems = validate(data)
    assert problems and all(isinstance(p, str) for p in problems)


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(st.sampled_from(["class_uid", "activity_id", "type_uid", "time",
                                             "metadata", "user", "severity_id", "x"]),
                            json_value | st.sampled_from([3002, 6003, 2004, 2005]),
                            max_size=8))
def test_arbitrary_json_never_crashes_the_validator(data: dict[str, Any]) -> None:
    assert all(isinstance(p, str) for p in validate(data))


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(["class_uid", "activity_id", "type_uid", "time", "metadata",
                            "severity_id", "user", "category_uid"]),
       value=json_value)
def test_a_corrupted_required_attribute_is_always_caught(key: str, value: Any) -> None:
    data = _auth()
    original = data[key]
    if value == original:
        return
    data[key] = value
    assert validate(data), (key, value)


def test_check_raises_with_every_problem() -> None:
    data = _auth()
    data.pop("user")
    data["severity"] = "Info"
    with pytest.raises(InvalidOcsfEvent) as caught:
        check(data)
    assert isinstance(caught.value, InputError)
    assert len(caught.value.problems) == 2
    assert "'user' is a required property" in str(caught.value)
    assert data["metadata"]["uid"] in str(caught.value)
    check(_auth())


def test_times_keep_their_milliseconds() -> None:
    at = T0 + timedelta(microseconds=999_999)
    data = SecurityEvent(event_class=EventClass.API_ACTIVITY, time=at).to_ocsf()
    assert data["time"] == int(T0.timestamp()) * 1000 + 999
