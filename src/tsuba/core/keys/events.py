"""Security events for key lifecycle changes: what changed, never any key material."""

from __future__ import annotations

from typing import Literal

from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity
from tsuba.core.keys.base import KeyInfo

KeyActivity = Literal["create", "rotate", "retire"]

# Retiring destroys the ability to decrypt what a version protected: worth a closer look.
_SEVERITY: dict[KeyActivity, Severity] = {
    "create": Severity.INFO,
    "rotate": Severity.INFO,
    "retire": Severity.MEDIUM,
}


def key_event(
    activity: KeyActivity, info: KeyInfo, *, actor: str, version: int | None = None
) -> SecurityEvent:
    """The event recording a successful ``activity`` on the key ``info`` describes."""
    changed = version if version is not None else info.current_version
    verb = {"create": "created", "rotate": "rotated", "retire": "retired"}[activity]
    return SecurityEvent(
        event_class=EventClass.ENTITY_MANAGEMENT,
        activity=activity,
        severity=_SEVERITY[activity],
        actor=actor,
        resource=f"key/{info.name}",
        outcome=Outcome.SUCCESS,
        message=f"{verb} {info.kind.value} key '{info.name}' version {changed} "
        f"({info.backend} backend)",
        attributes={
            "key": info.name,
            "kind": info.kind.value,
            "version": changed,
            "current_version": info.current_version,
            "retired": list(info.retired),
            "backend": info.backend,
        },
    )
