"""Formatting a SecurityEvent for SIEMs: pure functions from an event to bytes or JSON.

Every field an attacker can influence (actor names, messages, paths) goes through the
escaping of its format, so a crafted value cannot forge a field, a header or a record:
CEF escapes ``\\``, ``|`` (header) and ``=`` (extensions) and turns line breaks into
``\\n``; syslog escapes ``"``, ``\\`` and ``]`` in structured data and keeps the message on
one line; JSON forms are JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tsuba import __version__
from tsuba.core.events import Outcome, SecurityEvent, Severity

# OCSF severity (0-6) to CEF (0-10) and to syslog (RFC 5424: 0 emergency .. 7 debug).
_CEF_SEVERITY = {0: 0, 1: 1, 2: 3, 3: 5, 4: 7, 5: 9, 6: 10}
_SYSLOG_SEVERITY = {0: 6, 1: 6, 2: 5, 3: 4, 4: 3, 5: 2, 6: 0}
_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
NIL = "-"


def _cef_header(value: str) -> str:
    return (value.replace("\\", "\\\\").replace("|", "\\|")
            .replace("\r", " ").replace("\n", " "))


def _cef_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                           ensure_ascii=False)
    return (text.replace("\\", "\\\\").replace("=", "\\=")
            .replace("\n", "\\n").replace("\r", "\\r"))


def cef(event: SecurityEvent, *, product_version: str = __version__) -> str:
    """One ArcSight CEF line (no trailing newline)."""
    signature = f"{event.event_class.value}:{event.activity}"
    name = event.message.strip() or signature
    ext: list[tuple[str, object]] = [
        ("rt", int(event.time.timestamp() * 1000)),
        ("externalId", event.id),
        ("cat", event.event_class.value),
        ("act", event.activity),
        ("outcome", event.outcome.value),
    ]
    if event.actor:
        ext.append(("suser", event.actor))
    if event.src_ip:
        ext.append(("src", event.src_ip))
    if event.resource:
        ext.append(("request", event.resource))
    if event.correlation_id:
        ext += [("cs1Label", "correlationId"), ("cs1", event.correlation_id)]
    ext.append(("msg", event.message))
    header = "|".join(_cef_header(v) for v in (
        "tsuba", "tsuba", product_version, signature, name[:512],
    ))
    body = " ".join(f"{k}={_cef_value(v)}" for k, v in ext)
    return f"CEF:0|{header}|{_CEF_SEVERITY[int(event.severity)]}|{body}"


def _sd_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                           ensure_ascii=False)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    # Control characters as \xNN: a raw line break would split the record on the wire.
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", escaped)


def _header_field(value: str | None, limit: int) -> str:
    if not value:
        return NIL
    cleaned = _PRINTUSASCII.sub("_", value)[:limit]
    return cleaned or NIL


def syslog_5424(
    event: SecurityEvent,
    *,
    hostname: str | None = None,
    app_name: str = "tsuba",
    facility: int = 13,
    sd_id: str = "tsuba@32473",
) -> bytes:
    """One RFC 5424 message (no framing): header, structured data, UTF-8 message with BOM.

    ``sd_id`` uses 32473, the private enterprise number RFC 5612 reserves for examples:
    set your own organisation's number in production.
    """
    if not 0 <= facility <= 23:
        raise ValueError("syslog facility must be 0..23")
    pri = facility * 8 + _SYSLOG_SEVERITY[int(event.severity)]
    stamp = event.time.isoformat(timespec="microseconds").replace("+00:00", "Z")
    params: list[tuple[str, object]] = [
        ("id", event.id), ("class", event.event_class.value), ("activity", event.activity),
        ("outcome", event.outcome.value), ("severity", event.severity.name.lower()),
    ]
    for key in ("actor", "resource", "src_ip", "correlation_id"):
        value = getattr(event, key)
        if value:
            params.append((key, value))
    sd = "[" + _header_field(sd_id, 32) + "".join(
        f' {k}="{_sd_value(v)}"' for k, v in params
    ) + "]"
    message = " ".join(event.message.split())  # one line: a newline would split the record
    head = " ".join((
        f"<{pri}>1", stamp, _header_field(hostname, 255), _header_field(app_name, 48), NIL,
        _header_field(f"{event.event_class.value}", 32), sd,
    ))
    # Header fields are printable ASCII already; structured data values are UTF-8.
    # (a lone surrogate from loose JSON input cannot be UTF-8: it becomes "?").
    return (head.encode("utf-8", "replace") + b" \xef\xbb\xbf"
            + message.encode("utf-8", "replace"))


_ECS_CATEGORY = {
    "authentication": ["authentication"], "authorize_session": ["iam"],
    "account_change": ["iam"], "entity_management": ["configuration"],
    "api_activity": ["web"], "datastore_activity": ["database"], "file_activity": ["file"],
    "detection_finding": ["intrusion_detection"], "incident_finding": ["intrusion_detection"],
    "compliance_finding": ["configuration"],
}


def ecs(event: SecurityEvent) -> dict[str, Any]:
    """The event as an Elastic Common Schema document."""
    kind = "alert" if event.event_class.value.endswith("_finding") else "event"
    doc: dict[str, Any] = {
        "@timestamp": event.time.isoformat().replace("+00:00", "Z"),
        "ecs": {"version": "8.11.0"},
        "message": event.message,
        "event": {
            "id": event.id,
            "kind": kind,
            "category": _ECS_CATEGORY.get(event.event_class.value, []),
            "action": event.activity,
            "dataset": f"tsuba.{event.event_class.value}",
            "outcome": event.outcome.value if event.outcome is not Outcome.UNKNOWN
            else "unknown",
            "severity": int(event.severity),
        },
        "observer": {"product": "tsuba", "vendor": "tsuba", "version": __version__},
        "tsuba": {"class": event.event_class.value, "attributes": event.attributes},
    }
    if event.actor:
        doc["user"] = {"name": event.actor}
    if event.src_ip:
        doc["source"] = {"ip": event.src_ip}
    if event.resource:
        doc["tsuba"]["resource"] = event.resource
    if event.correlation_id:
        doc["trace"] = {"id": event.correlation_id}
    return doc


def ecs_bulk(events: list[SecurityEvent], index: str) -> bytes:
    """Elasticsearch ``_bulk`` NDJSON: a ``create`` action per event, ids kept (idempotent)."""
    lines: list[str] = []
    for event in events:
        lines.append(json.dumps({"create": {"_index": index, "_id": event.id}}))
        lines.append(json.dumps(ecs(event), ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def splunk_hec(
    event: SecurityEvent, *, host: str | None = None, index: str | None = None,
    sourcetype: str = "tsuba:ocsf",
) -> dict[str, Any]:
    """A Splunk HTTP Event Collector payload carrying the OCSF form of the event."""
    payload: dict[str, Any] = {
        "time": round(event.time.timestamp(), 6),
        "source": "tsuba",
        "sourcetype": sourcetype,
        "event": event.to_ocsf(),
    }
    if host:
        payload["host"] = host
    if index:
        payload["index"] = index
    return payload


def severity_from_cef(value: int) -> Severity:
    """The OCSF severity a CEF severity came from (the mapping is one-to-one)."""
    for ocsf, cef_value in _CEF_SEVERITY.items():
        if cef_value == value:
            return Severity(ocsf)
    raise ValueError(f"CEF severity {value} was not produced by tsuba")
