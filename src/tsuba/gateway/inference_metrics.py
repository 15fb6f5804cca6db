"""Prometheus metrics of the inference path: one family per decision a request goes through.

Labels are bounded: route names, configured model names (unknown models count as
"unknown"), outcomes and guard names, never raw client input.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_FAST = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "tsuba_gateway_requests_total",
    "Inference requests by route, model and outcome",
    ["route", "model", "outcome"],
)
AUTHN = Counter(
    "tsuba_gateway_authentications_total", "Authentication outcomes", ["method", "outcome"]
)
AUTHZ = Counter("tsuba_gateway_authorizations_total", "Model access decisions", ["allowed"])
LIMITS = Counter("tsuba_gateway_limit_decisions_total", "Limit decisions", ["decision"])
GUARDS = Counter(
    "tsuba_gateway_guard_findings_total", "Guard findings", ["guard", "stage", "verdict"]
)
UPSTREAM = Counter(
    "tsuba_gateway_upstream_responses_total", "Upstream answers", ["upstream", "status"]
)
UPSTREAM_LATENCY = Histogram(
    "tsuba_gateway_upstream_duration_seconds", "Upstream latency", ["upstream"], buckets=_FAST
)
LATENCY = Histogram(
    "tsuba_gateway_request_duration_seconds", "Whole request latency", ["route"], buckets=_FAST
)
TTFT = Histogram(
    "tsuba_gateway_time_to_first_token_seconds",
    "Time from request to the first streamed text sent to the client",
    ["route"],
    buckets=_FAST,
)
TOKENS = Counter("tsuba_gateway_tokens_total", "Tokens used", ["model", "kind"])
AUDIT_BATCH = Histogram(
    "tsuba_gateway_audit_batch_events",
    "Events per audit group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
)
AUDIT_FAILURES = Counter(
    "tsuba_gateway_audit_failures_total", "Request events the audit log failed to take"
)
SESSIONS = Counter("tsuba_gateway_sessions_total", "Session operations", ["op"])
IO_LOG = Counter("tsuba_gateway_io_log_records_total", "I/O log records", ["op"])
BUS_FAILURES = Counter(
    "tsuba_gateway_bus_failures_total", "Request events the bus failed to take (audited)"
)
