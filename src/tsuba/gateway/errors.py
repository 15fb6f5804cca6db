"""Errors as OpenAI-style JSON bodies, so SDK clients show the message."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from tsuba.core import errors as e

_STATUS: list[tuple[type[e.TsubaError], int]] = [
    (e.NotFoundError, 404),
    (e.InputError, 400),
    (e.UsageError, 400),
    (e.ConflictError, 409),
    (e.AuthenticationError, 401),
    (e.AuthorizationError, 403),
    (e.RateLimitedError, 429),
    (e.IntegrityError, 409),
    (e.StorageError, 503),
    (e.KeyStoreError, 503),
    (e.HomeError, 503),
    (e.ConfigError, 500),
]


def status_for(exc: e.TsubaError) -> int:
    if isinstance(exc, e.UpstreamError):
        return exc.status
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(message: str, kind: str, code: str) -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


async def tsuba_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.TsubaError)
    status = status_for(exc)
    kind = "invalid_request_error" if status < 500 else "server_error"
    headers: dict[str, str] = {}
    if isinstance(exc, e.RateLimitedError):
        headers = {"Retry-After": str(max(1, round(exc.retry_after))), **exc.headers}
    elif isinstance(exc, e.AuthenticationError):
        headers = {"WWW-Authenticate": 'Bearer realm="tsuba"'}
    return JSONResponse(
        error_body(exc.message, kind, exc.code), status_code=status, headers=headers
    )
