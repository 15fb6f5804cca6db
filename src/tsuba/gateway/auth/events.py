"""The security event of one authentication: who, from where, by which credential, why not.

Never the secret: the credential is named by its public id (API key prefix, JWT
``iss|sub|kid``), and a failure carries the specific reason the client was not told.
"""

from __future__ import annotations

from tsuba.core.errors import AuthenticationError
from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity
from tsuba.gateway.auth.failures import AuthFailure
from tsuba.gateway.context import AuthRequest, Identity


def auth_event(
    result: Identity | AuthenticationError,
    request: AuthRequest,
    correlation_id: str | None = None,
) -> SecurityEvent:
    """One ``authentication`` event: success for an identity, failure for an error."""
    path = request.path.split("?", 1)[0][:512]  # a query may carry secrets: leave it out
    common = {
        "http_method": request.method[:16],
        "user_agent": request.headers.get("user-agent", "")[:256] or None,
    }
    if isinstance(result, Identity):
        return SecurityEvent(
            event_class=EventClass.AUTHENTICATION,
            activity="logon",
            severity=Severity.INFO,
            actor=result.principal,
            resource=path,
            outcome=Outcome.SUCCESS,
            message=f"{result.principal} authenticated by {result.method} ({result.credential_id})",
            correlation_id=correlation_id,
            src_ip=request.client_ip or None,
            attributes={
                **common,
                "method": result.method,
                "credential_id": result.credential_id,
                "scopes": sorted(result.scopes),
            },
        )
    failure = result if isinstance(result, AuthFailure) else None
    reason = failure.reason if failure else result.message
    return SecurityEvent(
        event_class=EventClass.AUTHENTICATION,
        activity="logon",
        severity=failure.severity if failure else Severity.LOW,
        actor=failure.principal if failure else None,
        resource=path,
        outcome=Outcome.FAILURE,
        message=f"authentication failed: {reason}",
        correlation_id=correlation_id,
        src_ip=request.client_ip or None,
        attributes={
            **common,
            "method": failure.method if failure else None,
            "credential_id": failure.credential_id if failure else None,
            "reason": reason,
            "client_message": result.message,
        },
    )
