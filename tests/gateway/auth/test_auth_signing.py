"""HMAC request signing: canonical form, time window, replay (memory and real Redis), tampering."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest
from auth_support import request, run
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from tsuba.core.errors import StorageError
from tsuba.core.keys.local import LocalKeyManager
from tsuba.gateway.auth import (
    ApiKeyService,
    ApiKeyVerifier,
    AuthFailure,
    IssuedKey,
    MemoryReplayCache,
    RedisReplayCache,
    SignedRequestAuthenticator,
    canonical_request,
    sign_request,
)
from tsuba.gateway.auth.signing import HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP

REDIS_URL = os.environ.get("TSUBA_TEST_REDIS_URL")
NOW = 1_900_000_000
BODY = b'{"model":"demo","messages":[{"role":"user","content":"hi"}]}'
PATH = "/v1/chat/completions?trace=1"


@pytest.fixture
def signer(service: ApiKeyService) -> IssuedKey:
    return service.create("alice", ["chat"], signing=True)


@pytest.fixture
def auth(verifier: ApiKeyVerifier) -> SignedRequestAuthenticator:
    return SignedRequestAuthenticator(verifier, MemoryReplayCache(), clock=lambda: NOW)


def signed(key: IssuedKey, *, body: bytes = BODY, path: str = PATH, method: str = "POST",
           timestamp: int = NOW, nonce: str | None = None, secret: str | None = None
           ) -> dict[str, str]:
    assert key.signing_secret is not None
    return sign_request(
        method, path, body, key_id=key.record.prefix, secret=secret or key.signing_secret,
        timestamp=timestamp, nonce=nonce,
    )


def test_canonical_string_is_exactly_the_documented_one() -> None:
    got = canonical_request(
        "POST", "/v1/x?a=1&b=%20", body_sha256=hashlib.sha256(b"").hexdigest(),
        timestamp=1700000000, nonce="n" * 16, key_id="tsk_" + "A" * 13,
    )
    assert got == (
        b"TSUBA-HMAC-SHA256\nPOST\n/v1/x?a=1&b=%20\n"
        b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        b"1700000000\nnnnnnnnnnnnnnnnn\ntsk_AAAAAAAAAAAAA"
    )


_field_values = {
    "method": st.from_regex(r"[A-Z]{1,16}", fullmatch=True),
    "path": st.from_regex(r"/[\x21-\x7e]{0,40}", fullmatch=True),
    "body": st.binary(max_size=64),
    "timestamp": st.integers(min_value=0, max_value=10**12 - 1),
    "nonce": st.from_regex(r"[A-Za-z0-9_-]{16,24}", fullmatch=True),
    "key_id": st.from_regex(r"tsk_[0-9A-Za-z]{13}", fullmatch=True),
}
_requests = st.fixed_dictionaries(_field_values)


def _canonical(r: dict[str, object]) -> bytes:
    return canonical_request(
        str(r["method"]), str(r["path"]), body_sha256=hashlib.sha256(r["body"]).hexdigest(),  # type: ignore[arg-type]
        timestamp=int(r["timestamp"]), nonce=str(r["nonce"]), key_id=str(r["key_id"]),  # type: ignore[call-overload]
    )


@settings(max_examples=300, deadline=None)
@given(_requests, _requests)
def test_different_requests_never_share_a_canonical_string(
    a: dict[str, object], b: dict[str, object]
) -> None:
    if a != b:
        assert _canonical(a) != _canonical(b)
    else:
        assert _canonical(a) == _canonical(b)


@settings(max_examples=200, deadline=None)
@given(_requests, st.sampled_from(["method", "path", "nonce", "key_id"]),
       st.sampled_from(["\n", "\r", " ", "\x00", "é"]))
def test_fields_that_could_blur_the_boundaries_are_refused(
    r: dict[str, object], field: str, bad: str
) -> None:
    broken = {**r, field: f"{r[field]}{bad}x"}
    with pytest.raises(ValueError, match="not allowed in a signed request"):
        _canonical(broken)


def test_a_signed_request_is_accepted_once(
    signer: IssuedKey, auth: SignedRequestAuthenticator
) -> None:
    headers = signed(signer)
    identity = run(auth.authenticate(request(headers, body=BODY, path=PATH)))
    assert (identity.principal, identity.method, identity.credential_id) == (
        "alice", "hmac", signer.record.prefix
    )
    assert identity.scopes == frozenset({"chat"})
    with pytest.raises(AuthFailure, match="already used") as info:
        run(auth.authenticate(request(headers, body=BODY, path=PATH)))
    assert info.value.reason == "replayed signed request (nonce seen before)"


@pytest.mark.parametrize(
    ("offset", "reason"), [(-301, "301 s old"), (301, "301 s in the future")]
)
def test_stale_and_future_timestamps_are_refused(
    signer: IssuedKey, auth: SignedRequestAuthenticator, offset: int, reason: str
) -> None:
    with pytest.raises(AuthFailure, match="outside the allowed 300 s window") as info:
        stale = signed(signer, timestamp=NOW + offset)
        run(auth.authenticate(request(stale, body=BODY, path=PATH)))
    assert reason in info.value.reason
    for inside in (-300, 300):
        ok = signed(signer, timestamp=NOW + inside)
        assert run(auth.authenticate(request(ok, body=BODY, path=PATH))).principal == "alice"


def test_tampering_is_refused(
    signer: IssuedKey, auth: SignedRequestAuthenticator, service: ApiKeyService
) -> None:
    headers = signed(signer)
    other = service.create("build-bot", signing=True)
    cases = {
        "body": request(headers, body=BODY.replace(b"hi", b"ho"), path=PATH),
        "path": request(headers, body=BODY, path="/v1/embeddings?trace=1"),
        "query": request(headers, body=BODY, path="/v1/chat/completions?trace=2"),
        "method": request(headers, method="PUT", body=BODY, path=PATH),
        "nonce": request({**headers, HEADER_NONCE: "x" * 20}, body=BODY, path=PATH),
        "timestamp": request({**headers, HEADER_TIMESTAMP: str(NOW + 1)}, body=BODY, path=PATH),
        "wrong secret": request(
            signed(signer, secret=other.signing_secret, nonce="w" * 20), body=BODY, path=PATH
        ),
        "other key id": request(
            {**headers, "x-tsuba-key-id": other.record.prefix}, body=BODY, path=PATH
        ),
    }
    for name, req in cases.items():
        with pytest.raises(AuthFailure) as info:
            run(auth.authenticate(req))
        assert info.value.reason == "request signature does not match", name
    # None of the forgeries used up the nonce: the genuine request still passes.
    assert run(auth.authenticate(request(headers, body=BODY, path=PATH))).principal == "alice"


def test_malformed_signatures_are_refused(
    signer: IssuedKey, auth: SignedRequestAuthenticator
) -> None:
    good = signed(signer)
    for headers in (
        {k: v for k, v in good.items() if k != HEADER_NONCE},
        {**good, HEADER_SIGNATURE: "v2=" + good[HEADER_SIGNATURE][3:]},
        {**good, HEADER_SIGNATURE: good[HEADER_SIGNATURE][:-1]},
        {**good, HEADER_TIMESTAMP: "1.9e9"},
        {**good, HEADER_NONCE: "short"},
        {**good, "x-tsuba-key-id": "tsk_x"},
    ):
        with pytest.raises(AuthFailure, match="signature"):
            run(auth.authenticate(request(headers, body=BODY, path=PATH)))
    with pytest.raises(AuthFailure, match="malformed request signature"):
        run(auth.authenticate(request(good, body=BODY, path="/v1/chat completions")))


def test_key_state_and_kind_are_enforced(
    signer: IssuedKey, auth: SignedRequestAuthenticator, service: ApiKeyService,
    verifier: ApiKeyVerifier,
) -> None:
    plain = service.create("alice")
    with pytest.raises(AuthFailure, match="not enabled for request signing"):
        run(auth.authenticate(request(
            sign_request("POST", PATH, BODY, key_id=plain.record.prefix, secret="tss_guess",
                         timestamp=NOW), body=BODY, path=PATH)))
    with pytest.raises(AuthFailure, match="must be used with signed requests"):
        verifier.verify(signer.key)
    with pytest.raises(AuthFailure, match="unknown x-tsuba-key-id"):
        run(auth.authenticate(request(
            {**signed(signer), "x-tsuba-key-id": "tsk_" + "0" * 13}, body=BODY, path=PATH)))
    service.revoke(signer.record.prefix)
    with pytest.raises(AuthFailure, match="is revoked"):
        run(auth.authenticate(request(signed(signer), body=BODY, path=PATH)))


def test_memory_replay_cache_forgets_after_ttl_and_refuses_when_full() -> None:
    now = [100.0]
    cache = MemoryReplayCache(max_entries=2, clock=lambda: now[0])
    assert run(cache.claim("a", 10)) and not run(cache.claim("a", 10))
    assert run(cache.claim("b", 10))
    with pytest.raises(StorageError, match="replay cache is full"):
        run(cache.claim("c", 10))
    now[0] += 10.5
    assert run(cache.claim("a", 10)) and run(cache.claim("c", 10)) and len(cache) == 2


@pytest.fixture
def redis_url() -> Iterator[str]:
    if not REDIS_URL:
        pytest.skip("Redis not configured (set TSUBA_TEST_REDIS_URL)")
    yield REDIS_URL


def test_redis_replay_cache_holds_across_workers(
    signer: IssuedKey, engine: Engine, keys: LocalKeyManager, redis_url: str
) -> None:
    headers = signed(signer, nonce=os.urandom(12).hex())

    async def scenario() -> None:
        # Two workers: separate verifiers and Redis clients, one Redis.
        workers = [
            SignedRequestAuthenticator(
                ApiKeyVerifier(engine, keys), RedisReplayCache(redis_url), clock=lambda: NOW
            )
            for _ in range(2)
        ]
        first = await workers[0].authenticate(request(headers, body=BODY, path=PATH))
        assert first.principal == "alice"
        with pytest.raises(AuthFailure, match="already used"):
            await workers[1].authenticate(request(headers, body=BODY, path=PATH))
        for w in workers:
            await w._replay.aclose()
            w._verifier.close()

    run(scenario())


def test_redis_outage_fails_closed(signer: IssuedKey, verifier: ApiKeyVerifier) -> None:
    auth = SignedRequestAuthenticator(
        verifier, RedisReplayCache("redis://127.0.0.1:9/0"), clock=lambda: NOW
    )
    with pytest.raises(StorageError, match=r"replay cache \(Redis\) is not usable"):
        run(auth.authenticate(request(signed(signer), body=BODY, path=PATH)))
