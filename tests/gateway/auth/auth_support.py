"""Helpers shared by the authentication tests: run a coroutine, build requests."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from tsuba.gateway.context import AuthRequest

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def request(
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
    path: str = "/v1/chat/completions",
    body: bytes = b"{}",
    ip: str = "203.0.113.9",
) -> AuthRequest:
    return AuthRequest(
        method=method, path=path, headers={k.lower(): v for k, v in (headers or {}).items()},
        body=body, client_ip=ip,
    )


def bearer(token: str) -> AuthRequest:
    return request({"authorization": f"Bearer {token}"})
