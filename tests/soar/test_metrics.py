"""Response metrics from stored incidents, and the same figures as Prometheus gauges."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from importlib import resources

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from soar_events import PM, Clock, alert
from sqlalchemy import Engine

from tsuba.core.events import Severity
from tsuba.soar.incidents import IncidentService
from tsuba.soar.metrics import compute_metrics, register_metrics


def test_empty_store(engine: Engine) -> None:
    m = compute_metrics(engine)
    assert m.incidents == 0 and m.alerts == 0
    assert m.mttd_seconds is None and m.mttr_seconds is None
    assert m.false_positive_rate is None
    assert m.to_dict()["open_by_severity"] == {"P0": 0, "P1": 0, "P2": 0, "P3": 0}


def test_mttd_mtta_mttr_fp_rate_and_breaches(engine: Engine) -> None:
    clock = Clock()
    svc = IncidentService(engine, clock=clock)
    # alert() puts the first event 30 s before detection: MTTD 30 s for every incident.
    a = svc.ingest(alert("r.a", Severity.CRITICAL, group={"actor": "a"})).incident
    b = svc.ingest(alert("r.b", Severity.HIGH, group={"actor": "b"})).incident
    c = svc.ingest(alert("r.c", Severity.MEDIUM, group={"actor": "c"})).incident
    d = svc.ingest(alert("r.d", Severity.LOW, group={"actor": "d"}))
    clock.now += timedelta(minutes=10)
    svc.acknowledge(a.id)
    clock.now += timedelta(minutes=50)
    svc.resolve(a.id)  # a: responded after 10 min, resolved after 60 min
    svc.close(a.id, PM)
    clock.now += timedelta(hours=4)
    svc.check_sla()  # b (P1, 4 h) is late now; c (P2) and d (P3) are not
    svc.resolve(b.id)  # b: responded and resolved after 5 h
    svc.mark_false_positive(d.alert_id, "test traffic")

    m = compute_metrics(engine)
    assert m.incidents == 4 and m.alerts == 4
    assert m.mttd_seconds == pytest.approx(30)
    assert m.mtta_seconds == pytest.approx((600 + 5 * 3600) / 2)
    assert m.mttr_seconds == pytest.approx((3600 + 5 * 3600) / 2)
    assert m.false_positive_alerts == 1 and m.false_positive_rate == pytest.approx(0.25)
    assert m.sla_breaches == 1
    assert m.open_by_severity == {"P0": 0, "P1": 0, "P2": 1, "P3": 0}
    assert c.id not in (a.id, b.id)

    later = compute_metrics(engine, since=clock.now + timedelta(seconds=1))
    assert later.incidents == 0 and later.alerts == 0

    registry = CollectorRegistry()
    collector = register_metrics(engine, registry, ttl=60)
    text = generate_latest(registry).decode()
    assert 'tsuba_soar_incidents_open{severity="P2"} 1.0' in text
    assert "tsuba_soar_mttr_seconds 10800.0" in text
    assert "tsuba_soar_false_positive_ratio 0.25" in text
    assert "tsuba_soar_sla_breaches 1.0" in text
    # Cached within the ttl: a new incident shows on the next scrape after it.
    svc.ingest(alert("r.e", Severity.CRITICAL, group={"actor": "e"}))
    assert 'tsuba_soar_incidents_open{severity="P0"} 0.0' in generate_latest(registry).decode()
    collector._cached = None
    assert 'tsuba_soar_incidents_open{severity="P0"} 1.0' in generate_latest(registry).decode()


def test_grafana_dashboard_queries_only_exported_metrics(engine: Engine) -> None:
    dash = json.loads(
        resources.files("tsuba.soar").joinpath("dashboards/soar.json").read_text("utf-8")
    )
    registry = CollectorRegistry()
    svc = IncidentService(engine)
    svc.resolve(svc.ingest(alert("r.a", Severity.HIGH)).incident.id)  # every figure defined
    register_metrics(engine, registry)
    exported = {m.name for m in registry.collect()}
    queried = {
        name
        for panel in dash["panels"]
        for target in panel["targets"]
        for name in re.findall(r"tsuba_[a-z_]+", target["expr"])
    }
    from_gateway = {"tsuba_gateway_authentications_total"}  # the gateway's own counter
    assert queried and queried <= exported | from_gateway, queried - exported
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
