"""JWT bearer tokens from trusted OAuth2/OIDC issuers, verified with PyJWT.

The order matters: the issuer is chosen from the token's ``iss`` among configured ones
only; its algorithm allow-list (asymmetric only) is checked before any key is looked at;
the key comes from that issuer's JWKS and must fit the algorithm (a PyJWK bound to it, so
an RSA key can never be used as an HMAC secret); then signature, ``exp`` (required),
``nbf``, ``iat``, ``iss`` and ``aud`` are checked with the issuer's leeway.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Any

import jwt
from jwt import exceptions as jwt_errors

from tsuba.core.config import AuthSettings
from tsuba.core.events import Severity
from tsuba.gateway.auth.failures import AuthFailure
from tsuba.gateway.auth.jwks import JwksCache
from tsuba.gateway.context import Identity

Issuer = AuthSettings.Issuer

INVALID_TOKEN = "invalid bearer token"  # noqa: S105 (a message)
MAX_TOKEN_CHARS = 16_384


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def _segment(text: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"undecodable segment: {type(exc).__name__}") from exc
    if not isinstance(data, dict):
        raise ValueError("segment is not a JSON object")
    return data


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before verification, only to pick the issuer, algorithm and key.

    ``jwt.decode`` later parses the same token strictly and checks all of it again; peeking
    this way spares two strict parses per request.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not three dot-separated segments")
    return _segment(parts[0]), _segment(parts[1])


def _scopes(value: object) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    return frozenset()


def _fail(message: str, reason: str, *, principal: str | None = None,
          credential_id: str | None = None, severity: Severity = Severity.LOW) -> AuthFailure:
    return AuthFailure(
        message, reason=reason, method="jwt", principal=principal,
        credential_id=credential_id, severity=severity,
    )


class JwtAuthenticator:
    def __init__(self, issuers: Iterable[Issuer], jwks: JwksCache | None = None) -> None:
        self._issuers = {i.issuer: i for i in issuers}
        if not self._issuers:
            raise ValueError("JWT authentication needs at least one issuer")
        self.jwks = jwks or JwksCache()

    async def verify(self, token: str) -> Identity:
        if len(token) > MAX_TOKEN_CHARS:
            raise _fail(INVALID_TOKEN, f"token longer than {MAX_TOKEN_CHARS} characters")
        try:
            header, unverified = _peek(token)
        except ValueError as exc:
            raise _fail(INVALID_TOKEN + ": malformed JWT", f"malformed JWT: {exc}") from exc
        iss = unverified.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise _fail(
                "bearer token is from an issuer this gateway does not trust",
                f"untrusted issuer {str(iss)[:200]!r}", severity=Severity.MEDIUM,
            )
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in issuer.algorithms:
            raise _fail(
                f"bearer token algorithm {str(alg)[:20]!r} is not allowed "
                f"(allowed: {', '.join(issuer.algorithms)})",
                f"algorithm {str(alg)[:20]!r} not in the allow-list of {issuer.issuer}",
                severity=Severity.MEDIUM,
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _fail(INVALID_TOKEN + ": malformed JWT", "kid is not a string")
        key = await self.jwks.key(issuer, kid, alg)
        claims = self._decode(token, key, alg, issuer, kid)
        principal = claims.get(issuer.principal_claim)
        if not isinstance(principal, str) or not 0 < len(principal) <= 128:
            raise _fail(
                f"bearer token has no usable '{issuer.principal_claim}' claim",
                f"claim {issuer.principal_claim!r} missing or not a short string",
            )
        scopes = _scopes(claims.get(issuer.scopes_claim))
        credential_id = f"{issuer.issuer}|{principal}|{kid or ''}"
        missing = sorted(set(issuer.required_scopes) - scopes)
        if missing:
            raise _fail(
                f"bearer token lacks required scope(s): {', '.join(missing)}",
                f"missing scopes {missing}", principal=principal, credential_id=credential_id,
            )
        return Identity(
            principal=principal, method="jwt", credential_id=credential_id, scopes=scopes,
            claims=claims,
        )

    @staticmethod
    def _decode(
        token: str, key: jwt.PyJWK, alg: str, issuer: Issuer, kid: str | None
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=issuer.audience,
                issuer=issuer.issuer,
                leeway=issuer.leeway_seconds,
                options={
                    "require": ["exp", "iss", "aud"],
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt_errors.ExpiredSignatureError as exc:
            raise _fail("bearer token has expired", "token expired") from exc
        except jwt_errors.ImmatureSignatureError as exc:
            raise _fail("bearer token is not valid yet", f"token not yet valid: {exc}") from exc
        except jwt_errors.InvalidAudienceError as exc:
            raise _fail(
                "bearer token is for another audience", f"wrong audience: {exc}",
                severity=Severity.MEDIUM,
            ) from exc
        except jwt_errors.InvalidIssuerError as exc:
            raise _fail(INVALID_TOKEN, f"wrong issuer: {exc}", severity=Severity.MEDIUM) from exc
        except jwt_errors.MissingRequiredClaimError as exc:
            raise _fail(f"bearer token is missing the '{exc.claim}' claim", str(exc)) from exc
        except jwt_errors.InvalidSignatureError as exc:
            raise _fail(
                INVALID_TOKEN, f"signature does not verify (kid {kid!r})",
                severity=Severity.MEDIUM,
            ) from exc
        except jwt_errors.DecodeError as exc:  # after InvalidSignatureError, its subclass
            raise _fail(INVALID_TOKEN + ": malformed JWT", f"malformed JWT: {exc}") from exc
        except jwt_errors.PyJWTError as exc:
            raise _fail(INVALID_TOKEN, f"rejected: {type(exc).__name__}: {exc}") from exc
        return claims
