"""Decision events and the parsing of binding expiries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tsuba.core.errors import InputError
from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity
from tsuba.core.identity import Decision, Effect, Rule, decision_event
from tsuba.core.identity.expiry import parse_duration, parse_instant

RULE = Rule(Effect.ALLOW, "model:invoke", "model/*", "reader", None, None, "admin")


def test_allowed_decision_event() -> None:
    d = Decision(True, "allowed by role 'reader': (model:invoke, model/*)", RULE)
    ev = decision_event(d, "alice", "model:invoke", "model/demo", correlation_id="req-1")
    assert ev.event_class is EventClass.AUTHORIZE_SESSION
    assert (ev.outcome, ev.severity) == (Outcome.SUCCESS, Severity.INFO)
    assert (ev.actor, ev.resource, ev.correlation_id) == ("alice", "model/demo", "req-1")
    assert ev.attributes["matched_rule"]["resource"] == "model/*"
    assert ev.attributes["action"] == "model:invoke"
    assert ev.to_ocsf()["status_id"] == 1
    # The event survives the canonical round trip the audit log relies on.
    assert SecurityEvent.from_json(ev.canonical_bytes()).canonical_bytes() == ev.canonical_bytes()


def test_denied_decision_event_as_api_activity() -> None:
    d = Decision(False, "no role of 'bob' grants model:invoke on model/x")
    ev = decision_event(d, "bob", "model:invoke", "model/x", event_class=EventClass.API_ACTIVITY)
    assert ev.event_class is EventClass.API_ACTIVITY
    assert ev.outcome is Outcome.FAILURE and ev.severity is Severity.LOW
    assert ev.attributes["matched_rule"] is None
    assert "denied" in ev.message and d.reason in ev.message
    assert ev.to_ocsf()["class_uid"] == 6003


def test_decision_event_refuses_unrelated_classes() -> None:
    with pytest.raises(ValueError, match="authorize_session or api_activity"):
        decision_event(Decision(True, "x"), "a", "b:c", "d", event_class=EventClass.FILE_ACTIVITY)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-31T00:00Z", datetime(2026, 12, 31, tzinfo=UTC)),
        ("2026-12-31T02:00:00+02:00", datetime(2026, 12, 31, tzinfo=UTC)),
        (" 2026-12-31T00:00:00.5Z ", datetime(2026, 12, 31, 0, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_instants(text: str, expected: datetime) -> None:
    assert parse_instant(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-12-31T00:00", "no timezone"),
        ("2026-13-01T00:00Z", "invalid instant"),
        ("tomorrow", "invalid instant"),
        ("", "invalid instant"),
    ],
)
def test_bad_instants(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_instant(text)


@given(
    st.integers(0, 50),
    st.integers(0, 300),
    st.integers(0, 100),
    st.integers(0, 100),
    st.integers(0, 100),
)
def test_durations_round_trip(w: int, d: int, h: int, m: int, s: int) -> None:
    parts = [(w, "w"), (d, "d"), (h, "h"), (m, "m"), (s, "s")]
    text = "".join(f"{n}{u}" for n, u in parts if n)
    expected = timedelta(weeks=w, days=d, hours=h, minutes=m, seconds=s)
    if not text:
        with pytest.raises(InputError):
            parse_duration(text)
    elif expected > timedelta(days=3660):
        with pytest.raises(InputError, match="too long"):
            parse_duration(text)
    else:
        assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "bad", ["", "7", "d", "7x", "-1d", "1d1w", "0s", "0d0h", "1.5d", "7 d", "9" * 30 + "w"]
)
def test_bad_durations(bad: str) -> None:
    with pytest.raises(InputError, match="duration"):
        parse_duration(bad)
