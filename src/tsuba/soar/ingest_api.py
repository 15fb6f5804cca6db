"""External findings over HTTP: Falco alerts and Trivy reports into tsuba's incidents.

``POST /v1/soar/ingest/falco`` takes one Falco JSON alert, a JSON array of them, or JSON
lines (Falco's ``http_output``/falcosidekick send one object per request);
``POST /v1/soar/ingest/trivy`` takes a Trivy JSON report (schema 2).

The caller authenticates like any gateway client (API key, JWT, signed request) and needs
the permission ``soar:ingest`` on ``soar/ingest/falco`` or ``soar/ingest/trivy``.  The
whole body is checked before anything is kept; then each alert is recorded as a Detection
Finding (audit log first, so nothing accepted is lost) and filed as an incident, and the
answer says where each went.  Every request, refused or not, is itself an audit event.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from tsuba.core import errors as e
from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity
from tsuba.core.platform import Platform
from tsuba.soar.external import falco_alert, falco_alerts, trivy_alert
from tsuba.soar.incidents import IncidentService
from tsuba.soar.rules import Alert
from tsuba.soar.service import incident_policy

ACTION = "soar:ingest"
Source = Literal["falco", "trivy"]

router = APIRouter(prefix="/v1/soar/ingest", tags=["soar"])

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON or not a Falco alert / Trivy report"},
    401: {"description": "No valid credential"},
    403: {"description": "The principal lacks soar:ingest"},
    404: {"description": "Ingest is disabled (soar.ingest_enabled)"},
    413: {"description": "Body larger than soar.ingest_max_body_bytes"},
}


class _TooLarge(e.InputError):
    code = "request_too_large"


@router.post("/falco", responses=_ERROR_RESPONSES)
async def ingest_falco(request: Request) -> JSONResponse:
    """File Falco runtime alerts (one JSON object, an array, or JSON lines) as incidents."""
    return await _ingest(request, "falco")


@router.post("/trivy", responses=_ERROR_RESPONSES)
async def ingest_trivy(request: Request) -> JSONResponse:
    """File a Trivy JSON report's serious findings (soar.trivy_min_severity and up) as one
    alert for the artifact."""
    return await _ingest(request, "trivy")


async def _ingest(request: Request, source: Source) -> JSONResponse:
    platform: Platform = request.app.state.platform
    client_ip = request.client.host if request.client else ""
    principal: str | None = None
    try:
        soar = platform.settings.soar
        if not soar.ingest_enabled:
            raise e.NotFoundError("ingest over HTTP is disabled: set soar.ingest_enabled")
        body = await _body(request, soar.ingest_max_body_bytes,
                           platform.settings.gateway.validation.body_timeout_seconds)
        principal = await _authorize(request, platform, body, source, client_ip)
        alerts = _parse(body, source, soar.trivy_min_severity)
        filed = await run_in_threadpool(_file, platform, alerts, principal, source, client_ip)
    except e.TsubaError as exc:
        status = 413 if isinstance(exc, _TooLarge) else _status(exc)
        if not isinstance(exc, e.AuthenticationError | e.AuthorizationError):
            await _record_quietly(platform, _request_event(
                source, principal, client_ip, status, f"refused: {exc.message}",
                error={"code": exc.code, "message": exc.message}))
        kind = "invalid_request_error" if status < 500 else "server_error"
        headers = {"WWW-Authenticate": 'Bearer realm="tsuba"'} if status == 401 else None
        return JSONResponse(
            {"error": {"message": exc.message, "type": kind, "code": exc.code, "param": None}},
            status_code=status, headers=headers)
    return JSONResponse({"source": source, "accepted": len(filed), "alerts": filed})


def _status(exc: e.TsubaError) -> int:
    from tsuba.gateway.errors import status_for  # noqa: PLC0415 - the server's one mapping

    return status_for(exc)


async def _body(request: Request, limit: int, timeout: float) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge(f"request body is larger than the ingest limit of {limit} bytes "
                        "(soar.ingest_max_body_bytes)")
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _TooLarge(f"request body is larger than the ingest limit of {limit} "
                                    "bytes (soar.ingest_max_body_bytes)")
                parts.append(chunk)
    except TimeoutError:
        raise e.InputError(f"the request body did not arrive within {timeout:g} s") from None
    return b"".join(parts)


async def _authorize(
    request: Request, platform: Platform, body: bytes, source: Source, client_ip: str
) -> str:
    """The caller's principal, once authenticated and allowed; each refusal is audited."""
    from tsuba.gateway.auth.events import auth_event  # noqa: PLC0415
    from tsuba.gateway.context import AuthRequest  # noqa: PLC0415

    gateway = request.app.state.gateway
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    auth_request = AuthRequest(request.method, target,
                               {k.lower(): v for k, v in request.headers.items()}, body,
                               client_ip)
    try:
        identity = await gateway.authenticator.authenticate(auth_request)
    except e.AuthenticationError as exc:
        await _record_quietly(platform, auth_event(exc, auth_request))
        raise
    resource = f"soar/ingest/{source}"
    decision = await run_in_threadpool(gateway.authorizer.authorize, identity.principal,
                                       ACTION, resource, version=identity.policy_version)
    if not decision.allowed:
        await _record_quietly(platform, SecurityEvent(
            event_class=EventClass.AUTHORIZE_SESSION, activity="other",
            severity=Severity.MEDIUM, actor=identity.principal, resource=resource,
            outcome=Outcome.FAILURE, src_ip=client_ip or None,
            message=f"'{identity.principal}' may not {ACTION} {resource}: {decision.reason}",
            attributes={"action": ACTION, "reason": decision.reason,
                        "credential_id": identity.credential_id},
        ))
        raise e.AuthorizationError(
            f"'{identity.principal}' may not ingest {source} findings: {decision.reason} "
            f"(grant {ACTION} on {resource})")
    return str(identity.principal)


