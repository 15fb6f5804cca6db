"""JWT bearer tokens against a real JWKS endpoint: valid tokens pass, every attack is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from auth_support import run
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwks_server import Issuer as FakeIssuer
from jwks_server import serve_issuer
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from pydantic import ValidationError

from tsuba.core.config import AuthSettings
from tsuba.gateway.auth import AuthFailure, JwksCache, JwtAuthenticator
from tsuba.gateway.auth.jwks import key_fits

AUDIENCE = "tsuba-gateway"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def _jwk(public: Any, kid: str) -> dict[str, Any]:
    if isinstance(public, rsa.RSAPublicKey):
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**data, "kid": kid, "use": "sig"}


@pytest.fixture
def idp(rsa_key, ec_key, ed_key) -> Iterator[FakeIssuer]:  # type: ignore[no-untyped-def]
    with serve_issuer() as issuer:
        issuer.keys = [
            _jwk(rsa_key.public_key(), "rsa1"),
            _jwk(ec_key.public_key(), "ec1"),
            _jwk(ed_key.public_key(), "ed1"),
        ]
        yield issuer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _settings(idp: FakeIssuer, **extra: Any) -> AuthSettings.Issuer:
    return AuthSettings.Issuer(issuer=idp.url, audience=AUDIENCE, jwks_uri=idp.jwks_uri, **extra)


@pytest.fixture
def authn(idp: FakeIssuer, clock: Clock) -> JwtAuthenticator:
    return JwtAuthenticator([_settings(idp)], JwksCache(min_refetch=30, clock=clock))


def claims(idp: FakeIssuer, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": idp.url, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300,
            "scope": "chat embeddings", **over}


def token(key: Any, alg: str, kid: str | None, payload: dict[str, Any]) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], sign: Any = None) -> str:
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    signature = sign(head.encode()) if sign else b""
    return head + "." + _b64(signature)


def refused(authn: JwtAuthenticator, text: str) -> AuthFailure:
    with pytest.raises(AuthFailure) as info:
        run(authn.verify(text))
    assert info.value.method == "jwt"
    return info.value


# -- accepted --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alg", "kid", "fixture"), [("RS256", "rsa1", "rsa_key"), ("ES256", "ec1", "ec_key"),
                                ("EdDSA", "ed1", "ed_key")]
)
def test_valid_tokens_are_accepted(
    authn: JwtAuthenticator, idp: FakeIssuer, request: pytest.FixtureRequest,
    alg: str, kid: str, fixture: str,
) -> None:
    key = request.getfixturevalue(fixture)
    identity = run(authn.verify(token(key, alg, kid, claims(idp))))
    assert (identity.principal, identity.method) == ("alice", "jwt")
    assert identity.credential_id == f"{idp.url}|alice|{kid}"
    assert identity.scopes == frozenset({"chat", "embeddings"})
    assert identity.claims["aud"] == AUDIENCE


def test_keys_are_fetched_once_and_reused(
    authn: JwtAuthenticator, idp: FakeIssuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    for _ in range(5):
        run(authn.verify(token(rsa_key, "RS256", "rsa1", claims(idp))))
    assert idp.hits == {"/jwks": 1} and authn.jwks.fetches == 1


def test_small_clock_skew_is_within_the_leeway(
    authn: JwtAuthenticator, idp: FakeIssuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    now = int(time.time())
    late = claims(idp, exp=now - 10)
    early = claims(idp, nbf=now + 10, iat=now + 10)
    assert run(authn.verify(token(rsa_key, "RS256", "rsa1", late))).principal == "alice"
    assert run(authn.verify(token(rsa_key, "RS256", "rsa1", early))).principal == "alice"


def test_discovery_finds_the_jwks(idp: FakeIssuer, ec_key: ec.EllipticCurvePrivateKey) -> None:
    authn = JwtAuthenticator([AuthSettings.Issuer(issuer=idp.url, audience=[AUDIENCE])])
    assert run(authn.verify(token(ec_key, "ES256", "ec1", claims(idp)))).principal == "alice"
    assert idp.hits == {"/.well-known/openid-configuration": 1, "/jwks": 1}


# -- refused ---------------------------------------------------------------------------------


def test_alg_none_is_refused(authn: JwtAuthenticator, idp: FakeIssuer) -> None:
    for alg in ("none", "None", "NONE"):
        failure = refused(authn, handmade({"alg": alg, "typ": "JWT", "kid": "rsa1"}, claims(idp)))
        assert "not in the allow-list" in failure.reason
    assert idp.hits == {}  # refused before any key was looked up


def test_hs256_signed_with_the_rsa_public_key_is_refused(
    authn: JwtAuthenticator, idp: FakeIssuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (pem, pem.strip(), json.dumps(idp.keys[0]).encode()):
        forged = handmade(
            {"alg": "HS256", "typ": "JWT", "kid": "rsa1"}, claims(idp, sub="admin"),
            lambda data, s=secret: hmac.new(s, data, hashlib.sha256).digest(),
        )
        assert "HS256" in refused(authn, forged).reason


def test_hs_algorithms_cannot_even_be_configured(idp: FakeIssuer) -> None:
    for algs in (["HS256"], ["RS256", "none"]):
        with pytest.raises(ValidationError, match="not allowed"):
            AuthSettings.Issuer(issuer=idp.url, audience="a", algorithms=algs)
    with pytest.raises(ValidationError, match="https"):
        AuthSettings.Issuer(issuer="http://idp.example.com", audience="a")


def test_an_oct_key_in_the_jwks_is_never_used() -> None:
    assert not key_fits({"kty": "oct", "k": "c2VjcmV0", "kid": "h"}, "HS256")
    assert not key_fits({"kty": "RSA", "n": "x", "e": "AQAB", "use": "enc"}, "RS256")
    assert not key_fits({"kty": "RSA", "n": "x", "e": "AQAB", "alg": "RS512"}, "RS256")
    assert not key_fits({"kty": "EC", "crv": "P-384"}, "ES256")
    assert key_fits({"kty": "EC", "crv": "P-256"}, "ES256")


def test_expired_and_not_yet_valid_tokens_are_refused(
    authn: JwtAuthenticator, idp: FakeIssuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    now = int(time.time())
    expired = token(rsa_key, "RS256", "rsa1", claims(idp, exp=now - 31, iat=now - 400))
    assert refused(authn, expired).reason == "token expired"
    future = token(rsa_key, "RS256", "rsa1", claims(idp, nbf=now + 120))
    assert refused(authn, future).reason.startswith("token not yet valid")
    no_exp = claims(idp)
    del no_exp["exp"]
    assert "exp" in refused(authn, token(rsa_key, "RS256", "rsa1", no_exp)).reason


def test_wrong_issuer_and_audience_are_refused(
    authn: JwtAuthenticator, idp: FakeIssuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    other = token(rsa_key, "RS256", "rsa1", claims(idp, iss="https://evil.example"))
    assert "untrusted issuer" in refused(authn, other).reason
    aud = token(rsa_key, "RS256", "rsa1", claims(idp, aud="someone-else"))
    failure = refused(authn, aud)
    assert failure.reason.startswith("wrong audience") and "another audience" in failure.message
    no_aud = claims(idp)
    del no_aud["aud"]
    assert "aud" in refused(authn, token(rsa_key, "RS256", "rsa1", no_aud)).reason


def test_unknown_kid_and_unknown_key_are_refused(
    authn: JwtAuthenticator, idp: FakeIssuer
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ghost = refused(authn, token(stranger, "RS256", "ghost", claims(idp)))
    assert "unknown kid 'ghost'" in ghost.reason
    impostor = refused(authn, token(stranger, "RS256", "rsa1", claims(idp)))
    assert impostor.reason.startswith("signature does not verify")
    # The kid of an EC key with an RSA algorithm: the key does not fit, so no key is used.
    misfit = refused(authn, token(stranger, "RS256", "ec1", claims(idp)))
    assert "unknown kid 'ec1'" in misfit.reason


def test_tampered_payload_is_refused(
    authn: JwtAuthenticator, idp: FakeIssuer, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    good = token(ed_key, "EdDSA", "ed1", claims(idp))
    head, _, sig = good.split(".")
    forged = f"{head}.{_b64(json.dumps(claims(idp, sub='admin')).encode())}.{sig}"
    assert refused(authn, forged).reason.startswith("signature does not verify")
    truncated = refused(authn, good[:-4]).reason
    assert truncated.startswith(("signature does not verify", "malformed JWT"))
    assert "malformed" in refused(authn, "eyJhbGciOi.not.base64!").reason


def test_required_scopes_and_principal_claim(
    idp: FakeIssuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    authn = JwtAuthenticator(
        [_settings(idp, required_scopes=["admin"], principal_claim="email")]
    )
    no_scope = token(rsa_key, "RS256", "rsa1", claims(idp, email="a@example.com"))
    assert "missing scopes ['admin']" in refused(authn, no_scope).reason
    no_email = token(rsa_key, "RS256", "rsa1", claims(idp, scope="admin"))
    assert "'email' missing" in refused(authn, no_email).reason
    ok = token(rsa_key, "RS256", "rsa1", claims(idp, scope=["admin"], email="a@example.com"))
    assert run(authn.verify(ok)).principal == "a@example.com"


def test_key_rotation_is_picked_up_after_a_rate_limited_refetch(
    authn: JwtAuthenticator, idp: FakeIssuer, clock: Clock, rsa_key: rsa.RSAPrivateKey
) -> None:
    run(authn.verify(token(rsa_key, "RS256", "rsa1", claims(idp))))
    new_key = ec.generate_private_key(ec.SECP256R1())
    fresh = token(new_key, "ES256", "ec2", claims(idp))
    # Not published yet: refused, and repeated unknown kids do not refetch within 30 s.
    for _ in range(3):
        assert "unknown kid 'ec2'" in refused(authn, fresh).reason
    assert idp.hits["/jwks"] == 1
    idp.keys = [*idp.keys, _jwk(new_key.public_key(), "ec2")]
    assert "unknown kid" in refused(authn, fresh).reason  # still rate-limited
    clock.now += 31
    assert run(authn.verify(fresh)).principal == "alice"  # refetched once, then accepted
    assert idp.hits["/jwks"] == 2
    # The issuer drops rsa1: cached keys keep working until they are refetched.
    idp.keys = [k for k in idp.keys if k["kid"] != "rsa1"]
    assert run(authn.verify(token(rsa_key, "RS256", "rsa1", claims(idp)))).principal == "alice"
    clock.now += 601
    dropped = refused(authn, token(rsa_key, "RS256", "rsa1", claims(idp)))
    assert "unknown kid 'rsa1'" in dropped.reason


def test_unreachable_jwks_fails_closed(rsa_key: rsa.RSAPrivateKey) -> None:
    with serve_issuer() as idp:
        idp.status = 500
        authn = JwtAuthenticator([_settings(idp)], JwksCache(min_refetch=0))
        failure = refused(authn, token(rsa_key, "RS256", "rsa1", claims(idp)))
        assert "could not be fetched" in failure.message


_json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.text(max_size=80),
    header=st.fixed_dictionaries(
        {"alg": st.sampled_from(["RS256", "ES256", "EdDSA", "none", "HS256"]) | _json_scalars},
        optional={"kid": st.sampled_from(["rsa1", "ec1", "ed1"]) | _json_scalars},
    ),
    payload=st.dictionaries(st.sampled_from(["iss", "aud", "sub", "exp", "nbf"]), _json_scalars),
    signature=st.binary(max_size=300),
    same_issuer=st.booleans(),
)
def test_arbitrary_tokens_are_refused_cleanly(
    authn: JwtAuthenticator, idp: FakeIssuer, raw: str, header: dict[str, Any],
    payload: dict[str, Any], signature: bytes, same_issuer: bool,
) -> None:
    if same_issuer:
        payload = {**payload, "iss": idp.url}
    forged = handmade(header, payload, lambda _data: signature)
    for text in (raw, forged):
        with pytest.raises(AuthFailure):
            run(authn.verify(text))
