"""The one event type every surface reports its decisions with, mapped onto OCSF.

An event is a value: it is built, published, appended to the audit log as canonical JSON
bytes, and exported.  The audit log keeps those bytes verbatim, so verification never
depends on re-serialising.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time as _time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tsuba import __version__
from tsuba.core.errors import InputError


class EventClass(StrEnum):
    """OCSF event classes tsuba emits; the value is the name used in JSON and on the CLI."""

    AUTHENTICATION = "authentication"
    AUTHORIZE_SESSION = "authorize_session"
    ACCOUNT_CHANGE = "account_change"
    ENTITY_MANAGEMENT = "entity_management"
    API_ACTIVITY = "api_activity"
    DATASTORE_ACTIVITY = "datastore_activity"
    FILE_ACTIVITY = "file_activity"
    DETECTION_FINDING = "detection_finding"
    INCIDENT_FINDING = "incident_finding"
    COMPLIANCE_FINDING = "compliance_finding"

    @property
    def ocsf_uid(self) -> int:
        return _OCSF_CLASS[self][0]

    @property
    def ocsf_category(self) -> int:
        return _OCSF_CLASS[self][1]

    @property
    def ocsf_name(self) -> str:
        return _OCSF_CLASS[self][2]


# class -> (class_uid, category_uid, caption), from the OCSF 1.8.0 schema.
_OCSF_CLASS: dict[EventClass, tuple[int, int, str]] = {
    EventClass.FILE_ACTIVITY: (1001, 1, "File System Activity"),
    EventClass.DETECTION_FINDING: (2004, 2, "Detection Finding"),
    EventClass.INCIDENT_FINDING: (2005, 2, "Incident Finding"),
    EventClass.COMPLIANCE_FINDING: (2003, 2, "Compliance Finding"),
    EventClass.ACCOUNT_CHANGE: (3001, 3, "Account Change"),
    EventClass.AUTHENTICATION: (3002, 3, "Authentication"),
    EventClass.AUTHORIZE_SESSION: (3003, 3, "Authorize Session"),
    EventClass.ENTITY_MANAGEMENT: (3004, 3, "Entity Management"),
    EventClass.API_ACTIVITY: (6003, 6, "API Activity"),
    EventClass.DATASTORE_ACTIVITY: (6005, 6, "Datastore Activity"),
}


class Severity(IntEnum):
    """OCSF severity_id."""

    UNKNOWN = 0
    INFO = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5
    FATAL = 6

    @classmethod
    def parse(cls, value: object) -> Severity:
        if isinstance(value, Severity):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        if isinstance(value, str):
            key = value.strip().upper()
            key = {"INFORMATIONAL": "INFO", "WARNING": "MEDIUM", "WARN": "MEDIUM"}.get(key, key)
            if key in cls.__members__:
                return cls[key]
        names = ", ".join(m.lower() for m in cls.__members__)
        raise ValueError(f"unknown severity {value!r} (one of {names})")


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"

    @property
    def ocsf_status_id(self) -> int:
        return {"success": 1, "failure": 2, "unknown": 0}[self.value]


def new_event_id() -> str:
    """A time-ordered UUIDv7, so ids sort by creation time across processes."""
    ms = _time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


class SecurityEvent(BaseModel):
    """A security-relevant decision or observation, in one vocabulary for every surface."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    id: str = Field(default_factory=new_event_id)
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    event_class: EventClass = Field(alias="class")
    activity: str = "other"
    severity: Severity = Severity.INFO
    actor: str | None = None
    resource: str | None = None
    outcome: Outcome = Outcome.UNKNOWN
    message: str = ""
    correlation_id: str | None = None
    src_ip: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    KNOWN_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"id", "time", "class", "activity", "severity", "actor", "resource", "outcome",
         "message", "correlation_id", "src_ip", "attributes"}
    )

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, value: object) -> Severity:
        return Severity.parse(value)

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("time must carry a timezone (UTC recommended)")
        return value.astimezone(UTC)

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "class": self.event_class.value,
            "activity": self.activity,
            "severity": self.severity.name.lower(),
            "outcome": self.outcome.value,
            "message": self.message,
        }
        for name in ("actor", "resource", "correlation_id", "src_ip"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.attributes:
            data["attributes"] = self.attributes
        return data

    def canonical_bytes(self) -> bytes:
        """Deterministic UTF-8 JSON (sorted keys, no spaces): the bytes the audit log hashes."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SecurityEvent:
        """Build from loose JSON: unknown top-level fields are kept as attributes."""
        if not isinstance(data, dict):
            raise InputError("event must be a JSON object")
        known = {k: v for k, v in data.items() if k in cls.KNOWN_FIELDS}
        extra = {k: v for k, v in data.items() if k not in cls.KNOWN_FIELDS}
        if "class" not in known:
            raise InputError("event needs a 'class' (e.g. \"api_activity\")")
        attrs = known.get("attributes", {})
        if not isinstance(attrs, dict):
            raise InputError("'attributes' must be a JSON object")
        if extra:
            known["attributes"] = {**attrs, **extra}
        try:
            return cls.model_validate(known)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "event"
            raise InputError(f"{loc}: {err['msg']}") from exc

    @classmethod
    def from_json(cls, raw: bytes | str) -> SecurityEvent:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def to_ocsf(self) -> dict[str, Any]:
        """The event as an OCSF 1.8.0 event of its class, valid against the schema.

        Required objects the event cannot fill (an API call with no known caller, a logon
        failure with no known user) are named ``"unknown"`` rather than left out, so the
        event still reaches a SIEM; a field no attribute of the class can hold goes to
        ``unmapped`` with the event's own attributes.
        """
        return _to_ocsf(self)


def canonical_json(data: Any) -> bytes:
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


# -- OCSF mapping ------------------------------------------------------------------------
# Captions, enums and required attributes follow the OCSF 1.8.0 schema, the first release
# with the AI Operation profile; tsuba.soar.siem.ocsf_schema checks the output against it.

OCSF_VERSION = "1.8.0"
AI_PROFILE = "ai_operation"
UNKNOWN = "unknown"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_CATEGORY_NAME = {1: "System Activity", 2: "Findings", 3: "Identity & Access Management",
                  6: "Application Activity"}
_SEVERITY_CAPTION = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High",
                     5: "Critical", 6: "Fatal"}
_FINDING = ("Create", "Update", "Close")
# class -> its activity captions in activity_id order from 1 (0 Unknown and 99 Other aside).
_ACTIVITIES: dict[EventClass, tuple[str, ...]] = {
    EventClass.FILE_ACTIVITY: (
        "Create", "Read", "Update", "Delete", "Rename", "Set Attributes", "Set Security",
        "Get Attributes", "Get Security", "Encrypt", "Decrypt", "Mount", "Unmount", "Open"),
    EventClass.DETECTION_FINDING: _FINDING,
    EventClass.INCIDENT_FINDING: _FINDING,
    EventClass.COMPLIANCE_FINDING: _FINDING,
    EventClass.ACCOUNT_CHANGE: (
        "Create", "Enable", "Password Change", "Password Reset", "Disable", "Delete",
        "Attach Policy", "Detach Policy", "Lock", "MFA Factor Enable", "MFA Factor Disable",
        "Unlock"),
    EventClass.AUTHENTICATION: (
        "Logon", "Logoff", "Authentication Ticket", "Service Ticket Request",
        "Service Ticket Renew", "Preauth", "Account Switch"),
    EventClass.AUTHORIZE_SESSION: ("Assign Privileges", "Assign Groups"),
    EventClass.ENTITY_MANAGEMENT: (
        "Create", "Read", "Update", "Delete", "Move", "Enroll", "Unenroll", "Enable",
        "Disable", "Activate", "Deactivate", "Suspend", "Resume"),
    EventClass.API_ACTIVITY: ("Create", "Read", "Update", "Delete"),
    EventClass.DATASTORE_ACTIVITY: (
        "Read", "Update", "Connect", "Query", "Write", "Create", "Delete", "List", "Encrypt",
        "Decrypt"),
}
_HTTP_METHODS = frozenset({"OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE",
                           "CONNECT", "PATCH"})
# Incident state -> Incident Finding status_id and caption (no "contained" in OCSF: the
# incident is still being worked on).
_INCIDENT_STATUS = {"open": (1, "New"), "acknowledged": (2, "In Progress"),
                    "contained": (2, "In Progress"), "resolved": (4, "Resolved"),
                    "closed": (5, "Closed")}
_PRIORITY = {"P0": (4, "Critical"), "P1": (3, "High"), "P2": (2, "Medium"), "P3": (1, "Low")}


def ocsf_activity(event_class: EventClass, activity: str) -> tuple[int, str]:
    """OCSF activity_id and activity_name: the class's caption, or 99 with tsuba's name."""
    key = activity.strip().lower().replace("-", "_").replace(" ", "_")
    for n, caption in enumerate(_ACTIVITIES[event_class], start=1):
        if caption.lower().replace(" ", "_") == key:
            return n, caption
    return 99, activity or "Other"


def epoch_ms(value: datetime) -> int:
    """Milliseconds since the epoch, exactly (no float rounding)."""
    return (value - _EPOCH) // timedelta(milliseconds=1)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ms(value: object) -> int | None:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is not None:
            return epoch_ms(parsed)
    return None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: object) -> list[str]:
    if not isinstance(value, list | tuple):
        return []
    return [v for v in value if isinstance(v, str) and v]


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    """Without the keys whose value is None: OCSF has no nulls."""
    return {k: v for k, v in data.items() if v is not None}


def _endpoint(src_ip: str | None) -> dict[str, Any] | None:
    if not src_ip:
        return None
    try:
        address = ipaddress.ip_address(src_ip)
    except ValueError:
        return {"name": src_ip}
    text = str(address)
    return {"ip": text} if len(text) <= 40 else {"name": src_ip}


def _user(name: str | None, **extra: Any) -> dict[str, Any]:
    return _compact({"name": name or UNKNOWN, **extra})


def _attack(uid: str) -> dict[str, Any]:
    """One MITRE ATT&CK or ATLAS id as an OCSF attack: tactic, technique or sub-technique."""
    parts = uid.split(".")
    core = parts[1] if parts[0] == "AML" and len(parts) > 1 else parts[0]
    if core.startswith("TA"):
        return {"tactic": {"uid": uid}}
    if len(parts) > (2 if parts[0] == "AML" else 1):
        return {"technique": {"uid": uid.rsplit(".", 1)[0]}, "sub_technique": {"uid": uid}}
    return {"technique": {"uid": uid}}


def _finding_info(event: SecurityEvent, alert: dict[str, Any]) -> dict[str, Any]:
    """What a Detection Finding reports: the alert of a rule, a guard's verdict, or a notice."""
    rule = _text(alert.get("rule_id"))
    guard = _text(_dict(event.attributes.get("finding")).get("guard"))
    analytic: dict[str, Any] | None = None
    if rule:
        analytic = _compact({"uid": rule, "name": _text(alert.get("title")), "type_id": 1,
                             "type": "Rule"})
    elif guard:
        analytic = {"name": guard, "type_id": 99, "type": "Guard"}
    attacks = [_attack(i) for i in _strings(alert.get("mitre_attack"))
               + _strings(alert.get("mitre_atlas"))]
    related = [{"uid": i} for i in _strings(alert.get("event_ids"))]
    return _compact({
        "uid": _text(alert.get("id")) or event.id,
        "title": _text(alert.get("title")) or event.message or f"{event.event_class.ocsf_name}",
        "desc": event.message or None,
        "created_time": epoch_ms(event.time),
        "first_seen_time": _ms(alert.get("first_seen")),
        "last_seen_time": _ms(alert.get("time")),
        "analytic": analytic,
        "attacks": attacks or None,
        "types": _strings(alert.get("owasp_llm")) or None,
        "related_events": related or None,
        "related_events_count": len(related) or None,
    })


def _evidence(event: SecurityEvent) -> list[dict[str, Any]] | None:
    endpoint = _endpoint(event.src_ip)
    if not event.actor and endpoint is None:
        return None
    return [_compact({"actor": {"user": _user(event.actor)} if event.actor else None,
                      "src_endpoint": endpoint})]


def _detection(event: SecurityEvent, out: dict[str, Any], placed: set[str]) -> None:
    alert = _dict(event.attributes.get("alert"))
    out["finding_info"] = _finding_info(event, alert)
    out["status_id"], out["status"] = (1, "New") if out["activity_id"] == 1 else (0, "Unknown")
    out["is_alert"] = True
    if (count := _int(alert.get("count"))) is not None:
        out["count"] = count
    evidences = _evidence(event)
    if evidences:
        out["evidences"] = evidences
        placed.update({"actor", "src_ip"})


def _compliance(event: SecurityEvent, out: dict[str, Any], placed: set[str]) -> None:
    out["finding_info"] = _finding_info(event, {})
    status = {Outcome.SUCCESS: (1, "Pass"), Outcome.FAILURE: (3, "Fail")}.get(
        event.outcome, (0, "Unknown"))
    out["compliance"] = {"status_id": status[0], "status": status[1]}
    out["status_id"], out["status"] = (1, "New") if out["activity_id"] == 1 else (0, "Unknown")
    evidences = _evidence(event)
    if evidences:
        out["evidences"] = evidences
        placed.update({"actor", "src_ip"})


def _incident(event: SecurityEvent, out: dict[str, Any], placed: set[str]) -> None:
    incident = _dict(event.attributes.get("incident"))
    uid = event.resource or (f"incident/{incident['id']}" if "id" in incident else event.id)
    title = _text(incident.get("title")) or event.message or "incident"
    infos = [_compact({
        "uid": uid, "title": title, "desc": event.message or None,
        "created_time": _ms(incident.get("detected_at")),
        "first_seen_time": _ms(incident.get("first_event_at")),
        "modified_time": _ms(incident.get("updated_at")),
    })]
    alert = _dict(event.attributes.get("alert"))
    if alert:
        infos.append(_finding_info(event, alert))
    out["finding_info_list"] = infos
    placed.add("resource")
    out["desc"] = title
    # tsuba assigns incidents to its responders as a group, not to one person.
    out["assignee_group"] = {"name": "tsuba-soar"}
    out["status_id"], out["status"] = _INCIDENT_STATUS.get(
        str(incident.get("state")), (0, "Unknown"))
    if (state := _text(incident.get("state"))) is not None:
        out["status_detail"] = state
    if (prio := _PRIORITY.get(str(incident.get("severity")))) is not None:
        out["priority_id"], out["priority"] = prio
    if incident.get("resolution") == "false_positive":
        out["verdict_id"], out["verdict"] = 1, "False Positive"
    if (start := _ms(incident.get("first_event_at"))) is not None:
        out["start_time"] = start
    if (alerts := _int(incident.get("alert_count"))) is not None:
        out["count"] = alerts


def _authentication(event: SecurityEvent, out: dict[str, Any], placed: set[str]) -> None:
    attrs = event.attributes
    out["user"] = _user(event.actor, credential_uid=_text(attrs.get("credential_id")))
    out["service"] = {"name": "tsuba"}
    request = _http_request(event)
    if request:
        out["http_request"] = request
        placed.add("resource")
    if (method := _text(attrs.get("method"))) is not None:
        out["auth_protocol_id"], out["auth_protocol"] = 99, method
    if event.outcome is Outcome.FAILURE and (reason := _text(attrs.get("reason"))):
        out["status_detail"] = reason


def _http_request(event: SecurityEvent) -> dict[str, Any] | None:
    attrs = event.attributes
    method = _text(attrs.get("http_method"))
    request = _compact({
        "http_method": method.upper() if method and method.upper() in _HTTP_METHODS else None,
        "user_agent": _text(attrs.get("user_agent")),
        "url": {"path": event.resource} if event.resource else None,
    })
    return request or None


def _api(event: SecurityEvent, out: dict[str, Any], placed: set[str]) -> None:
    attrs = event.attributes
    operation = _text(attrs.get("route")) or _text(attrs.get("action")) or event.activity
    response = _compact({
        "code": _int(attrs.get("status")),
        "error": _text(_dict(attrs.get("error")).get("code")),
        "error_message": _text(_dict(attrs.get("error")).get("message")),
    })
    out["api"] = _compact({
        "operation": operation or UNKNOWN,
        "request": {"uid": event.correlation_id} if event.correlation_id else None,
        "response": response or None,
    })
    out.setdefault("src_endpoint", {"name": UNKNOWN})
    _ai_operation(event, out)


def _ai_operation(event: SecurityEvent, out: dict[str, Any]) -> None:
    """The AI Operation profile: the model served and its provider, and the tokens used."""
    attrs = event.attributes
    model = event.resource.removeprefix("model/") if event.resource and \
        event.resource.startswith("model/") else _text(attrs.get("model"))
    provider = _text(_dict(attrs.get("upstream")).get("name"))
    tokens = _dict(attrs.get("tokens"))
    prompt, completion = _int(tokens.get("prompt")), _int(tokens.get("completion"))
    used = False
    if model and provider:
        out["ai_model"] = {"name": model, "ai_provider": provider}
        used = True
    if provider and (prompt is not None or completion is not None):
        out["message_context"] = _compact({
            "service": {"name": provider},
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": (prompt or 0) + (completion or 0),
        })
        used = True
    if used:
        out["metadata"]["profiles"] = [AI_PROFILE]


def _file(event: SecurityEvent, out: dict[str, Any], placed: set[str]) -> None:
    path = event.resource or UNKNOWN
    out["file"] = {"name": path.rstrip("/").rsplit("/", 1)[-1] or path, "path": path,
                   "type_id": 0, "type": "Unknown"}
    out["device"] = {"type_id": 0, "type": "Unknown", "name": UNKNOWN}
    placed.add("resource")


def _account(event: SecurityEvent, out: dict[str, Any], placed: set[str]) -> None:
    out["user"] = _user(event.resource)
    placed.add("resource")


def _authorize(event: SecurityEvent, out: dict[str, Any], placed: set[str]) -> None:
    out["user"] = _user(event.actor)
    out["privileges"] = [_text(event.attributes.get("action")) or event.activity or UNKNOWN]


def _entity(event: SecurityEvent, out: dict[str, Any], placed: set[str]) -> None:
    out["entity"] = {"name": event.resource or UNKNOWN}
    placed.add("resource")


def _datastore(event: SecurityEvent, out: dict[str, Any], placed: set[str]) -> None:
    out["table"] = {"name": event.resource or UNKNOWN}
    out.setdefault("src_endpoint", {"name": UNKNOWN})
    placed.add("resource")


_Mapper = Callable[["SecurityEvent", dict[str, Any], set[str]], None]
_MAPPERS: dict[EventClass, _Mapper] = {
    EventClass.FILE_ACTIVITY: _file,
    EventClass.DETECTION_FINDING: _detection,
    EventClass.INCIDENT_FINDING: _incident,
    EventClass.COMPLIANCE_FINDING: _compliance,
    EventClass.ACCOUNT_CHANGE: _account,
    EventClass.AUTHENTICATION: _authentication,
    EventClass.AUTHORIZE_SESSION: _authorize,
    EventClass.ENTITY_MANAGEMENT: _entity,
    EventClass.API_ACTIVITY: _api,
    EventClass.DATASTORE_ACTIVITY: _datastore,
}
# Classes with top-level actor and src_endpoint (findings carry them as evidence instead).
_HAS_ACTOR = frozenset({EventClass.FILE_ACTIVITY, EventClass.ACCOUNT_CHANGE,
                        EventClass.AUTHENTICATION, EventClass.AUTHORIZE_SESSION,
                        EventClass.ENTITY_MANAGEMENT, EventClass.API_ACTIVITY,
                        EventClass.DATASTORE_ACTIVITY})
_HAS_SRC = _HAS_ACTOR - {EventClass.FILE_ACTIVITY}
_HAS_RESOURCES = frozenset({EventClass.API_ACTIVITY, EventClass.DETECTION_FINDING,
                            EventClass.COMPLIANCE_FINDING})
_ACTOR_REQUIRED = frozenset({EventClass.FILE_ACTIVITY, EventClass.API_ACTIVITY,
                             EventClass.DATASTORE_ACTIVITY})


def _to_ocsf(event: SecurityEvent) -> dict[str, Any]:
    cls = event.event_class
    cls_uid = cls.ocsf_uid
    activity_id, activity_name = ocsf_activity(cls, event.activity)
    type_caption = activity_name if activity_id != 99 else "Other"
    severity = int(event.severity)
    status_id = event.outcome.ocsf_status_id
    out: dict[str, Any] = {
        "class_uid": cls_uid,
        "class_name": cls.ocsf_name,
        "category_uid": cls.ocsf_category,
        "category_name": _CATEGORY_NAME[cls.ocsf_category],
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": cls_uid * 100 + activity_id,
        "type_name": f"{cls.ocsf_name}: {type_caption}",
        "severity_id": severity,
        "severity": _SEVERITY_CAPTION[severity],
        "status_id": status_id,
        "status": {0: "Unknown", 1: "Success", 2: "Failure"}[status_id],
        "time": epoch_ms(event.time),
        "message": event.message,
        "metadata": _compact({
            "uid": event.id,
            "version": OCSF_VERSION,
            "product": {"name": "tsuba", "vendor_name": "tsuba", "version": __version__},
            "correlation_uid": event.correlation_id,
        }),
    }
    placed: set[str] = set()
    if cls in _HAS_ACTOR and (event.actor or cls in _ACTOR_REQUIRED):
        out["actor"] = {"user": _user(event.actor)}
        placed.add("actor")
    if cls in _HAS_SRC and (endpoint := _endpoint(event.src_ip)) is not None:
        out["src_endpoint"] = endpoint
        placed.add("src_ip")
    if cls in _HAS_RESOURCES and event.resource:
        out["resources"] = [{"name": event.resource}]
        placed.add("resource")
    _MAPPERS[cls](event, out, placed)
    unmapped = dict(event.attributes)
    for name in ("actor", "src_ip", "resource"):
        value = getattr(event, name)
        if value and name not in placed:
            unmapped[name if name not in unmapped else f"event.{name}"] = value
    if unmapped:
        out["unmapped"] = unmapped
    return out
