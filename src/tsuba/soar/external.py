"""Findings of other tools as alerts: Falco runtime alerts and Trivy scan reports.

Container security sits beside tsuba; its findings belong in the same incidents (a
shell in the model server's container and a leaked key from the same host are one story).
Both parsers are strict: a malformed record is refused with its line or field named.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from tsuba.core.errors import InputError
from tsuba.core.events import Severity
from tsuba.soar.rules import Alert

_FALCO_PRIORITY = {
    "emergency": Severity.CRITICAL, "alert": Severity.CRITICAL, "critical": Severity.CRITICAL,
    "error": Severity.HIGH, "warning": Severity.MEDIUM, "notice": Severity.LOW,
    "informational": Severity.INFO, "info": Severity.INFO, "debug": Severity.INFO,
}
_TRIVY_SEVERITY = {
    "CRITICAL": Severity.CRITICAL, "HIGH": Severity.HIGH, "MEDIUM": Severity.MEDIUM,
    "LOW": Severity.LOW, "UNKNOWN": Severity.INFO,
}
_ATTACK = re.compile(r"^T\d{4}(\.\d{3})?$")
_FRACTION = re.compile(r"(\.\d{6})\d+")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:100] or "unnamed"


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise InputError(f"{where}: 'time' must be an ISO-8601 string")
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00")  # Falco: nanoseconds
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{where}: 'time' {value!r} is not an ISO-8601 instant") from None
    if parsed.tzinfo is None:
        raise InputError(f"{where}: 'time' {value!r} has no timezone")
    return parsed.astimezone(UTC)


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def falco_alert(data: Any, where: str = "falco alert") -> Alert:
    """One Falco JSON alert (``json_output: true``) as an alert."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: must be a JSON object")
    rule, priority = data.get("rule"), data.get("priority")
    if not isinstance(rule, str) or not rule.strip():
        raise InputError(f"{where}: needs a 'rule' name")
    if not isinstance(priority, str) or priority.lower() not in _FALCO_PRIORITY:
        raise InputError(f"{where}: unknown 'priority' {priority!r} "
                         f"(one of {', '.join(sorted(_FALCO_PRIORITY))})")
    at = _time(data.get("time"), where)
    fields = data.get("output_fields")
    fields = {} if fields is None else fields
    if not isinstance(fields, dict):
        raise InputError(f"{where}: 'output_fields' must be a JSON object")
    tags = data.get("tags")
    tags = [] if tags is None else tags
    if not isinstance(tags, list):
        raise InputError(f"{where}: 'tags' must be a list")
    host = _str(data, "hostname")
    container = _str(fields, "container.id")
    group = {k: v for k, v in (("host", host), ("container", container)) if v}
    output = data.get("output")
    return Alert(
        rule_id=f"falco.{_slug(rule)}",
        title=f"Falco: {rule.strip()[:200]}",
        severity=_FALCO_PRIORITY[priority.lower()],
        time=at,
        first_seen=at,
        group=group,
        count=1,
        event_ids=(),
        message=output.strip()[:2000] if isinstance(output, str) and output.strip()
        else f"Falco rule {rule.strip()} fired",
        mitre_attack=tuple(t for t in tags if isinstance(t, str) and _ATTACK.match(t)),
        actor=_str(fields, "user.name"),
        resource=_str(fields, "container.name") or _str(fields, "k8s.pod.name") or container,
    )


def falco_alerts(lines: Iterable[str]) -> Iterator[Alert]:
    """Falco's JSON lines, one alert each; a bad line stops the read, naming its number."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {number}: not valid JSON: {exc.msg}") from None
        yield falco_alert(data, f"line {number}")


def _items(result: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    items = result.get(key)
    items = [] if items is None else items
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InputError(f"{where}: '{key}' must be a list of objects")
    return items


def trivy_alert(
    report: Any, *, min_severity: Severity = Severity.HIGH, at: datetime | None = None
) -> Alert | None:
    """A Trivy JSON report (schema 2) as one alert for the artifact, or None when nothing in
    it reaches ``min_severity``.  The alert counts findings by severity and names the worst."""
    if not isinstance(report, dict):
        raise InputError("trivy report: must be a JSON object")
    if report.get("SchemaVersion") != 2:
        raise InputError("trivy report: expected SchemaVersion 2 (trivy --format json)")
    artifact = report.get("ArtifactName")
    if not isinstance(artifact, str) or not artifact:
        raise InputError("trivy report: needs an 'ArtifactName'")
    results = report.get("Results")
    results = [] if results is None else results
    if not isinstance(results, list):
        raise InputError("trivy report: 'Results' must be a list")
    counts: Counter[str] = Counter()
    worst: list[tuple[int, str]] = []
    for index, result in enumerate(results):
        where = f"trivy report: Results[{index}]"
        if not isinstance(result, dict):
            raise InputError(f"{where}: must be a JSON object")
        for key, id_key in (("Vulnerabilities", "VulnerabilityID"),
                            ("Misconfigurations", "ID"), ("Secrets", "RuleID")):
            for item in _items(result, key, where):
                sev_name = item.get("Severity")
                if not isinstance(sev_name, str) or sev_name.upper() not in _TRIVY_SEVERITY:
                    raise InputError(f"{where}: {key} entry with unknown Severity {sev_name!r}")
                sev = _TRIVY_SEVERITY[sev_name.upper()]
                counts[sev.name.lower()] += 1
                if sev >= min_severity:
                    ident = item.get(id_key)
                    name = ident if isinstance(ident, str) and ident else key.lower()
                    worst.append((int(sev), name))
    if not worst:
        return None
    worst.sort(key=lambda w: -w[0])
    top = Severity(worst[0][0])
    when = at or _report_time(report)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return Alert(
        rule_id="trivy.findings",
        title="Trivy: vulnerable or misconfigured artifact",
        severity=top,
        time=when,
        first_seen=when,
        group={"artifact": artifact[:200]},
        count=len(worst),
        event_ids=(),
        message=f"{artifact}: {summary}; worst: "
                + ", ".join(dict.fromkeys(name for _, name in worst[:5])),
        mitre_attack=("T1190",),
        resource=artifact[:200],
    )


def _report_time(report: dict[str, Any]) -> datetime:
    created = report.get("CreatedAt")
    return _time(created, "trivy report") if isinstance(created, str) else datetime.now(UTC)
