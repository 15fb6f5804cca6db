"""Falco alerts and Trivy reports as alerts: faithful mapping, strict refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsuba.core.errors import InputError
from tsuba.core.events import Severity
from tsuba.soar.external import falco_alert, falco_alerts, trivy_alert

FALCO = {
    "hostname": "gpu-node-3",
    "output": "12:00:00.123456789: Notice A shell was spawned in a container (user=root "
              "container=model-server shell=bash)",
    "priority": "Notice",
    "rule": "Terminal shell in container",
    "source": "syscall",
    "tags": ["container", "mitre_execution", "shell", "T1059"],
    "time": "2026-03-01T12:00:00.123456789Z",
    "output_fields": {"container.id": "8f3a2b", "container.name": "model-server",
                      "user.name": "root", "proc.name": "bash"},
}

TRIVY: dict[str, Any] = {
    "SchemaVersion": 2,
    "CreatedAt": "2026-03-01T11:00:00.5+00:00",
    "ArtifactName": "registry.local/model-server:1.4",
    "ArtifactType": "container_image",
    "Results": [
        {"Target": "debian 12", "Class": "os-pkgs", "Type": "debian",
         "Vulnerabilities": [
             {"VulnerabilityID": "CVE-2024-0001", "PkgName": "openssl", "Severity": "CRITICAL"},
             {"VulnerabilityID": "CVE-2024-0002", "PkgName": "zlib", "Severity": "LOW"},
         ]},
        {"Target": "Dockerfile", "Class": "config",
         "Misconfigurations": [{"ID": "DS002", "Severity": "HIGH"}]},
        {"Target": "/app/.env", "Class": "secret",
         "Secrets": [{"RuleID": "aws-access-key-id", "Severity": "CRITICAL"}]},
    ],
}


def test_falco_alert_maps_rule_priority_time_and_entities() -> None:
    alert = falco_alert(FALCO)
    assert alert.rule_id == "falco.terminal_shell_in_container"
    assert alert.severity is Severity.LOW
    assert alert.time == datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert alert.group == {"host": "gpu-node-3", "container": "8f3a2b"}
    assert alert.actor == "root" and alert.resource == "model-server"
    assert alert.mitre_attack == ("T1059",)
    assert "shell was spawned" in alert.message
    critical = falco_alert({**FALCO, "priority": "Critical"})
    assert critical.severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("change", "message"),
    [({"rule": ""}, "needs a 'rule'"), ({"priority": "Loud"}, "unknown 'priority'"),
     ({"time": "yesterday"}, "not an ISO-8601"), ({"time": "2026-03-01T12:00:00"},
                                                  "no timezone"),
     ({"time": 5}, "must be an ISO-8601 string"), ({"output_fields": []}, "output_fields"),
     ({"tags": "x"}, "'tags' must be a list")],
)
def test_bad_falco_alerts_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        falco_alert({**FALCO, **change})


def test_falco_lines_name_the_bad_line() -> None:
    good = json.dumps(FALCO)
    assert len(list(falco_alerts([good, "", good]))) == 2
    with pytest.raises(InputError, match=r"^line 2: not valid JSON"):
        list(falco_alerts([good, good[:40]]))
    with pytest.raises(InputError, match=r"^line 1: must be a JSON object"):
        list(falco_alerts(["[1]"]))


def test_trivy_report_becomes_one_alert_for_the_artifact() -> None:
    alert = trivy_alert(TRIVY)
    assert alert is not None
    assert alert.severity is Severity.CRITICAL
    assert alert.group == {"artifact": "registry.local/model-server:1.4"}
    assert alert.count == 3  # CRITICAL, HIGH, CRITICAL at or above the HIGH default
    assert "2 critical, 1 high, 1 low" in alert.message
    assert "CVE-2024-0001" in alert.message and "aws-access-key-id" in alert.message
    assert alert.time == datetime(2026, 3, 1, 11, 0, 0, 500000, tzinfo=UTC)
    assert trivy_alert(TRIVY, min_severity=Severity.LOW).count == 4  # type: ignore[union-attr]


def test_trivy_report_below_threshold_raises_nothing() -> None:
    low = {**TRIVY, "Results": [TRIVY["Results"][0] | {"Vulnerabilities": [
        {"VulnerabilityID": "CVE-1", "Severity": "LOW"}]}]}
    assert trivy_alert(low) is None
    assert trivy_alert({**TRIVY, "Results": None}) is None


@pytest.mark.parametrize(
    ("report", "message"),
    [([], "must be a JSON object"), ({**TRIVY, "SchemaVersion": 1}, "SchemaVersion 2"),
     ({**TRIVY, "ArtifactName": ""}, "ArtifactName"), ({**TRIVY, "Results": {}}, "a list"),
     ({**TRIVY, "Results": [1]}, r"Results\[0\]: must be a JSON object"),
     ({**TRIVY, "Results": [{"Vulnerabilities": [{"Severity": "DIRE"}]}]}, "unknown Severity"),
     ({**TRIVY, "Results": [{"Secrets": "x"}]}, "'Secrets' must be a list")],
)
def test_bad_trivy_reports_are_refused(report: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        trivy_alert(report)


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(list(FALCO)), _json, max_size=8))
def test_falco_fuzz_either_parses_or_refuses(data: dict[str, Any]) -> None:
    try:
        falco_alert({**FALCO, **data})
    except InputError as exc:
        assert exc.message


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["SchemaVersion", "ArtifactName", "Results",
                                        "CreatedAt"]), _json, max_size=4))
def test_trivy_fuzz_either_parses_or_refuses(data: dict[str, Any]) -> None:
    try:
        trivy_alert({**TRIVY, **data})
    except InputError as exc:
        assert exc.message
