"""The engine on the real event bus (SQLite and PostgreSQL outbox): published events become
incidents, retries never count an event twice, and incident events are not re-detected."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from soar_events import auth, finding
from sqlalchemy import Engine

from tsuba.core.bus import Bus
from tsuba.core.errors import StorageError
from tsuba.core.events import SecurityEvent
from tsuba.soar.incidents import IncidentService, Priority
from tsuba.soar.live import subscribe
from tsuba.soar.rules import Alert, DetectionEngine, builtin_rules


@pytest.fixture
def bus(engine: Engine) -> Iterator[Bus]:
    made = Bus(engine, poll_interval=0.05, backoff_initial=0.001, backoff_max=0.01)
    yield made
    made.stop(timeout=5)


def test_published_attack_becomes_an_incident(engine: Engine, bus: Bus) -> None:
    published: list[SecurityEvent] = []

    def emit(event: SecurityEvent) -> None:  # incidents report back onto the same bus
        published.append(event)
        bus.publish(event)

    incidents = IncidentService(engine, emit=emit)
    handler = subscribe(bus, DetectionEngine(builtin_rules()), incidents)
    bus.start()
    bus.publish_many([auth(i, False, "203.0.113.9", cred=f"tsk_{i}") for i in range(5)])
    bus.publish(auth(30, True, "203.0.113.9", cred="tsk_v", actor="victim"))
    assert bus.drain(20)
    [incident] = incidents.list()
    assert incident.severity is Priority.P1
    assert handler.filed == 1
    assert [e.attributes["action"] for e in published] == ["open"]
    assert handler.engine.events_seen == 6  # the incident event was delivered, not detected


class FailingOnce(IncidentService):
    """The real service with one injected storage failure: a database outage on cue is not
    something a real part can produce reliably here."""

    failed = False

    def ingest(self, alert: Alert):  # type: ignore[no-untyped-def]
        if not self.failed:
            self.failed = True
            raise StorageError("incident store is not usable: injected outage")
        return super().ingest(alert)


def test_retry_files_pending_alerts_without_recounting(engine: Engine, bus: Bus) -> None:
    incidents = FailingOnce(engine)
    handler = subscribe(bus, DetectionEngine(builtin_rules()), incidents)
    bus.start()
    bus.publish_many([finding(i, "injection", "input", actor="m") for i in range(3)])
    assert bus.drain(20)
    assert incidents.failed
    [incident] = incidents.list()
    assert incident.alert_count == 1
    assert handler.filed == 1
    assert handler.engine.events_seen == 3
