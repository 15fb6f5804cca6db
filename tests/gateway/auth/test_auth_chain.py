"""The authenticator chain the gateway calls, and the events it records."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest
from auth_support import bearer, request, run
from cryptography.hazmat.primitives.asymmetric import ec
from jwks_server import Issuer as FakeIssuer
from jwks_server import serve_issuer
from jwt.algorithms import ECAlgorithm
from sqlalchemy import Engine

from tsuba.core.config import AuthSettings, Settings
from tsuba.core.errors import AuthenticationError, ConfigError
from tsuba.core.events import EventClass, Outcome, Severity
from tsuba.core.keys.local import LocalKeyManager
from tsuba.gateway.auth import (
    ApiKeyService,
    AuthChain,
    AuthFailure,
    auth_event,
    build_authenticator,
    sign_request,
)
from tsuba.gateway.auth.failures import MISSING
from tsuba.gateway.context import Authenticator, Identity


@pytest.fixture
def idp() -> Iterator[tuple[FakeIssuer, ec.EllipticCurvePrivateKey]]:
    key = ec.generate_private_key(ec.SECP256R1())
    with serve_issuer() as issuer:
        issuer.keys = [{**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}]
        yield issuer, key


@pytest.fixture
def chain(
    engine: Engine, keys: LocalKeyManager, idp: tuple[FakeIssuer, ec.EllipticCurvePrivateKey],
    service: ApiKeyService,
) -> Iterator[AuthChain]:
    issuer, _ = idp
    auth = AuthSettings(issuers=[{"issuer": issuer.url, "audience": "gw"}])  # type: ignore[list-item]
    built = build_authenticator(auth, engine, keys)
    yield built
    run(built.aclose())


def _jwt(idp: tuple[FakeIssuer, ec.EllipticCurvePrivateKey], sub: str = "carol") -> str:
    issuer, key = idp
    now = int(time.time())
    return jwt.encode(
        {"iss": issuer.url, "aud": "gw", "sub": sub, "iat": now, "exp": now + 60},
        key, algorithm="ES256", headers={"kid": "k1"},
    )


def test_the_credential_picks_the_method(
    chain: AuthChain, service: ApiKeyService, idp: tuple[FakeIssuer, ec.EllipticCurvePrivateKey]
) -> None:
    authenticator: Authenticator = chain  # the gateway's contract
    key = service.create("alice", ["chat"])
    by_key = run(authenticator.authenticate(bearer(key.key)))
    assert (by_key.method, by_key.principal) == ("api_key", "alice")
    by_jwt = run(authenticator.authenticate(bearer(_jwt(idp))))
    assert (by_jwt.method, by_jwt.principal) == ("jwt", "carol")
    signer = service.create("build-bot", signing=True)
    assert signer.signing_secret is not None
    headers = sign_request(
        "POST", "/v1/embeddings", b"{}", key_id=signer.record.prefix,
        secret=signer.signing_secret,
    )
    # An Authorization header beside a signature is not consulted.
    headers["authorization"] = "Bearer whatever"
    by_sig = run(authenticator.authenticate(request(headers, path="/v1/embeddings")))
    assert (by_sig.method, by_sig.principal) == ("hmac", "build-bot")
    lower = run(authenticator.authenticate(request({"authorization": f"bearer {key.key}"})))
    assert lower.principal == "alice"


def test_refusals_name_the_fix(chain: AuthChain) -> None:
    with pytest.raises(AuthenticationError) as info:
        run(chain.authenticate(request({})))
    assert info.value.message == MISSING
    assert MISSING == "missing credentials: send Authorization: Bearer <api key>"
    for header, text in (
        ("Basic YWxpY2U6c2VjcmV0", "unsupported Authorization header"),
        ("Bearer", "unsupported Authorization header"),
        ("Bearer sk-openai-style-key", "unrecognised bearer token: send an API key (tsk_...) or"),
        ("Bearer tsk_short", "invalid API key"),
    ):
        with pytest.raises(AuthFailure, match=text.replace("(", r"\(").replace(")", r"\)")):
            run(chain.authenticate(request({"authorization": header})))


def test_disabled_methods_are_refused(
    engine: Engine, keys: LocalKeyManager, service: ApiKeyService
) -> None:
    key = service.create("alice")
    only_jwt = build_authenticator(AuthSettings(methods=["jwt"]), engine, keys)
    assert only_jwt.api_keys is None and only_jwt.jwt is None and only_jwt.signed is None
    with pytest.raises(AuthFailure, match="API keys are not accepted"):
        run(only_jwt.authenticate(bearer(key.key)))
    with pytest.raises(AuthFailure, match="request signing is not enabled"):
        run(only_jwt.authenticate(request({"x-tsuba-signature": "v1=x"})))
    run(only_jwt.aclose())
    with pytest.raises(ConfigError, match="replay_redis_url is unset"):
        build_authenticator(AuthSettings(replay_backend="redis"), engine, keys)


def test_build_accepts_the_whole_settings(
    engine: Engine, keys: LocalKeyManager, service: ApiKeyService, tmp_path
) -> None:
    key = service.create("alice")
    settings = Settings(home=tmp_path)
    built = build_authenticator(settings, engine, keys)
    try:
        assert run(built.authenticate(bearer(key.key))).principal == "alice"
    finally:
        run(built.aclose())


def test_auth_events_carry_the_outcome_never_the_secret(
    chain: AuthChain, service: ApiKeyService
) -> None:
    key = service.create("alice", ["chat"])
    secret = key.key.rsplit("_", 1)[1]
    req = request({"authorization": f"Bearer {key.key}", "user-agent": "sdk/1"},
                  path="/v1/chat/completions?api_key=" + key.key, ip="198.51.100.7")
    identity = run(chain.authenticate(req))
    ok = auth_event(identity, req, correlation_id="req-1")
    assert ok.event_class is EventClass.AUTHENTICATION and ok.outcome is Outcome.SUCCESS
    assert (ok.actor, ok.src_ip, ok.correlation_id, ok.resource) == (
        "alice", "198.51.100.7", "req-1", "/v1/chat/completions"
    )
    assert ok.attributes["credential_id"] == key.record.prefix
    assert ok.attributes["method"] == "api_key" and ok.attributes["user_agent"] == "sdk/1"

    wrong = request({"authorization": f"Bearer {key.record.prefix}_{'x' * 43}"}, ip="192.0.2.1")
    with pytest.raises(AuthFailure) as info:
        run(chain.authenticate(wrong))
    bad = auth_event(info.value, wrong, correlation_id="req-2")
    assert bad.outcome is Outcome.FAILURE and bad.severity is Severity.MEDIUM
    assert bad.attributes["reason"] == "API key secret does not match"
    assert bad.attributes["client_message"] == info.value.message
    assert bad.attributes["credential_id"] == key.record.prefix and bad.actor == "alice"
    for event in (ok, bad):
        assert secret.encode() not in event.canonical_bytes()
        assert event.to_ocsf()["class_uid"] == 3002

    plain = auth_event(AuthenticationError("nope"), request({}), None)
    assert plain.outcome is Outcome.FAILURE and plain.attributes["reason"] == "nope"


def test_identity_is_what_the_gateway_contract_says(
    chain: AuthChain, service: ApiKeyService
) -> None:
    key = service.create("alice", ["chat", "embeddings"])
    identity = run(chain.authenticate(bearer(key.key)))
    assert isinstance(identity, Identity)
    assert identity.policy_version is not None  # read with the key, for the authorizer
    assert identity == Identity(
        principal="alice", method="api_key", credential_id=key.record.prefix,
        scopes=frozenset({"chat", "embeddings"}), policy_version=identity.policy_version,
    )
