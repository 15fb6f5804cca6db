"""Security monitoring and response: detections, alerts, incidents, playbooks, SIEM export
and the metrics of the loop.

Names load on first use, so ``tsuba detect`` does not pay for storage, HTTP or Prometheus.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tsuba.soar.actions import SmtpConfig, builtin_actions
    from tsuba.soar.anomaly import BaselineDetector, batch_outliers, principal_features
    from tsuba.soar.external import falco_alerts, trivy_alert
    from tsuba.soar.incidents import IncidentPolicy, IncidentService, PostMortem, Priority, State
    from tsuba.soar.live import LiveDetection, subscribe
    from tsuba.soar.metrics import SoarMetrics, compute_metrics, register_metrics
    from tsuba.soar.playbooks import PlaybookRunner, from_cacao, load_playbook, to_cacao
    from tsuba.soar.rules import Alert, DetectionEngine, builtin_rules, load_rules
    from tsuba.soar.service import ResponseService
    from tsuba.soar.siem import validate_ocsf
    from tsuba.soar.siem.sinks import SiemForwarder

_WHERE = {
    "SmtpConfig": "actions",
    "builtin_actions": "actions",
    "ResponseService": "service",
    "validate_ocsf": "siem",
    "Alert": "rules",
    "DetectionEngine": "rules",
    "builtin_rules": "rules",
    "load_rules": "rules",
    "BaselineDetector": "anomaly",
    "batch_outliers": "anomaly",
    "principal_features": "anomaly",
    "falco_alerts": "external",
    "trivy_alert": "external",
    "IncidentPolicy": "incidents",
    "IncidentService": "incidents",
    "PostMortem": "incidents",
    "Priority": "incidents",
    "State": "incidents",
    "LiveDetection": "live",
    "subscribe": "live",
    "SoarMetrics": "metrics",
    "compute_metrics": "metrics",
    "register_metrics": "metrics",
    "PlaybookRunner": "playbooks",
    "from_cacao": "playbooks",
    "load_playbook": "playbooks",
    "to_cacao": "playbooks",
    "SiemForwarder": "siem.sinks",
}

__all__ = [
    "Alert",
    "BaselineDetector",
    "DetectionEngine",
    "IncidentPolicy",
    "IncidentService",
    "LiveDetection",
    "PlaybookRunner",
    "PostMortem",
    "Priority",
    "ResponseService",
    "SiemForwarder",
    "SmtpConfig",
    "SoarMetrics",
    "State",
    "batch_outliers",
    "builtin_actions",
    "builtin_rules",
    "compute_metrics",
    "falco_alerts",
    "from_cacao",
    "load_playbook",
    "load_rules",
    "principal_features",
    "register_metrics",
    "subscribe",
    "to_cacao",
    "trivy_alert",
    "validate_ocsf",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tsuba.soar' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tsuba.soar.{module}"), name)
