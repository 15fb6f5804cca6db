"""How well the response loop works, from the stored incidents: MTTD, MTTA, MTTR,
false-positive rate, open incidents by priority, SLA breaches.

- MTTD: first event of an incident to its detection (event time; replays count the same).
- MTTA: opening to the first response (acknowledge, contain or resolve).
- MTTR: opening to resolution.
- False-positive rate: alerts marked false positive over all alerts.

The Prometheus collector computes them on scrape (cached briefly), so every process that
serves /metrics reports the same figures from the shared database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
from sqlalchemy import Engine, func, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from tsuba.core.storage import reader
from tsuba.core.storage.engine import storage_error
from tsuba.soar.incidents import ACTIVE, Priority
from tsuba.soar.models import AlertRow, IncidentRow


@dataclass(frozen=True)
class SoarMetrics:
    incidents: int
    open_by_severity: dict[str, int]
    mttd_seconds: float | None
    mtta_seconds: float | None
    mttr_seconds: float | None
    alerts: int
    false_positive_alerts: int
    sla_breaches: int
    since: datetime | None

    @property
    def false_positive_rate(self) -> float | None:
        return self.false_positive_alerts / self.alerts if self.alerts else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": None if self.since is None else self.since.isoformat(),
            "incidents": self.incidents,
            "open_by_severity": self.open_by_severity,
            "mttd_seconds": _round(self.mttd_seconds),
            "mtta_seconds": _round(self.mtta_seconds),
            "mttr_seconds": _round(self.mttr_seconds),
            "alerts": self.alerts,
            "false_positive_alerts": self.false_positive_alerts,
            "false_positive_rate": _round(self.false_positive_rate, 4),
            "sla_breaches": self.sla_breaches,
        }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


def compute_metrics(engine: Engine, *, since: datetime | None = None) -> SoarMetrics:
    """The figures over incidents opened since ``since`` (all when None)."""
    incidents = select(
        IncidentRow.severity,
        IncidentRow.state,
        IncidentRow.first_event_at,
        IncidentRow.detected_at,
        IncidentRow.opened_at,
        IncidentRow.acknowledged_at,
        IncidentRow.resolved_at,
        IncidentRow.sla_breached,
    )
    alerts = select(AlertRow.false_positive, func.count()).group_by(AlertRow.false_positive)
    if since is not None:
        incidents = incidents.where(IncidentRow.opened_at >= since)
        alerts = alerts.where(AlertRow.received_at >= since)
    try:
        with Session(reader(engine)) as s, s.begin():
            rows = s.execute(incidents).all()
            alert_counts = {bool(fp): int(n) for fp, n in s.execute(alerts).all()}
    except sa_exc.DBAPIError as exc:
        raise storage_error(exc, "incident store") from exc
    active = {st.value for st in ACTIVE}
    open_by = {p.value: 0 for p in Priority}
    for row in rows:
        if row.state in active:
            open_by[row.severity] += 1
    return SoarMetrics(
        incidents=len(rows),
        open_by_severity=open_by,
        mttd_seconds=_mean(
            max(0.0, (r.detected_at - r.first_event_at).total_seconds()) for r in rows
        ),
        mtta_seconds=_mean(
            (r.acknowledged_at - r.opened_at).total_seconds()
            for r in rows if r.acknowledged_at is not None
        ),
        mttr_seconds=_mean(
            (r.resolved_at - r.opened_at).total_seconds()
            for r in rows if r.resolved_at is not None
        ),
        alerts=sum(alert_counts.values()),
        false_positive_alerts=alert_counts.get(True, 0),
        sla_breaches=sum(1 for r in rows if r.sla_breached),
        since=since.astimezone(UTC) if since is not None else None,
    )


class SoarCollector(Collector):
    """Prometheus gauges over the incident store, recomputed at most every ``ttl`` seconds."""

    def __init__(
        self,
        compute: Callable[[], SoarMetrics],
        *,
        ttl: float = 15.0,
    ) -> None:
        self._compute = compute
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, SoarMetrics] | None = None

    def _metrics(self) -> SoarMetrics:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self._ttl:
                self._cached = (now, self._compute())
            return self._cached[1]

    def describe(self) -> Iterable[Metric]:
        return []  # figures come from the database: nothing to read at registration

    def collect(self) -> Iterable[Metric]:
        m = self._metrics()
        open_g = GaugeMetricFamily(
            "tsuba_soar_incidents_open", "Incidents not yet resolved, by priority.",
            labels=["severity"],
        )
        for prio, count in m.open_by_severity.items():
            open_g.add_metric([prio], count)
        yield open_g
        for name, doc, value in (
            ("tsuba_soar_incidents", "Incidents recorded.", m.incidents),
            ("tsuba_soar_mttd_seconds", "Mean time from first event to detection.",
             m.mttd_seconds),
            ("tsuba_soar_mtta_seconds", "Mean time from opening to first response.",
             m.mtta_seconds),
            ("tsuba_soar_mttr_seconds", "Mean time from opening to resolution.",
             m.mttr_seconds),
            ("tsuba_soar_alerts", "Alerts recorded.", m.alerts),
            ("tsuba_soar_false_positive_alerts", "Alerts marked false positive.",
             m.false_positive_alerts),
            ("tsuba_soar_false_positive_ratio", "Alerts marked false positive over all alerts.",
             m.false_positive_rate),
            ("tsuba_soar_sla_breaches", "Incidents that missed their response time.",
             m.sla_breaches),
        ):
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=float(value))


def register_metrics(
    engine: Engine, registry: CollectorRegistry = REGISTRY, *, ttl: float = 15.0
) -> SoarCollector:
    """Expose the SOAR figures on ``registry`` (the server's /metrics) and return the collector."""
    collector = SoarCollector(lambda: compute_metrics(engine), ttl=ttl)
    registry.register(collector)
    return collector
