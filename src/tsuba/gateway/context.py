"""The contracts between the gateway's pipeline stages.

authenticate -> authorize -> admit (limits) -> guards(in) -> upstream -> guards(out) ->
settle.  Each stage is a small object behind a protocol so stages can be tested alone and
replaced by configuration (memory or Redis limits, API keys or JWT).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

AuthMethod = Literal["api_key", "jwt", "hmac"]


@dataclass(frozen=True)
class AuthRequest:
    """What an authenticator may look at; header names are lower-case."""

    method: str
    path: str  # path with query string, as sent
    headers: Mapping[str, str]
    body: bytes
    client_ip: str


@dataclass(frozen=True)
class Identity:
    """Who is calling, proven how."""

    principal: str
    method: AuthMethod
    credential_id: str  # API key prefix id, JWT "iss|sub|kid", or signing key id
    scopes: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)
    # The policy version read together with the credential, when the authenticator read it;
    # the authorizer then decides at that version instead of reading it again.
    policy_version: int | None = None


class Authenticator(Protocol):
    async def authenticate(self, request: AuthRequest) -> Identity:
        """Return the caller's identity or raise AuthenticationError (401)."""
        ...


@dataclass(frozen=True)
class LimitRequest:
    principal: str
    model: str | None
    estimated_tokens: int  # prompt tokens + max output tokens: what may be spent
    estimated_cost: float = 0.0  # in the configured spend unit


class Admission(Protocol):
    """A granted request: its reservation is settled with real usage, or released."""

    headers: Mapping[str, str]  # RateLimit-* headers for the response

    async def settle(self, actual_tokens: int, actual_cost: float = 0.0) -> None: ...

    async def release(self) -> None: ...


class Limiter(Protocol):
    async def admit(self, request: LimitRequest) -> Admission:
        """Reserve capacity atomically or raise RateLimitedError (429) with Retry-After."""
        ...
