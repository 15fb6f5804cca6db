"""The events the bus publishes about itself: a dead-lettered event, a stalled subscriber.

A lost or stuck security event is itself security-relevant (an attacker who can make a
detector fail would otherwise blind it), so these are Detection Findings that SOAR can
alert on like any other.
"""

from __future__ import annotations

from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity

ACTOR = "tsuba.bus"
NOTICE_KEY = "bus_notice"


def is_notice(event: SecurityEvent | None) -> bool:
    return event is not None and event.actor == ACTOR and NOTICE_KEY in event.attributes


def dead_letter_notice(
    subscriber: str,
    position: int,
    event: SecurityEvent | None,
    error: str,
    attempts: int,
) -> SecurityEvent:
    return SecurityEvent(
        event_class=EventClass.DETECTION_FINDING,
        activity="create",
        severity=Severity.HIGH,
        actor=ACTOR,
        resource=f"bus/subscriber/{subscriber}",
        outcome=Outcome.FAILURE,
        message=(
            f"subscriber {subscriber!r} gave up on the event at position {position} after "
            f"{attempts} attempt(s); it is kept in the dead-letter table: {error}"
        ),
        correlation_id=event.correlation_id if event is not None else None,
        attributes={
            NOTICE_KEY: "dead_letter",
            "subscriber": subscriber,
            "position": position,
            "event_id": event.id if event is not None else None,
            "attempts": attempts,
            "error": error,
        },
    )


def stall_notice(subscriber: str, position: int, seconds: float) -> SecurityEvent:
    return SecurityEvent(
        event_class=EventClass.DETECTION_FINDING,
        activity="create",
        severity=Severity.MEDIUM,
        actor=ACTOR,
        resource=f"bus/subscriber/{subscriber}",
        outcome=Outcome.FAILURE,
        message=(
            f"subscriber {subscriber!r} has been handling the event at position {position} "
            f"for {seconds:.0f}s; its events queue up while other subscribers continue"
        ),
        attributes={
            NOTICE_KEY: "stalled",
            "subscriber": subscriber,
            "position": position,
            "seconds": round(seconds, 3),
        },
    )
