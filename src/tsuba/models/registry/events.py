"""Security events of the model registry: registrations and every status change."""

from __future__ import annotations

from typing import Any

from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity
from tsuba.models.registry.records import VersionInfo

# Quarantine means someone judged a model unsafe to serve: an alert-worthy change.
_SEVERITY = {"active": Severity.MEDIUM, "quarantined": Severity.HIGH, "retired": Severity.LOW}
_VERB = {"active": "released", "quarantined": "quarantined", "retired": "retired"}


def registered_event(info: VersionInfo, *, actor: str) -> SecurityEvent:
    return SecurityEvent(
        event_class=EventClass.ENTITY_MANAGEMENT,
        activity="create",
        severity=Severity.INFO,
        actor=actor,
        resource=f"model/{info.ref}",
        outcome=Outcome.SUCCESS,
        message=f"registered model {info.ref} ({info.file_count} files, signed by "
        f"{info.signed_by})",
        attributes=_attributes(info),
    )


def status_event(
    info: VersionInfo, previous: str, *, actor: str, reason: str | None
) -> SecurityEvent:
    because = f": {reason}" if reason else ""
    return SecurityEvent(
        event_class=EventClass.ENTITY_MANAGEMENT,
        activity="update",
        severity=_SEVERITY[info.status],
        actor=actor,
        resource=f"model/{info.ref}",
        outcome=Outcome.SUCCESS,
        message=f"{_VERB[info.status]} model {info.ref} (was {previous}){because}",
        attributes={**_attributes(info), "previous_status": previous, "reason": reason},
    )


def _attributes(info: VersionInfo) -> dict[str, Any]:
    return {
        "model": info.name,
        "version": info.version,
        "status": info.status,
        "root_digest": info.root_digest,
        "key_hint": info.key_hint,
        "source": info.source,
        "datasets": [d.digest for d in info.datasets],
        "parents": list(info.parents),
    }


__all__ = ["registered_event", "status_event"]
