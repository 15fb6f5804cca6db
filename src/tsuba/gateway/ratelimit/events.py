"""Limit decisions as security events (OCSF API Activity, activity ``rate_limit``)."""

from __future__ import annotations

from tsuba.core.errors import RateLimitedError
from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity
from tsuba.gateway.context import Admission, LimitRequest
from tsuba.gateway.ratelimit.admission import LimitExceeded, Reservation
from tsuba.gateway.ratelimit.headers import retry_seconds


def limit_event(
    request: LimitRequest,
    decision: Admission | RateLimitedError,
    *,
    correlation_id: str | None = None,
    src_ip: str | None = None,
) -> SecurityEvent:
    """The event for one admission or refusal.

    A refusal is a failure naming the limit, what remains of it and when to retry; an
    admission names the limit with the least room left, so a dashboard sees budgets drain
    before they refuse anyone.
    """
    attributes: dict[str, object] = {"estimated_tokens": request.estimated_tokens}
    if request.model is not None:
        attributes["model"] = request.model
    if isinstance(decision, RateLimitedError):
        outcome, severity, message = Outcome.FAILURE, Severity.LOW, decision.message
        attributes["retry_after"] = retry_seconds(decision.retry_after)
        if isinstance(decision, LimitExceeded):
            attributes["limit"] = decision.limit
            attributes["remaining"] = decision.remaining
    else:
        outcome, severity, message = Outcome.SUCCESS, Severity.INFO, "admitted"
        tight = decision.tightest() if isinstance(decision, Reservation) else None
        if tight is not None:
            check, state = tight
            attributes["limit"] = check.name
            attributes["remaining"] = state.remaining
    return SecurityEvent(
        event_class=EventClass.API_ACTIVITY,
        activity="rate_limit",
        severity=severity,
        actor=request.principal,
        resource=f"model/{request.model}" if request.model is not None else None,
        outcome=outcome,
        message=message,
        correlation_id=correlation_id,
        src_ip=src_ip,
        attributes=attributes,
    )
