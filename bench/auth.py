"""Gateway authentication: the per-request cost of each credential, beside a bare reference.

Figures (per request, best of a few runs; the machine may be shared, so treat as provisional):
- ``api_key``: tsuba's cached verification (local HMAC of the secret, cache lookup, checks,
  and the one-statement revocation-version read on a kept connection) on SQLite, and on
  PostgreSQL when TSUBA_TEST_DATABASE_URL is set; beside it the version read alone (the
  floor that buys revocation within one request everywhere) and the reference: a bare
  SHA-256 of the key looked up in a dict (what a key check costs with no revocation,
  expiry or principal checks at all); ``api_key_cold`` is a cache miss (row load);
- ``jwt``: tsuba's verification (issuer, allow-list, cached JWKS, PyJWT checks, claims)
  against bare ``jwt.decode`` with the key in hand, for ES256, EdDSA and RS256;
- ``hmac``: a signed request (canonical string, window, key lookup, signature, in-process
  replay cache) against a bare HMAC-SHA256 of the same canonical bytes.

    python bench/auth.py --quick     # a few seconds
    python bench/auth.py             # full sizes

Figures go to bench/results/auth.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from scratch import scratch_postgres
from tsuba.core.config import AuthSettings
from tsuba.core.identity import IdentityService
from tsuba.core.keys.local import LocalKeyManager
from tsuba.core.keys.master import MasterSecret
from tsuba.core.storage import open_engine, upgrade
from tsuba.gateway.auth import (
    ApiKeyService,
    ApiKeyVerifier,
    JwksCache,
    JwtAuthenticator,
    MemoryReplayCache,
    SignedRequestAuthenticator,
    sign_request,
)
from tsuba.gateway.auth.signing import canonical_request
from tsuba.gateway.context import AuthRequest

RESULTS = Path(__file__).parent / "results" / "auth.json"
ISSUER = "https://idp.bench.invalid"


def per_request(fn: Callable[[], Any], n: int, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    best = min(runs)
    return {"per_second": round(n / best, 1), "us_per_request": round(best / n * 1e6, 2)}




def bench_api_keys(url: str, keys: LocalKeyManager, n: int, repeats: int) -> dict[str, Any]:
    engine = open_engine(url)
    try:
        upgrade(engine)
        with IdentityService(engine, actor="bench") as identity:
            identity.create_principal("alice", "service")
        service = ApiKeyService(engine, keys, actor="bench")
        issued = [service.create("alice", ["chat"]) for _ in range(20)]
        signer = service.create("alice", signing=True)
        verifier = ApiKeyVerifier(engine, keys)
        try:
            texts = [issued[i % len(issued)].key for i in range(n)]
            for t in texts[: len(issued)]:
                verifier.verify(t)  # warm

            def cached() -> None:
                for t in texts:
                    verifier.verify(t)

            def versions() -> None:
                for _ in range(n):
                    verifier._read_versions()

            cold_n = min(n, 500)

            def cold() -> None:
                for t in texts[:cold_n]:
                    verifier.invalidate()
                    verifier.verify(t)

            out = {
                "api_key": per_request(cached, n, repeats),
                "version_read_floor": per_request(versions, n, repeats),
                "api_key_cold": per_request(cold, cold_n, repeats),
                "hmac": bench_signing(verifier, signer, n, repeats),
            }
        finally:
            verifier.close()
    finally:
        engine.dispose()
    return out


def bench_signing(verifier: ApiKeyVerifier, signer: Any, n: int, repeats: int) -> dict[str, Any]:
    body = b'{"model":"demo","messages":[{"role":"user","content":"hello"}]}'
    path = "/v1/chat/completions"
    auth = SignedRequestAuthenticator(verifier, MemoryReplayCache())
    secret = signer.signing_secret.encode()

    def requests() -> list[AuthRequest]:
        return [
            AuthRequest("POST", path, sign_request(
                "POST", path, body, key_id=signer.record.prefix, secret=secret
            ), body, "127.0.0.1")
            for _ in range(n)
        ]

    batches = [requests() for _ in range(repeats)]  # signing is the client's cost: not timed

    def tsuba() -> None:
        batch = batches.pop()

        async def go() -> None:
            for r in batch:
                await auth.authenticate(r)

        asyncio.run(go())

    canonical = canonical_request(
        "POST", path, body_sha256=hashlib.sha256(body).hexdigest(), timestamp=int(time.time()),
        nonce="n" * 24, key_id=signer.record.prefix,
    )

    def bare() -> None:
        for _ in range(n):
            hmac.new(secret, canonical, hashlib.sha256).digest()

    return {"tsuba": per_request(tsuba, n, repeats), "bare_hmac": per_request(bare, n, repeats)}


def bench_reference_hash_lookup(n: int, repeats: int) -> dict[str, float]:
    table = {hashlib.sha256(f"tsk_{i:013d}_{'x' * 43}".encode()).digest(): i for i in range(20)}
    texts = [f"tsk_{i % 20:013d}_{'x' * 43}" for i in range(n)]

    def lookup() -> None:
        for t in texts:
            table[hashlib.sha256(t.encode()).digest()]

    return per_request(lookup, n, repeats)


def bench_jwt(n: int, repeats: int) -> dict[str, Any]:
    private = {
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }
    jwks = {"keys": [
        {**ECAlgorithm.to_jwk(private["ES256"].public_key(), as_dict=True), "kid": "ES256"},
        {**OKPAlgorithm.to_jwk(private["EdDSA"].public_key(), as_dict=True), "kid": "EdDSA"},
        {**RSAAlgorithm.to_jwk(private["RS256"].public_key(), as_dict=True), "kid": "RS256"},
    ]}
    # The JWKS comes from an in-process transport: fetched once, so it does not figure.
    transport = httpx.MockTransport(lambda _req: httpx.Response(200, json=jwks))
    issuer = AuthSettings.Issuer(
        issuer=ISSUER, audience="gw", jwks_uri=f"{ISSUER}/jwks",
        algorithms=["ES256", "EdDSA", "RS256"],
    )
    authn = JwtAuthenticator([issuer], JwksCache(transport=transport))
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "gw", "sub": "alice", "iat": now, "exp": now + 3600,
              "scope": "chat"}
    out: dict[str, Any] = {}
    for alg, key in private.items():
        token = jwt.encode(claims, key, algorithm=alg, headers={"kid": alg})
        public = key.public_key()

        def tsuba(token: str = token) -> None:
            async def go() -> None:
                for _ in range(n):
                    await authn.verify(token)

            asyncio.run(go())

        def bare(token: str = token, public: Any = public, alg: str = alg) -> None:
            for _ in range(n):
                jwt.decode(token, public, algorithms=[alg], audience="gw", issuer=ISSUER)

        tsuba()  # fetch the JWKS once
        out[alg] = {
            "tsuba": per_request(tsuba, n, repeats),
            "bare_pyjwt": per_request(bare, n, repeats),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    args = parser.parse_args()
    n, n_jwt, repeats = (2_000, 300, 2) if args.quick else (20_000, 3_000, 3)
    results: dict[str, Any] = {
        "benchmark": "auth",
        "mode": "quick" if args.quick else "full",
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "sizes": {"api_key_and_hmac_requests": n, "jwt_requests": n_jwt, "repeats": repeats},
    }
    with tempfile.TemporaryDirectory() as tmp:
        keys = LocalKeyManager.initialise(
            Path(tmp) / "keyring.json", MasterSecret(source="bench", key=os.urandom(32))
        )
        results["sqlite"] = bench_api_keys(f"sqlite:///{Path(tmp) / 'bench.db'}", keys, n, repeats)
        with scratch_postgres() as pg_url:
            if pg_url is not None:
                results["postgresql"] = bench_api_keys(pg_url, keys, n, repeats)
    results["reference_sha256_dict_lookup"] = bench_reference_hash_lookup(n, repeats)
    results["jwt"] = bench_jwt(n_jwt, repeats)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def print_table(results: dict[str, Any]) -> None:
    print(f"auth benchmark ({results['mode']}): {results['sizes']}")
    print(f"{'path':<48}{'requests/s':>14}{'us/request':>12}")
    rows: list[tuple[str, dict[str, float]]] = [
        ("reference: sha256 + dict lookup (no checks)", results["reference_sha256_dict_lookup"]),
    ]
    for backend in ("sqlite", "postgresql"):
        if backend in results:
            b = results[backend]
            rows += [
                (f"api key, cached, tsuba on {backend}", b["api_key"]),
                (f"  version read alone ({backend})", b["version_read_floor"]),
                (f"  api key, cache miss ({backend})", b["api_key_cold"]),
                (f"signed request, tsuba on {backend}", b["hmac"]["tsuba"]),
                ("  reference: bare HMAC-SHA256", b["hmac"]["bare_hmac"]),
            ]
    for alg, fig in results["jwt"].items():
        rows += [(f"jwt {alg}, tsuba", fig["tsuba"]), (f"  reference: bare PyJWT decode {alg}",
                                                       fig["bare_pyjwt"])]
    for name, fig in rows:
        print(f"{name:<48}{fig['per_second']:>14,.0f}{fig['us_per_request']:>12.2f}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
