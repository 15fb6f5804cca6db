"""The one event type every surface reports its decisions with, mapped onto OCSF.

An event is a value: it is built, published, appended to the audit log as canonical JSON
bytes, and exported.  The audit log keeps those bytes verbatim, so verification never
depends on re-serialising.
"""

from __future__ import annotations

import json
import os
import time as _time
import uuid
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


# class -> (class_uid, category_uid, caption), from the OCSF 1.3 schema.
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


# Default activity per class: (activity name, OCSF activity_id).
_ACTIVITY_IDS: dict[str, int] = {
    "create": 1, "read": 2, "update": 3, "delete": 4, "logon": 1, "logoff": 2,
    "authentication_ticket": 3, "service_ticket": 4, "assign_privileges": 1,
    "password_change": 1, "enable": 2, "disable": 5, "lock": 6,
    "query": 1, "append": 1, "verify": 2, "other": 99,
}


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
        """The event as an OCSF 1.3 base event of its class."""
        cls_uid = self.event_class.ocsf_uid
        activity_id = _ACTIVITY_IDS.get(self.activity, 99)
        out: dict[str, Any] = {
            "class_uid": cls_uid,
            "class_name": self.event_class.ocsf_name,
            "category_uid": self.event_class.ocsf_category,
            "activity_id": activity_id,
            "activity_name": self.activity,
            "type_uid": cls_uid * 100 + activity_id,
            "severity_id": int(self.severity),
            "severity": self.severity.name.capitalize(),
            "status_id": self.outcome.ocsf_status_id,
            "status": self.outcome.value.capitalize(),
            "time": int(self.time.timestamp() * 1000),
            "message": self.message,
            "metadata": {
                "uid": self.id,
                "version": "1.3.0",
                "product": {"name": "tsuba", "vendor_name": "tsuba"},
                **({"correlation_uid": self.correlation_id} if self.correlation_id else {}),
            },
            "unmapped": self.attributes,
        }
        if self.actor:
            out["actor"] = {"user": {"name": self.actor}}
        if self.resource:
            out["resources"] = [{"name": self.resource}]
        if self.src_ip:
            out["src_endpoint"] = {"ip": self.src_ip}
        return out


def canonical_json(data: Any) -> bytes:
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
