"""HMAC request signing: a per-key secret signs the method, target, body, time and a nonce.

The client sends four headers (names lower-case here; HTTP ignores case)::

    x-tsuba-key-id:     the API key prefix id (tsk_...)
    x-tsuba-timestamp:  Unix time in whole seconds
    x-tsuba-nonce:      16-128 characters of A-Z a-z 0-9 _ -, new for every request
    x-tsuba-signature:  v1=<base64url, unpadded, of HMAC-SHA256(secret, canonical)>

and the canonical string is these seven lines joined by "\\n" (no trailing newline)::

    TSUBA-HMAC-SHA256
    <METHOD, upper case>
    <path and query exactly as sent, printable ASCII without spaces>
    <hex SHA-256 of the body bytes (of b"" when there is none)>
    <timestamp>
    <nonce>
    <key id>

No field can contain a newline, so two different requests never share a canonical string.
The server accepts a timestamp within ``window`` seconds of its clock and each nonce once
(see :mod:`tsuba.gateway.auth.replay`), so a replayed or stale signature is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable

from tsuba.core.events import Severity
from tsuba.gateway.auth.failures import AuthFailure
from tsuba.gateway.auth.keyformat import PREFIX_RE
from tsuba.gateway.auth.replay import ReplayCache
from tsuba.gateway.auth.verifier import ApiKeyVerifier
from tsuba.gateway.context import AuthRequest, Identity

SCHEME = "TSUBA-HMAC-SHA256"
HEADER_KEY_ID = "x-tsuba-key-id"
HEADER_TIMESTAMP = "x-tsuba-timestamp"
HEADER_NONCE = "x-tsuba-nonce"
HEADER_SIGNATURE = "x-tsuba-signature"
SIGNED_HEADERS = (HEADER_KEY_ID, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)

_METHOD = re.compile(r"[A-Z]{1,16}")
_PATH = re.compile(r"/[\x21-\x7e]{0,8191}")
_BODY_HASH = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_SIGNATURE = re.compile(r"v1=([A-Za-z0-9_-]{43})")

BAD_SIGNATURE = "invalid request signature: check the signing secret and the canonical request"


def canonical_request(
    method: str, path: str, *, body_sha256: str, timestamp: int, nonce: str, key_id: str
) -> bytes:
    """The bytes that are signed; ValueError when a field is outside its syntax."""
    checks = (
        (_METHOD, method, "method"),
        (_PATH, path, "path"),
        (_BODY_HASH, body_sha256, "body hash"),
        (_TIMESTAMP, str(timestamp), "timestamp"),
        (_NONCE, nonce, "nonce"),
        (PREFIX_RE, key_id, "key id"),
    )
    for pattern, value, name in checks:
        if not pattern.fullmatch(value):
            raise ValueError(f"{name} {value[:80]!r} is not allowed in a signed request")
    return "\n".join((SCHEME, method, path, body_sha256, str(timestamp), nonce, key_id)).encode()


def compute_signature(secret: bytes, canonical: bytes) -> str:
    mac = hmac.new(secret, canonical, hashlib.sha256).digest()
    return "v1=" + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sign_request(
    method: str,
    path: str,
    body: bytes,
    *,
    key_id: str,
    secret: str | bytes,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four headers that sign one request (client side).

    ``path`` is the path and query string exactly as the request will send them;
    ``secret`` is the signing secret shown when the key was issued (``tss_...``).
    """
    ts = int(time.time()) if timestamp is None else timestamp
    nonce = secrets.token_urlsafe(18) if nonce is None else nonce
    canonical = canonical_request(
        method.upper(), path, body_sha256=hashlib.sha256(body).hexdigest(), timestamp=ts,
        nonce=nonce, key_id=key_id,
    )
    key = secret.encode() if isinstance(secret, str) else secret
    return {
        HEADER_KEY_ID: key_id,
        HEADER_TIMESTAMP: str(ts),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: compute_signature(key, canonical),
    }


def has_signature(request: AuthRequest) -> bool:
    return any(name in request.headers for name in SIGNED_HEADERS)


class SignedRequestAuthenticator:
    """Verifies signed requests: syntax, time window, key, signature, then the nonce."""

    def __init__(
        self,
        verifier: ApiKeyVerifier,
        replay: ReplayCache,
        *,
        window_seconds: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = verifier
        self._replay = replay
        self._window = window_seconds
        self._clock = clock

    async def authenticate(self, request: AuthRequest) -> Identity:
        headers = request.headers
        missing = [name for name in SIGNED_HEADERS if not headers.get(name)]
        if missing:
            raise AuthFailure(
                f"incomplete request signature: missing {', '.join(missing)}",
                reason=f"signature headers missing: {', '.join(missing)}", method="hmac",
            )
        key_id = headers[HEADER_KEY_ID]
        raw_ts, nonce = headers[HEADER_TIMESTAMP], headers[HEADER_NONCE]
        match = _SIGNATURE.fullmatch(headers[HEADER_SIGNATURE])
        body_hash = hashlib.sha256(request.body).hexdigest()
        try:
            if match is None or not _TIMESTAMP.fullmatch(raw_ts):
                raise ValueError("signature or timestamp header malformed")
            timestamp = int(raw_ts)
            canonical = canonical_request(
                request.method, request.path, body_sha256=body_hash, timestamp=timestamp,
                nonce=nonce, key_id=key_id,
            )
        except ValueError as exc:
            raise AuthFailure(
                "malformed request signature: see the signing format in the documentation",
                reason=f"malformed signed request: {exc}", method="hmac",
                credential_id=key_id if PREFIX_RE.fullmatch(key_id) else None,
            ) from exc
        now = self._clock()
        skew = now - timestamp
        if abs(skew) > self._window:
            where = f"{skew:.0f} s old" if skew > 0 else f"{-skew:.0f} s in the future"
            raise AuthFailure(
                f"request signature timestamp is outside the allowed {self._window} s window: "
                "sign with the current time (check the client's clock)",
                reason=f"signature timestamp {where}", method="hmac", credential_id=key_id,
            )
        entry, secret = self._verifier.signing_credential(key_id, now)
        if not hmac.compare_digest(compute_signature(secret, canonical), match.group(0)):
            raise AuthFailure(
                BAD_SIGNATURE, reason="request signature does not match", method="hmac",
                credential_id=key_id, principal=entry.principal, severity=Severity.MEDIUM,
            )
        # Only a verified signature may take a nonce, so forgeries cannot fill the cache.
        ttl = max(1.0, timestamp + self._window - now + 1)
        if not await self._replay.claim(f"{key_id}:{nonce}", ttl):
            raise AuthFailure(
                "request signature was already used: sign every request with a new nonce",
                reason="replayed signed request (nonce seen before)", method="hmac",
                credential_id=key_id, principal=entry.principal, severity=Severity.HIGH,
            )
        return Identity(
            principal=entry.principal, method="hmac", credential_id=key_id, scopes=entry.scopes
        )
