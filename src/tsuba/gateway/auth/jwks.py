"""Issuers' public keys (JWKS), fetched with httpx and cached with rotation.

Keys are refetched when older than ``max_age``, and once more when a token names a kid the
cache does not hold (an issuer rotated its keys), but at most once per ``min_refetch`` per
issuer so that tokens with made-up kids cannot make tsuba hammer the issuer.  A failed
refresh keeps the keys already held; with none held the token is refused (fail closed).
Symmetric (``oct``) keys and keys not meant for signatures are never used.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from tsuba.core.config import AuthSettings
from tsuba.gateway.auth.failures import AuthFailure

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 1 << 20
_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})

Issuer = AuthSettings.Issuer


def key_fits(jwk: dict[str, Any], alg: str) -> bool:
    """Whether a JWK may verify a token signed with ``alg`` (kty, curve, use, alg agree)."""
    ops = jwk.get("key_ops")
    if (
        jwk.get("use", "sig") != "sig"
        or (ops is not None and (not isinstance(ops, list) or "verify" not in ops))
        or ("alg" in jwk and jwk["alg"] != alg)
    ):
        return False
    kty, crv = jwk.get("kty"), jwk.get("crv")
    fits = {
        "RSA": alg in _RSA_ALGS,
        "EC": _EC_ALGS.get(str(crv)) == alg,
        "OKP": alg == "EdDSA" and crv in _OKP_CURVES,
    }
    return fits.get(str(kty), False)  # "oct" and anything unknown: never


@dataclass
class _IssuerKeys:
    jwks: list[dict[str, Any]] | None = None
    jwks_uri: str | None = None
    fetched_at: float = float("-inf")
    attempted_at: float = float("-inf")
    attempts: int = 0
    prepared: dict[tuple[str | None, str], PyJWK] = field(default_factory=dict)
    locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        found = self.locks.get(loop)
        if found is None:
            found = self.locks[loop] = asyncio.Lock()
        return found


class JwksCache:
    def __init__(
        self,
        *,
        max_age: float = 600.0,
        min_refetch: float = 30.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._max_age = max_age
        self._min_refetch = min_refetch
        self._timeout = timeout
        self._clock = clock
        self._transport = transport
        self._state: dict[str, _IssuerKeys] = {}
        self.fetches = 0  # how many JWKS documents were fetched (for tests and metrics)

    async def key(self, issuer: Issuer, kid: str | None, alg: str) -> PyJWK:
        """The key that verifies ``alg`` tokens with ``kid`` from ``issuer``, or AuthFailure."""
        state = self._state.setdefault(issuer.issuer, _IssuerKeys())
        stale = state.jwks is None or self._clock() - state.fetched_at > self._max_age
        if stale and self._may_fetch(state):
            await self._refresh(issuer, state)
        found = self._find(state, kid, alg)
        if found is None and self._may_fetch(state):
            await self._refresh(issuer, state)  # the issuer may have rotated its keys
            found = self._find(state, kid, alg)
        if found is not None:
            return found
        if state.jwks is None:
            raise AuthFailure(
                "cannot verify the token now: the issuer's signing keys could not be fetched",
                reason=f"no JWKS for issuer {issuer.issuer}", method="jwt",
            )
        shown = "none" if kid is None else repr(kid)[:80]
        raise AuthFailure(
            "token is signed with a key the issuer does not publish",
            reason=f"unknown kid {shown} for {alg} at issuer {issuer.issuer}", method="jwt",
        )

    def _may_fetch(self, state: _IssuerKeys) -> bool:
        return self._clock() - state.attempted_at >= self._min_refetch

    def _find(self, state: _IssuerKeys, kid: str | None, alg: str) -> PyJWK | None:
        if state.jwks is None:
            return None
        cached = state.prepared.get((kid, alg))
        if cached is not None:
            return cached
        fitting = [k for k in state.jwks if key_fits(k, alg)]
        if kid is None:
            # Without a kid only an unambiguous key set can be used.
            candidates = fitting if len(fitting) == 1 else []
        else:
            candidates = [k for k in fitting if k.get("kid") == kid]
        if len(candidates) != 1:
            return None
        try:
            prepared = PyJWK(candidates[0], algorithm=alg)
        except PyJWKError as exc:
            log.warning("unusable JWK %r: %s", kid, exc)
            return None
        state.prepared[(kid, alg)] = prepared
        return prepared

    async def _refresh(self, issuer: Issuer, state: _IssuerKeys) -> None:
        seen = state.attempts
        async with state.lock():
            if state.attempts != seen:
                return  # another request refreshed while this one waited
            state.attempts += 1
            state.attempted_at = self._clock()
            try:
                async with httpx.AsyncClient(
                    timeout=self._timeout, transport=self._transport, follow_redirects=False
                ) as client:
                    uri = state.jwks_uri or issuer.jwks_uri
                    if uri is None:
                        uri = await _discover(client, issuer.issuer)
                        state.jwks_uri = uri
                    document = await _get_json(client, uri)
                keys = document.get("keys")
                if not isinstance(keys, list):
                    raise ValueError("JWKS has no 'keys' list")
                self.fetches += 1
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("JWKS refresh for %s failed: %s", issuer.issuer, exc)
                return
            state.jwks = [k for k in keys if isinstance(k, dict)]
            state.prepared = {}
            state.fetched_at = self._clock()


async def _discover(client: httpx.AsyncClient, issuer: str) -> str:
    document = await _get_json(client, issuer.rstrip("/") + "/.well-known/openid-configuration")
    if document.get("issuer") != issuer:
        raise ValueError(f"discovery document names issuer {document.get('issuer')!r}")
    uri = document.get("jwks_uri")
    if not isinstance(uri, str):
        raise ValueError("discovery document has no jwks_uri")
    parts = urlsplit(uri)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ValueError(f"discovered jwks_uri {uri!r} is not https")
    return uri


async def _get_json(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    async with client.stream("GET", url, headers={"accept": "application/json"}) as response:
        if response.status_code != 200:
            raise ValueError(f"GET {url} answered {response.status_code}")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_DOCUMENT_BYTES:
                raise ValueError(f"GET {url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"GET {url} answered invalid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ValueError(f"GET {url} answered JSON that is not an object")
    return document
