"""The detection engine over event streams: every built-in rule fires on its attack and
stays quiet on the normal traffic next to it."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from soar_events import T0, auth, ev, finding

from tsuba.core.events import EventClass, SecurityEvent
from tsuba.soar.rules import Alert, DetectionEngine, builtin_rules, parse_rules


def run(events: list[SecurityEvent], rules_yaml: str | None = None) -> list[Alert]:
    rules = parse_rules(rules_yaml) if rules_yaml else builtin_rules()
    return DetectionEngine(rules).run(events)


def fired(alerts: list[Alert]) -> Counter[str]:
    return Counter(a.rule_id for a in alerts)


def normal_traffic() -> list[SecurityEvent]:
    """A day-like mix: logins that work, a few typos, admitted requests, one refusal."""
    events: list[SecurityEvent] = []
    for i in range(40):
        user = f"user{i % 8}"
        events.append(auth(i * 30, True, f"198.51.100.{i % 8}", cred=f"tsk_{user}", actor=user))
        events.append(ev(i * 30 + 1, activity="create", outcome="success", actor=user,
                         resource="model/gpt"))
    events.append(auth(500, False, "198.51.100.1", cred="tsk_user1"))
    events.append(ev(600, activity="rate_limit", outcome="failure", actor="user3", remaining=0))
    events.append(finding(700, "injection", "input", actor="user2"))
    return sorted(events, key=lambda e: e.time)


def test_normal_traffic_raises_nothing() -> None:
    assert run(normal_traffic()) == []


def test_failures_then_success_from_one_address() -> None:
    events = [auth(i, False, "203.0.113.7", cred=f"tsk_{i}") for i in range(5)]
    events.append(auth(30, True, "203.0.113.7", cred="tsk_real", actor="alice"))
    alerts = run(events)
    assert fired(alerts) == {"tsuba.auth.failures_then_success": 1}
    alert = alerts[0]
    assert alert.group == {"src_ip": "203.0.113.7"}
    assert alert.count == 6
    assert list(alert.event_ids) == [e.id for e in events]
    assert alert.first_seen == events[0].time and alert.time == events[-1].time
    assert alert.actor == "alice"
    assert "LLM10" in alert.owasp_llm and "AML.T0012" in alert.mitre_atlas


@pytest.mark.parametrize(
    "events",
    [
        # four failures are not five
        [auth(i, False, "203.0.113.7") for i in range(4)] + [auth(9, True, "203.0.113.7")],
        # the success came first
        [auth(0, True, "203.0.113.7")] + [auth(i + 1, False, "203.0.113.7") for i in range(5)],
        # the failures were from another address
        [auth(i, False, "203.0.113.8") for i in range(5)] + [auth(9, True, "203.0.113.7")],
        # the success came after the ten-minute window
        [auth(i, False, "203.0.113.7") for i in range(5)] + [auth(604, True, "203.0.113.7")],
    ],
    ids=["too-few", "wrong-order", "other-ip", "outside-window"],
)
def test_failures_then_success_needs_order_count_group_and_window(
    events: list[SecurityEvent],
) -> None:
    assert "tsuba.auth.failures_then_success" not in fired(run(events))


def test_sequence_window_slides_over_old_failures() -> None:
    # Three old failures fall out of the window; five recent ones still make the chain.
    events = [auth(i, False, "203.0.113.7") for i in range(3)]
    events += [auth(700 + i, False, "203.0.113.7") for i in range(5)]
    events.append(auth(720, True, "203.0.113.7"))
    alerts = [a for a in run(events) if a.rule_id == "tsuba.auth.failures_then_success"]
    assert len(alerts) == 1
    assert alerts[0].first_seen == events[3].time


def test_credential_stuffing_counts_distinct_credentials() -> None:
    same_key = [auth(i, False, "192.0.2.1", cred="tsk_same") for i in range(15)]
    assert "tsuba.auth.credential_stuffing" not in fired(run(same_key))
    many = [auth(i, False, "192.0.2.1", cred=f"tsk_{i}") for i in range(10)]
    alerts = run(many)
    assert fired(alerts)["tsuba.auth.credential_stuffing"] == 1
    assert next(a for a in alerts if a.rule_id == "tsuba.auth.credential_stuffing").count == 10


def test_brute_force_threshold_and_suppression() -> None:
    events = [auth(i, False, "192.0.2.2", cred="tsk_same") for i in range(45)]
    # 20 failures fire once; the next 20 inside the five-minute suppression do not.
    assert fired(run(events))["tsuba.auth.brute_force"] == 1
    later = events + [auth(400 + i, False, "192.0.2.2", cred="tsk_same") for i in range(20)]
    assert fired(run(later))["tsuba.auth.brute_force"] == 2


def test_key_used_from_new_network_after_history() -> None:
    history = [auth(i * 60, True, f"198.51.100.{i}", cred="tsk_k", actor="svc") for i in range(6)]
    same_net = [*history, auth(600, True, "198.51.100.200", cred="tsk_k", actor="svc")]
    assert "tsuba.auth.key_new_network" not in fired(run(same_net))
    leaked = [*history, auth(600, True, "203.0.113.50", cred="tsk_k", actor="svc")]
    alerts = [a for a in run(leaked) if a.rule_id == "tsuba.auth.key_new_network"]
    assert len(alerts) == 1
    assert alerts[0].group == {"credential_id": "tsk_k"}
    assert "203.0.113.0/24" in alerts[0].message
    # A brand-new key has no history: its first networks are not "new".
    fresh = [auth(0, True, "203.0.113.1", cred="tsk_new"), auth(1, True, "192.0.2.1",
                                                                  cred="tsk_new")]
    assert "tsuba.auth.key_new_network" not in fired(run(fresh))


def test_key_used_from_new_country() -> None:
    events = [auth(i, True, "198.51.100.1", cred="tsk_c", country="JP") for i in range(5)]
    events.append(auth(10, True, "198.51.100.1", cred="tsk_c", country="KP"))
    assert fired(run(events))["tsuba.auth.key_new_country"] == 1


def test_burst_and_quota_abuse() -> None:
    burst = [ev(i, activity="rate_limit", outcome="failure", actor="eve", limit="rpm",
                remaining=0) for i in range(20)]
    assert fired(run(burst))["tsuba.limits.burst_abuse"] == 1
    slow = [ev(i * 30, activity="rate_limit", outcome="failure", actor="eve",
               limit="tokens_per_day", remaining=0) for i in range(100)]
    counts = fired(run(slow))
    assert counts["tsuba.limits.quota_exhaustion"] == 1
    assert "tsuba.limits.burst_abuse" not in counts


def test_repeated_prompt_injection_per_actor() -> None:
    spread = [finding(i, "injection", "input", actor=f"u{i}") for i in range(3)]
    assert run(spread) == []
    same = [finding(i, "injection", "input", actor="mallory") for i in range(3)]
    alerts = run(same)
    assert fired(alerts) == {"tsuba.guards.prompt_injection_repeated": 1}
    assert alerts[0].owasp_llm == ("LLM01",)


def test_pii_or_secret_in_output_but_not_in_input() -> None:
    assert run([finding(0, "pii", "input")]) == []
    alerts = run([finding(0, "secrets", "output"), finding(5, "pii", "output")])
    assert fired(alerts) == {"tsuba.guards.sensitive_output": 1}  # folded for ten minutes
    assert "LLM02" in alerts[0].owasp_llm


def test_model_extraction_volume() -> None:
    events = [ev(i * 0.5, activity="create", outcome="success", actor="scraper",
                 resource="model/m") for i in range(1000)]
    assert fired(run(events))["tsuba.models.extraction_volume"] == 1
    spread = [ev(i * 0.5, activity="create", outcome="success", actor=f"u{i % 10}",
                 resource="model/m") for i in range(1000)]
    assert run(spread) == []


def test_serving_an_unsigned_or_quarantined_model() -> None:
    refused = ev(0, **{"class": "authorize_session", "outcome": "failure", "actor": "bob",
                       "message": "POST /v1/chat model/x: 403 model x may not be served: "
                                  "quarantined"})
    alerts = run([refused])
    assert fired(alerts) == {"tsuba.models.serve_refused": 1}
    assert "LLM03" in alerts[0].owasp_llm
    served = ev(0, **{"class": "api_activity", "outcome": "success", "message": "served"})
    assert run([served]) == []


def test_audit_verification_failure_is_critical() -> None:
    bad = ev(0, **{"class": "datastore_activity", "activity": "verify", "outcome": "failure",
                   "resource": "audit/log"})
    alerts = run([bad])
    assert fired(alerts) == {"tsuba.audit.verification_failed": 1}
    assert alerts[0].severity.name == "CRITICAL"
    good = ev(0, **{"class": "datastore_activity", "activity": "verify", "outcome": "success",
                    "resource": "audit/log"})
    assert run([good]) == []


def test_agent_impersonation() -> None:
    forged = auth(0, False, "10.0.0.5", cred=None, agent="planner",
                  reason="envelope signature does not verify", actor="planner")
    assert fired(run([forged]))["tsuba.society.agent_impersonation"] == 1
    typo = auth(0, False, "10.0.0.5", cred=None, reason="unknown key")
    assert "tsuba.society.agent_impersonation" not in fired(run([typo]))


def test_dead_lettered_event() -> None:
    notice = ev(0, **{"class": "detection_finding", "actor": "tsuba.bus", "outcome": "failure",
                      "bus_notice": "dead_letter", "subscriber": "soar"})
    assert fired(run([notice])) == {"tsuba.bus.event_lost": 1}


def test_alert_round_trips_and_becomes_a_detection_finding() -> None:
    alerts = run([finding(i, "injection", "input", actor="m") for i in range(3)])
    alert = alerts[0]
    assert Alert.from_dict(alert.to_dict()) == alert
    event = alert.to_event()
    assert event.event_class is EventClass.DETECTION_FINDING
    assert event.attributes["alert"]["rule_id"] == alert.rule_id
    assert event.time == alert.time


def test_state_is_bounded_per_rule() -> None:
    rule = """
