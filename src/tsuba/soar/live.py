"""Detection on the live stream: the rule engine as a durable subscriber of the event bus.

Each delivered event goes through the rules once; the alerts it raises are filed as
incidents.  The bus delivers at least once and retries a handler that raised, so the
handler remembers the last position it evaluated and, on a retry, only files the alerts
still pending: rule state never counts one event twice, and no alert is dropped.
"""

from __future__ import annotations

import threading

from tsuba.core.bus import Bus, Delivery
from tsuba.core.events import EventClass
from tsuba.soar.incidents import IncidentService
from tsuba.soar.rules import Alert, DetectionEngine

SUBSCRIBER = "soar.detect"


class LiveDetection:
    """A bus handler: events in, incidents out."""

    def __init__(self, engine: DetectionEngine, incidents: IncidentService) -> None:
        self.engine = engine
        self.incidents = incidents
        self._lock = threading.Lock()
        self._position = -1
        self._pending: list[Alert] = []
        self.filed = 0

    def __call__(self, delivery: Delivery) -> None:
        with self._lock:
            if delivery.position > self._position:
                event = delivery.event
                # Incident Findings are this loop's own output: never detect on them.
                if event.event_class is not EventClass.INCIDENT_FINDING:
                    self._pending.extend(self.engine.process(event))
                self._position = delivery.position
            while self._pending:
                self.incidents.ingest(self._pending[0])
                self._pending.pop(0)
                self.filed += 1


def subscribe(
    bus: Bus,
    engine: DetectionEngine,
    incidents: IncidentService,
    *,
    name: str = SUBSCRIBER,
    start_latest: bool = True,
) -> LiveDetection:
    """Subscribe the engine to ``bus``; by default it starts with the next event published."""
    handler = LiveDetection(engine, incidents)
    bus.subscribe(name, handler, start="latest" if start_latest else "earliest")
    return handler
