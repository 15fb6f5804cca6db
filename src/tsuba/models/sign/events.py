"""Security events for signing: who signed which model, with which key, over which digest."""

from __future__ import annotations

from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity
from tsuba.models.sign.signing import SignResult


def signed_event(result: SignResult, *, actor: str) -> SecurityEvent:
    return SecurityEvent(
        event_class=EventClass.FILE_ACTIVITY,
        activity="create",
        severity=Severity.INFO,
        actor=actor,
        resource=f"model-path/{result.path}",
        outcome=Outcome.SUCCESS,
        message=f"signed model {result.model_name} ({result.files} files) with {result.key}",
        attributes={
            "path": result.path,
            "signature": result.signature,
            "root_digest": result.root_digest,
            "key_hint": result.key_hint,
            "serialization": result.serialization,
        },
    )


__all__ = ["signed_event"]
