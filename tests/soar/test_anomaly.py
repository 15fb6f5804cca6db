"""Anomaly detection on generated traffic: few false positives on normal principals, and
the injected abuse (bursts, token spikes, error storms, prompt sweeps, odd hours) found."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from tsuba.core.errors import InputError
from tsuba.core.events import SecurityEvent
from tsuba.soar.anomaly import (
    RULE_HOUR,
    RULE_ONLINE,
    AnomalySettings,
    BaselineDetector,
    batch_outliers,
    principal_features,
)

START = datetime(2026, 3, 2, tzinfo=UTC)
PRINCIPALS = 30
DAYS = 3
ABUSERS = {"p3": "burst", "p7": "tokens", "p11": "errors", "p19": "prompts", "p23": "hour"}


def _req(at: datetime, actor: str, rng: random.Random, **extra: object) -> SecurityEvent:
    return SecurityEvent.from_dict({
        "class": "api_activity", "activity": "create", "time": at.isoformat(), "actor": actor,
        "outcome": "failure" if rng.random() < 0.01 else "success",
        "resource": f"model/m{rng.randrange(2)}", "tokens": {"total": rng.gauss(300, 40)},
        "prompt_hash": f"h{rng.randrange(30)}", **extra,
    })


def _abuse(kind: str, actor: str, at: datetime, rng: random.Random) -> list[SecurityEvent]:
    if kind == "burst":
        return [_req(at + timedelta(seconds=i * 0.2), actor, rng) for i in range(200)]
    if kind == "tokens":
        return [_req(at + timedelta(seconds=i), actor, rng, tokens={"total": 30_000})
                for i in range(4)]
    if kind == "errors":
        return [SecurityEvent.from_dict({
            "class": "authentication", "outcome": "failure", "actor": actor,
            "time": (at + timedelta(seconds=i)).isoformat()}) for i in range(40)]
    if kind == "prompts":
        return [_req(at + timedelta(seconds=i), actor, rng, prompt_hash=f"sweep{i}")
                for i in range(50)]
    night = at.replace(hour=23, minute=7)
    return [_req(night + timedelta(seconds=i * 10), actor, rng) for i in range(4)]


def traffic(seed: int = 1) -> tuple[list[SecurityEvent], dict[str, datetime]]:
    """Working-hours traffic of PRINCIPALS principals; abuse on the last day at 14:00."""
    rng = random.Random(seed)
    events: list[SecurityEvent] = []
    for day in range(DAYS):
        for minute in range(9 * 60, 17 * 60):
            at = START + timedelta(days=day, minutes=minute)
            for p in range(PRINCIPALS):
                if rng.random() < 0.3:
                    for k in range(rng.randint(2, 6)):
                        events.append(_req(at + timedelta(seconds=k * 7), f"p{p}", rng))
    attack_at = START + timedelta(days=DAYS - 1, hours=14)
    when: dict[str, datetime] = {}
    for actor, kind in ABUSERS.items():
        abuse = _abuse(kind, actor, attack_at, rng)
        when[actor] = abuse[0].time
        events.extend(abuse)
    events.sort(key=lambda e: e.time)
    return events, when


@pytest.fixture(scope="module")
def generated() -> tuple[list[SecurityEvent], dict[str, datetime]]:
    return traffic()


def test_online_baselines_find_abuse_with_few_false_positives(
    generated: tuple[list[SecurityEvent], dict[str, datetime]],
) -> None:
    events, when = generated
    detector = BaselineDetector(AnomalySettings(hour_warmup=100))
    alerts = detector.run(events)
    flagged = {a.actor for a in alerts}
    detected = {actor for actor in ABUSERS if actor in flagged}
    assert len(detected) / len(ABUSERS) >= 0.8, (detected, alerts)
    assert {"p3", "p7", "p11", "p19", "p23"} == detected
    said = {actor: " | ".join(a.message for a in alerts if a.actor == actor)
            for actor in ABUSERS}
    assert "requests=" in said["p3"]
    assert "tokens=" in said["p7"]
    assert "auth_failures=40" in said["p11"]
    assert "prompts=50" in said["p19"]
    assert {a.rule_id for a in alerts if a.actor == "p23"} == {RULE_HOUR}
    first_p3 = min((a for a in alerts if a.actor == "p3"), key=lambda a: a.time)
    assert first_p3.rule_id == RULE_ONLINE and first_p3.time == when["p3"]
    # False positives: alerts on normal principals over all their closed buckets.
    normal_alerts = [a for a in alerts if a.actor not in ABUSERS]
    buckets = sum(b.n for b in detector._principals.values())
    assert len(normal_alerts) / buckets < 0.002, normal_alerts[:5]


def test_no_alert_before_warmup() -> None:
    rng = random.Random(0)
    detector = BaselineDetector(AnomalySettings(warmup=20))
    events = [_req(START + timedelta(minutes=m), "new", rng) for m in range(5)]
    events += [_req(START + timedelta(minutes=6, seconds=i * 0.1), "new", rng)
               for i in range(300)]
    assert detector.run(events) == []


def test_events_without_actor_or_of_other_classes_are_ignored() -> None:
    detector = BaselineDetector()
    event = SecurityEvent.from_dict({"class": "detection_finding", "actor": "x"})
    assert detector.process(event) == []
    assert detector.process(SecurityEvent.from_dict({"class": "api_activity"})) == []
    assert detector._principals == {}


def test_settings_are_checked() -> None:
    with pytest.raises(InputError, match="alpha"):
        AnomalySettings(alpha=1.5)


def test_batch_isolation_forest_flags_the_odd_principals(
    generated: tuple[list[SecurityEvent], dict[str, datetime]],
) -> None:
    pytest.importorskip("sklearn")
    events, _ = generated
    rng = random.Random(5)
    day = START + timedelta(days=DAYS - 1)
    extra = [_req(day + timedelta(hours=10, seconds=i), "scraper", rng,
                  prompt_hash=f"s{i}") for i in range(3000)]
    features = principal_features(events + extra)
    alerts = batch_outliers(features, contamination=0.04)
    flagged = {a.actor for a in alerts}
    assert "scraper" in flagged
    assert len(flagged) <= 2
    scraper = next(a for a in alerts if a.actor == "scraper")
    assert "prompts=" in scraper.message or "requests=" in scraper.message
    with pytest.raises(InputError, match="at least 10"):
        batch_outliers({"a": features["p1"]})
