"""Gateway authentication: API keys, JWT bearer tokens, HMAC request signing.

``build_authenticator(settings, engine, keys)`` gives the chain the gateway calls for every
request; ``ApiKeyService`` (or ``create_api_key``) issues, rotates and revokes keys;
``sign_request`` is the client side of request signing; ``auth_event`` turns an outcome
into the security event the audit log records.
"""

from tsuba.gateway.auth.apikeys import ApiKeyService, check_scopes, create_api_key
from tsuba.gateway.auth.bearer_jwt import JwtAuthenticator
from tsuba.gateway.auth.chain import AuthChain, build_authenticator
from tsuba.gateway.auth.events import auth_event
from tsuba.gateway.auth.failures import AuthFailure
from tsuba.gateway.auth.jwks import JwksCache
from tsuba.gateway.auth.records import ApiKeyRecord, IssuedKey, KeyState
from tsuba.gateway.auth.replay import MemoryReplayCache, RedisReplayCache, ReplayCache
from tsuba.gateway.auth.signing import (
    SignedRequestAuthenticator,
    canonical_request,
    sign_request,
)
from tsuba.gateway.auth.verifier import ApiKeyVerifier

__all__ = [
    "ApiKeyRecord",
    "ApiKeyService",
    "ApiKeyVerifier",
    "AuthChain",
    "AuthFailure",
    "IssuedKey",
    "JwksCache",
    "JwtAuthenticator",
    "KeyState",
    "MemoryReplayCache",
    "RedisReplayCache",
    "ReplayCache",
    "SignedRequestAuthenticator",
    "auth_event",
    "build_authenticator",
    "canonical_request",
    "check_scopes",
    "create_api_key",
    "sign_request",
]
