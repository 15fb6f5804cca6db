"""A refused credential: one message for the client, one specific reason for the audit log.

The client learns only what helps a legitimate caller (missing, malformed, expired) and
never which part of a secret matched; the audit log gets the exact reason.
"""

from __future__ import annotations

from tsuba.core.errors import AuthenticationError
from tsuba.core.events import Severity
from tsuba.gateway.context import AuthMethod


class AuthFailure(AuthenticationError):
    """Authentication refused; ``reason`` is for the audit log, ``message`` for the client."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        method: AuthMethod | None = None,
        credential_id: str | None = None,
        principal: str | None = None,
        severity: Severity = Severity.LOW,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.method = method
        self.credential_id = credential_id
        self.principal = principal
        self.severity = severity


MISSING = "missing credentials: send Authorization: Bearer <api key>"
