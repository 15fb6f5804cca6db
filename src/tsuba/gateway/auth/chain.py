"""One authenticator for the gateway: the credential presented picks the method.

* ``x-tsuba-signature`` (and the other signing headers) -> HMAC request signing; an
  ``Authorization`` header beside them is not consulted (the signature authenticates alone);
* ``Authorization: Bearer tsk_...`` -> API key;
* ``Authorization: Bearer <JWT>`` -> JWT, when issuers are configured;
* nothing -> "missing credentials".

Methods not listed in ``gateway.auth.methods`` are refused with a message saying so.
"""

from __future__ import annotations

from sqlalchemy import Engine

from tsuba.core.config import AuthSettings, Settings
from tsuba.core.errors import ConfigError
from tsuba.core.keys import KeyManager
from tsuba.gateway.auth.bearer_jwt import JwtAuthenticator, looks_like_jwt
from tsuba.gateway.auth.failures import MISSING, AuthFailure
from tsuba.gateway.auth.jwks import JwksCache
from tsuba.gateway.auth.keyformat import looks_like_api_key
from tsuba.gateway.auth.replay import MemoryReplayCache, RedisReplayCache, ReplayCache
from tsuba.gateway.auth.signing import SignedRequestAuthenticator, has_signature
from tsuba.gateway.auth.verifier import ApiKeyVerifier
from tsuba.gateway.context import AuthRequest, Identity

_MAX_HEADER = 16_384


class AuthChain:
    """Implements :class:`tsuba.gateway.context.Authenticator` over the enabled methods."""

    def __init__(
        self,
        *,
        api_keys: ApiKeyVerifier | None = None,
        jwt: JwtAuthenticator | None = None,
        signed: SignedRequestAuthenticator | None = None,
        replay: ReplayCache | None = None,
        verifier: ApiKeyVerifier | None = None,
    ) -> None:
        self.api_keys = api_keys
        self.jwt = jwt
        self.signed = signed
        self._replay = replay
        self._verifier = verifier or api_keys

    async def authenticate(self, request: AuthRequest) -> Identity:
        if has_signature(request):
            if self.signed is None:
                raise AuthFailure(
                    "request signing is not enabled on this gateway: send Authorization: "
                    "Bearer <api key>",
                    reason="signed request while hmac is disabled", method="hmac",
                )
            return await self.signed.authenticate(request)
        header = request.headers.get("authorization", "").strip()
        if not header:
            raise AuthFailure(MISSING, reason="no credentials presented")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(header) > _MAX_HEADER:
            raise AuthFailure(
                "unsupported Authorization header: send Authorization: Bearer <api key>",
                reason=f"authorization scheme {scheme[:20]!r} or empty/oversized token",
            )
        if looks_like_api_key(token):
            if self.api_keys is None:
                raise AuthFailure(
                    "API keys are not accepted by this gateway",
                    reason="api key while api_key is disabled", method="api_key",
                )
            return self.api_keys.verify(token)
        if self.jwt is not None and looks_like_jwt(token):
            return await self.jwt.verify(token)
        accepted = "an API key (tsk_...)" + (" or a JWT from a trusted issuer" if self.jwt else "")
        raise AuthFailure(
            f"unrecognised bearer token: send {accepted}",
            reason="bearer token is neither an API key nor an accepted JWT",
        )

    async def aclose(self) -> None:
        if self._replay is not None:
            await self._replay.aclose()
        self.close()

    def close(self) -> None:
        if self._verifier is not None:
            self._verifier.close()


def build_authenticator(
    settings: Settings | AuthSettings,
    engine: Engine,
    keys: KeyManager,
    *,
    replay: ReplayCache | None = None,
    jwks: JwksCache | None = None,
) -> AuthChain:
    """The configured chain (``settings.gateway.auth``); close it with ``aclose()``."""
    auth = settings.gateway.auth if isinstance(settings, Settings) else settings
    methods = set(auth.methods)
    verifier = None
    if methods & {"api_key", "hmac"}:
        verifier = ApiKeyVerifier(
            engine,
            keys,
            pepper_key=auth.pepper_key,
            cache_size=auth.cache_size,
            revocation_check_seconds=auth.revocation_check_seconds,
            last_used_interval_seconds=auth.last_used_interval_seconds,
        )
    jwt = None
    if "jwt" in methods and auth.issuers:
        jwt = JwtAuthenticator(
            auth.issuers,
            jwks
            or JwksCache(
                max_age=auth.jwks_max_age_seconds,
                min_refetch=auth.jwks_min_refetch_seconds,
                timeout=auth.jwks_timeout_seconds,
            ),
        )
    signed = None
    if "hmac" in methods and verifier is not None:
        if replay is None:
            replay = _replay_cache(auth)
        signed = SignedRequestAuthenticator(
            verifier, replay, window_seconds=auth.signing_window_seconds
        )
    return AuthChain(
        api_keys=verifier if "api_key" in methods else None,
        jwt=jwt,
        signed=signed,
        replay=replay,
        verifier=verifier,
    )


def _replay_cache(auth: AuthSettings) -> ReplayCache:
    if auth.replay_backend == "redis":
        if auth.replay_redis_url is None:
            raise ConfigError(
                "gateway.auth.replay_backend is redis but gateway.auth.replay_redis_url is "
                "unset (TSUBA_GATEWAY__AUTH__REPLAY_REDIS_URL)"
            )
        return RedisReplayCache(auth.replay_redis_url.get_secret_value())
    return MemoryReplayCache(max_entries=auth.replay_max_entries)
