"""Gateway events as the rules read them.

A gateway request summary (API Activity) carries its authentication outcome nested under
``auth``; the rules are written against the Authentication shape (``credential_id`` and
``method`` at the top of the attributes).  The live loop and ``tsuba detect replay`` both
read events through this view, so a rule fires the same way on both.
"""

from __future__ import annotations

from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity


def authentication_view(event: SecurityEvent) -> list[SecurityEvent]:
    """The event as the rules read it: a gateway request summary carries its authentication
    outcome nested under ``auth`` (a success inside an API Activity); the rules follow the
    Authentication shape (``credential_id``, ``method`` at the top of the attributes).  So a
    failed logon gets those fields lifted, and a request that authenticated is also read as
    the Authentication success it stands for (same id, so alerts cite the stored event)."""
    auth = event.attributes.get("auth")
    if not isinstance(auth, dict) or "credential_id" in event.attributes:
        return [event]
    lifted = {k: auth[k] for k in ("credential_id", "method", "reason")
              if isinstance(auth.get(k), str)}
    if event.event_class is EventClass.AUTHENTICATION:
        return [event.model_copy(update={"attributes": {**event.attributes, **lifted}})]
    if event.event_class is EventClass.API_ACTIVITY and auth.get("outcome") == "success":
        logon = event.model_copy(update={
            "event_class": EventClass.AUTHENTICATION, "activity": "logon",
            "outcome": Outcome.SUCCESS, "severity": Severity.INFO,
            "attributes": {**lifted, "path": event.attributes.get("path")}})
        return [event, logon]
    return [event]
