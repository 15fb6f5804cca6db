"""Prometheus metrics the server exposes at /metrics.

With several workers, prometheus-client's multiprocess mode aggregates every worker's
samples (PROMETHEUS_MULTIPROC_DIR is set by ``tsuba up`` before workers start).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector

HTTP_REQUESTS = Counter(
    "tsuba_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "tsuba_http_request_duration_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
AUDIT_APPENDS = Counter("tsuba_audit_appends_total", "Events appended to the audit log")
READY_FAILURES = Counter(
    "tsuba_readiness_failures_total", "Readiness checks that failed", ["check"]
)


# Collectors computed from the database (incident and response-loop figures).  With one
# process they are on the default registry; with several workers each worker adds them to
# the registry it renders, since the loop's own process serves no /metrics.
_SHARED: list[Collector] = []


def share_collectors(collectors: list[Collector]) -> None:
    """Replace the shared collectors (an app started again in one process replaces them)."""
    _SHARED[:] = collectors


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        for collector in _SHARED:
            registry.register(collector)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
