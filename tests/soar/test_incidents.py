"""Incidents on SQLite and PostgreSQL: folding, correlation, life cycle, SLA, post-mortems,
false positives, and an Incident Finding for every change."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from soar_events import PM, T0, Clock, alert, auth
from sqlalchemy import Engine, select

from tsuba.core.errors import ConflictError, InputError, NotFoundError
from tsuba.core.events import EventClass, SecurityEvent, Severity
from tsuba.soar.incidents import (
    IncidentPolicy,
    IncidentService,
    PostMortem,
    Priority,
    State,
)
from tsuba.soar.models import AlertRow
from tsuba.soar.rules import DetectionEngine, builtin_rules


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list[SecurityEvent]:
    return []


@pytest.fixture
def svc(engine: Engine, clock: Clock, events: list[SecurityEvent]) -> IncidentService:
    return IncidentService(engine, emit=events.append, actor="analyst", clock=clock)


def test_alert_opens_an_incident_with_priority_sla_and_event(
    svc: IncidentService, events: list[SecurityEvent], clock: Clock
) -> None:
    result = svc.ingest(alert(severity=Severity.HIGH))
    inc = result.incident
    assert result.opened and not result.deduplicated
    assert inc.severity is Priority.P1 and inc.state is State.OPEN
    assert inc.respond_due_at == clock.now + timedelta(hours=4)
    assert inc.first_event_at == T0 - timedelta(seconds=30) and inc.detected_at == T0
    [event] = events
    assert event.event_class is EventClass.INCIDENT_FINDING
    assert event.activity == "create" and event.severity is Severity.HIGH
    assert event.resource == f"incident/{inc.id}"
    assert event.attributes["alert"]["rule_id"] == "r.one"
    full = svc.get(inc.id)
    assert full.entities == ("src_ip:192.0.2.1",)
    assert [a.id for a in full.alerts] == [result.alert_id]
    assert full.history[0]["action"] == "open"


@pytest.mark.parametrize(
    ("severity", "prio", "hours"),
    [(Severity.CRITICAL, "P0", 1), (Severity.HIGH, "P1", 4), (Severity.MEDIUM, "P2", 24),
     (Severity.LOW, "P3", 72), (Severity.INFO, "P3", 72)],
)
def test_priorities_and_default_response_times(
    svc: IncidentService, clock: Clock, severity: Severity, prio: str, hours: int
) -> None:
    inc = svc.ingest(alert(severity=severity)).incident
    assert inc.severity.value == prio
    assert inc.respond_due_at - clock.now == timedelta(hours=hours)


def test_repeats_fold_into_one_alert(svc: IncidentService, events: list[SecurityEvent],
                                     engine: Engine) -> None:
    first = svc.ingest(alert(minutes=0))
    again = svc.ingest(alert(minutes=10))
    assert again.deduplicated and again.incident.id == first.incident.id
    assert again.alert_id == first.alert_id
    inc = svc.get(first.incident.id)
    assert inc.alert_count == 1
    [row] = inc.alerts
    assert row.hits == 6 and row.occurrences == 2
    assert row.last_seen == T0 + timedelta(minutes=10)
    assert len(events) == 1  # a plain repeat changes nothing worth an event
    # Past the dedup window the same detection is a new alert (of the same incident).
    later = svc.ingest(alert(minutes=75))
    assert not later.deduplicated and later.alert_id != first.alert_id
    with engine.connect() as conn:
        assert len(conn.execute(select(AlertRow.id)).all()) == 2


def test_related_alerts_correlate_by_entity(svc: IncidentService) -> None:
    a = svc.ingest(alert("r.stuff", Severity.MEDIUM, 0, {"src_ip": "203.0.113.9"}))
    b = svc.ingest(alert("r.newnet", Severity.HIGH, 5, {"credential_id": "tsk_1"},
                         src_ip="203.0.113.9"))
    assert not b.opened and b.incident.id == a.incident.id
    inc = svc.get(a.incident.id)
    assert inc.alert_count == 2
    assert inc.severity is Priority.P1  # took the worse alert's priority
    assert set(inc.entities) == {"src_ip:203.0.113.9", "credential_id:tsk_1"}
    # ... and the shorter response time, counted from when the incident opened.
    assert inc.respond_due_at == inc.opened_at + timedelta(hours=4)
    # An unrelated alert opens its own incident.
    c = svc.ingest(alert("r.other", Severity.LOW, 6, {"actor": "carol"}))
    assert c.opened and c.incident.id != a.incident.id
    # So does a related one after the correlation window.
    d = svc.ingest(alert("r.stuff2", Severity.LOW, 120, {"src_ip": "203.0.113.9"}))
    assert d.opened


def test_life_cycle_and_refused_steps(svc: IncidentService, clock: Clock,
                                      events: list[SecurityEvent]) -> None:
    inc = svc.ingest(alert(severity=Severity.MEDIUM)).incident
    with pytest.raises(ConflictError, match="cannot close"):
        svc.close(inc.id)
    clock.now += timedelta(minutes=10)
    acked = svc.acknowledge(inc.id, "looking")
    assert acked.state is State.ACKNOWLEDGED and acked.acknowledged_at == clock.now
    with pytest.raises(ConflictError, match="cannot acknowledge"):
        svc.acknowledge(inc.id)
    contained = svc.contain(inc.id, "key revoked")
    assert contained.contained_at == clock.now
    with pytest.raises(ConflictError, match=r"allowed: resolve"):
        svc.reopen(inc.id)
    clock.now += timedelta(hours=1)
    resolved = svc.resolve(inc.id)
    assert resolved.resolved_at == clock.now
    reopened = svc.reopen(inc.id, "it came back")
    assert reopened.state is State.OPEN and reopened.resolved_at is None
    svc.resolve(inc.id)
    closed = svc.close(inc.id)  # P2: no post-mortem needed
    assert closed.state is State.CLOSED and closed.resolution == "fixed"
    with pytest.raises(ConflictError, match="allowed: nothing"):
        svc.reopen(inc.id)
    actions = [e.attributes["action"] for e in events]
    assert actions == ["open", "acknowledge", "contain", "resolve", "reopen", "resolve",
                       "close"]
    assert all(e.actor == "analyst" for e in events)
    assert events[-1].activity == "close"
    history = svc.get(inc.id).history
    assert [(h["from"], h["to"]) for h in history[1:3]] == [
        ("open", "acknowledged"), ("acknowledged", "contained")]
    assert history[1]["note"] == "looking"


def test_p0_and_p1_close_only_with_a_postmortem(svc: IncidentService) -> None:
    inc = svc.ingest(alert(severity=Severity.CRITICAL)).incident
    svc.resolve(inc.id)
    with pytest.raises(InputError, match="needs a post-mortem"):
        svc.close(inc.id)
    assert svc.get(inc.id).state is State.RESOLVED
    closed = svc.close(inc.id, PM)
    assert closed.postmortem is not None
    assert closed.postmortem["root_cause"] == "key in a public repo"
    assert closed.postmortem["by"] == "analyst"


@pytest.mark.parametrize(
    "data",
    [{}, {"summary": "short", "root_cause": "x", "actions": []},
     {"summary": "long enough summary", "root_cause": "why", "actions": ["  "]},
     {"summary": "long enough summary", "root_cause": "why", "actions": ["a"], "extra": 1},
     "not a mapping"],
)
def test_bad_postmortems_are_refused(data: object) -> None:
    with pytest.raises(InputError, match="post-mortem"):
        PostMortem.parse(data)


def test_resolving_directly_counts_as_responding(svc: IncidentService, clock: Clock) -> None:
    inc = svc.ingest(alert(severity=Severity.CRITICAL)).incident
    clock.now += timedelta(hours=2)  # past the P0 hour
    resolved = svc.resolve(inc.id)
    assert resolved.acknowledged_at == clock.now
    assert resolved.sla_breached


def test_sla_breach_escalates_once(svc: IncidentService, clock: Clock,
                                   events: list[SecurityEvent]) -> None:
    p0 = svc.ingest(alert("r.a", Severity.CRITICAL, group={"actor": "a"})).incident
    p1 = svc.ingest(alert("r.b", Severity.HIGH, group={"actor": "b"})).incident
    acked = svc.ingest(alert("r.c", Severity.CRITICAL, group={"actor": "c"})).incident
    svc.acknowledge(acked.id)
    events.clear()
    clock.now += timedelta(minutes=59)
    assert svc.check_sla() == []
    clock.now += timedelta(minutes=2)
    [escalated] = svc.check_sla()
    assert escalated.id == p0.id and escalated.sla_breached
    assert escalated.escalated_at == clock.now
    [event] = events
    assert event.attributes["action"] == "escalate"
    assert event.severity is Severity.CRITICAL
    assert "breached its response time" in event.message
    assert svc.check_sla() == []  # once
    clock.now += timedelta(hours=3)
    assert [i.id for i in svc.check_sla()] == [p1.id]
    assert not svc.get(acked.id).sla_breached


def test_configurable_sla(engine: Engine, clock: Clock) -> None:
    policy = IncidentPolicy(respond_within={Priority.P0: timedelta(minutes=5),
                                            Priority.P1: timedelta(minutes=30),
                                            Priority.P2: timedelta(hours=8),
                                            Priority.P3: timedelta(days=7)})
    svc = IncidentService(engine, policy=policy, clock=clock)
    inc = svc.ingest(alert(severity=Severity.CRITICAL)).incident
    assert inc.respond_due_at == clock.now + timedelta(minutes=5)
    with pytest.raises(InputError, match="no response time for P1, P2, P3"):
        IncidentPolicy(respond_within={Priority.P0: timedelta(hours=1)})


def test_false_positives_close_the_incident_when_all_alerts_are_false(
    svc: IncidentService, events: list[SecurityEvent]
) -> None:
    a = svc.ingest(alert("r.a", Severity.HIGH, 0, {"actor": "dev"}))
    b = svc.ingest(alert("r.b", Severity.HIGH, 1, {"actor": "dev"}))
    assert a.incident.id == b.incident.id
    with pytest.raises(InputError, match="say why"):
        svc.mark_false_positive(a.alert_id, " ")
    record = svc.mark_false_positive(a.alert_id, "load test")
    assert record.false_positive and record.fp_reason == "load test"
    assert svc.get(a.incident.id).state is State.OPEN
    with pytest.raises(ConflictError, match="already marked"):
        svc.mark_false_positive(a.alert_id, "again")
    svc.mark_false_positive(b.alert_id, "load test")
    inc = svc.get(a.incident.id)
    assert inc.state is State.CLOSED and inc.resolution == "false_positive"
    assert [e.attributes["action"] for e in events][-3:] == [
        "false_positive", "false_positive", "close"]
    with pytest.raises(NotFoundError):
        svc.mark_false_positive("no-such-alert", "x")
    # A false alert does not swallow the next real one.
    c = svc.ingest(alert("r.a", Severity.HIGH, 2, {"actor": "dev"}))
    assert c.opened and not c.deduplicated


def test_missing_incident(svc: IncidentService) -> None:
    with pytest.raises(NotFoundError, match="no incident 999"):
        svc.get(999)
    with pytest.raises(NotFoundError):
        svc.acknowledge(999)


def test_list_filters(svc: IncidentService) -> None:
    p0 = svc.ingest(alert("r.a", Severity.CRITICAL, group={"actor": "a"})).incident
    p2 = svc.ingest(alert("r.b", Severity.MEDIUM, group={"actor": "b"})).incident
    svc.resolve(p2.id)
    assert [i.id for i in svc.list()] == [p0.id, p2.id]
    assert [i.id for i in svc.list(states=(State.OPEN,))] == [p0.id]
    assert [i.id for i in svc.list(severity=Priority.P2)] == [p2.id]


def test_same_alert_filed_twice_is_a_conflict(svc: IncidentService) -> None:
    one = alert()
    svc.resolve(svc.ingest(one).incident.id)  # not active: no folding
    with pytest.raises(ConflictError, match="filed already"):
        svc.ingest(one)


def test_concurrent_transitions_allow_one(engine: Engine) -> None:
    svc = IncidentService(engine)
    inc = svc.ingest(alert()).incident
    outcomes: list[str] = []

    def ack() -> None:
        try:
            IncidentService(engine).acknowledge(inc.id)
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=ack) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "ok"]


def test_detections_flow_into_one_incident(svc: IncidentService) -> None:
    """Credential stuffing and then the stuffed key from a new network: one P1 incident."""
    stream = [auth(i, False, "203.0.113.9", cred=f"tsk_{i}") for i in range(10)]
    stream.append(auth(20, True, "203.0.113.9", cred="tsk_victim", actor="victim"))
    alerts = DetectionEngine(builtin_rules()).run(stream)
    assert {a.rule_id for a in alerts} == {"tsuba.auth.credential_stuffing",
                                           "tsuba.auth.failures_then_success"}
    filed = [svc.ingest(a) for a in alerts]
    assert len({f.incident.id for f in filed}) == 1
    inc = svc.get(filed[0].incident.id)
    assert inc.severity is Priority.P1 and inc.alert_count == 2