def _parse(body: bytes, source: Source, trivy_min: str) -> list[Alert]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise e.InputError("the body is not UTF-8 text") from None
    if not text.strip():
        raise e.InputError(f"the body is empty: send a {source} JSON document")
    if source == "trivy":
        try:
            report = json.loads(text)
        except json.JSONDecodeError as exc:
            raise e.InputError(f"not valid JSON: {exc.msg} at line {exc.lineno} column "
                               f"{exc.colno}") from None
        alert = trivy_alert(report, min_severity=Severity.parse(trivy_min))
        return [alert] if alert is not None else []
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        return list(falco_alerts(text.splitlines()))  # JSON lines, or malformed (named line)
    if isinstance(whole, list):
        if not whole:
            raise e.InputError("the array holds no Falco alerts")
        return [falco_alert(item, f"alert {i}") for i, item in enumerate(whole)]
    return [falco_alert(whole)]


def _file(
    platform: Platform, alerts: list[Alert], principal: str, source: Source, client_ip: str
) -> list[dict[str, Any]]:
    incidents = IncidentService(platform.engine, emit=platform.record, actor=principal,
                                policy=incident_policy(platform.settings.soar))
    filed: list[dict[str, Any]] = []
    for alert in alerts:
        finding = alert.to_event()
        platform.record(finding.model_copy(update={"attributes": {
            **finding.attributes, "source": source, "ingested_by": principal}}))
        result = incidents.ingest(alert)
        filed.append({"alert": alert.id, "rule_id": alert.rule_id,
                      "severity": alert.severity.name.lower(),
                      "incident": result.incident.id,
                      "incident_severity": result.incident.severity.value,
                      "opened": result.opened, "deduplicated": result.deduplicated})
    platform.record(_request_event(
        source, principal, client_ip, 200, f"{len(filed)} {source} alert(s) accepted",
        accepted=len(filed)))
    return filed


def _request_event(
    source: Source, principal: str | None, client_ip: str, status: int, message: str,
    **attributes: Any,
) -> SecurityEvent:
    return SecurityEvent(
        event_class=EventClass.API_ACTIVITY, activity="create",
        severity=Severity.INFO if status < 400 else Severity.LOW,
        actor=principal, resource=f"soar/ingest/{source}",
        outcome=Outcome.SUCCESS if status < 400 else Outcome.FAILURE,
        src_ip=client_ip or None, message=f"POST /v1/soar/ingest/{source}: {status} {message}",
        attributes={"route": f"soar.ingest.{source}", "status": status, **attributes},
    )


async def _record_quietly(platform: Platform, event: SecurityEvent) -> None:
    """Record a refusal; if even that fails the refusal still stands (fail closed)."""
    try:
        await run_in_threadpool(platform.record, event)
    except e.TsubaError:
        import logging  # noqa: PLC0415

        logging.getLogger("tsuba.soar").error("could not record refused ingest: %s",
                                              event.message)