rules:
  - id: t.many
    title: many
    kind: threshold
    severity: low
    match: {class: authentication}
    group_by: [src_ip]
    threshold: {count: 2, window: 1h}
    owasp_llm: [LLM10]
"""
    engine = DetectionEngine(parse_rules(rule), max_groups=10)
    for i in range(100):
        engine.process(auth(i, False, f"10.0.{i // 250}.{i % 250}"))
    runner = engine._runners[0]
    assert len(runner.groups.data) <= 10
    # The evicted first address starts over: one more event does not reach the count of 2.
    assert engine.process(auth(200, False, "10.0.0.0")) == []


def test_match_rules_without_group_value_still_fire() -> None:
    rule = """
rules:
  - id: t.m
    title: m
    kind: match
    severity: low
    match: {class: api_activity}
    group_by: [actor]
    mitre_atlas: [AML.T0040]
"""
    assert len(run([ev(0)], rule)) == 1


_events = st.builds(
    lambda cls, outcome, ip, actor, secs, extra: ev(
        secs, **{"class": cls, "outcome": outcome, "src_ip": ip, "actor": actor, **extra}
    ),
    st.sampled_from([c.value for c in EventClass]),
    st.sampled_from(["success", "failure", "unknown"]),
    st.one_of(st.none(), st.sampled_from(["192.0.2.1", "192.0.2.2", "::1", "not-an-ip"])),
    st.one_of(st.none(), st.sampled_from(["a", "b"])),
    st.floats(min_value=0, max_value=3600, allow_nan=False),
    st.dictionaries(
        st.sampled_from(["credential_id", "stage", "finding", "remaining", "country",
                         "activity_x", "reason", "agent"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers()),
                  st.dictionaries(st.sampled_from(["guard"]), st.text(max_size=9))),
        max_size=4,
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_events, max_size=40))
def test_any_event_stream_is_handled(events: list[SecurityEvent]) -> None:
    engine = DetectionEngine(builtin_rules())
    alerts = engine.run(events)
    ids = {e.id for e in events}
    rule_ids = {r.id for r in engine.rules}
    assert engine.events_seen == len(events)
    for alert in alerts:
        assert alert.rule_id in rule_ids
        assert alert.count >= 1
        assert set(alert.event_ids) <= ids
        assert alert.first_seen >= T0


@pytest.mark.parametrize(
    ("ip", "net"),
    [("10.1.2.3", "10.1.2.0/24"), ("010.1.2.3", "10.1.2.0/24"), ("2001:db8::1", "2001:db8::/48"),
     ("256.1.1.1", None), ("1.2.3", None), ("a.b.c.d", None), ("\uff11.2.3.4", None),
     ("not an ip", None)],
)
def test_src_net_field(ip: str, net: str | None) -> None:
    from tsuba.soar.rules.fields import getter

    assert getter("src_net")(ev(0, src_ip=ip)) == net
