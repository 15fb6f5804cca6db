"""Security events for identity changes and, on request, for authorization decisions."""

from __future__ import annotations

from typing import Any

from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity
from tsuba.core.identity.policy import Decision


def change_event(
    event_class: EventClass,
    activity: str,
    *,
    actor: str,
    resource: str,
    message: str,
    attributes: dict[str, Any],
    severity: Severity = Severity.INFO,
) -> SecurityEvent:
    """A successful change to principals, roles, permissions or bindings."""
    return SecurityEvent(
        event_class=event_class,
        activity=activity,
        severity=severity,
        actor=actor,
        resource=resource,
        outcome=Outcome.SUCCESS,
        message=message,
        attributes=attributes,
    )


def decision_event(
    decision: Decision,
    principal: str,
    action: str,
    resource: str,
    *,
    event_class: EventClass = EventClass.AUTHORIZE_SESSION,
    correlation_id: str | None = None,
    src_ip: str | None = None,
) -> SecurityEvent:
    """The event a caller records for one decision: success if allowed, failure if denied.

    ``event_class`` may be ``API_ACTIVITY`` where the decision is part of an API call record.
    """
    if event_class not in (EventClass.AUTHORIZE_SESSION, EventClass.API_ACTIVITY):
        raise ValueError("a decision event is of class authorize_session or api_activity")
    verdict = "allowed" if decision.allowed else "denied"
    return SecurityEvent(
        event_class=event_class,
        activity="authorize",
        severity=Severity.INFO if decision.allowed else Severity.LOW,
        actor=principal,
        resource=resource,
        outcome=Outcome.SUCCESS if decision.allowed else Outcome.FAILURE,
        message=f"{principal} {verdict} {action} on {resource}: {decision.reason}",
        correlation_id=correlation_id,
        src_ip=src_ip,
        attributes={
            "action": action,
            "allowed": decision.allowed,
            "reason": decision.reason,
            "matched_rule": decision.matched_rule.to_dict() if decision.matched_rule else None,
        },
    )
