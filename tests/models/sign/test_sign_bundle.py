"""Signature files from anyone: malformed, truncated or forged ones fail with one clear error."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_files import pem_of

from tsuba.core.errors import InputError, IntegrityError, TsubaError
from tsuba.models.sign import PrivateKeySigner, TrustedKey, sign_path, verify_path
from tsuba.models.sign.bundle import PAYLOAD_TYPE, key_hint, load_public_key, pae

FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def resign(bundle: dict[str, Any], statement: dict[str, Any], key: ec.EllipticCurvePrivateKey,
           *, hint: bool = True) -> bytes:
    """A bundle carrying ``statement``, genuinely signed by ``key`` (a hostile signer's file)."""
    payload = json.dumps(statement).encode()
    sig = PrivateKeySigner(key).sign(pae(PAYLOAD_TYPE, payload)).signature
    out = copy.deepcopy(bundle)
    out["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    out["dsseEnvelope"]["signatures"] = [{"sig": base64.b64encode(sig).decode(), "keyid": ""}]
    if hint:
        out["verificationMaterial"]["publicKey"]["hint"] = key_hint(pem_of(key))
    else:
        out["verificationMaterial"]["publicKey"].pop("hint")
    return json.dumps(out).encode()


def statement_of(bundle: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))


@pytest.fixture
def signed(model: Path, signer: PrivateKeySigner) -> tuple[Path, dict[str, Any]]:
    sign_path(model, signer, shard_size=50_000)
    sig = model / "model.sig"
    return sig, json.loads(sig.read_bytes())


@FUZZ
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_any_truncation_is_refused_cleanly(
    signed: tuple[Path, dict[str, Any]], trusted: list[TrustedKey], model: Path, cut: int
) -> None:
    sig, _ = signed
    original = sig.read_bytes()
    target = model.parent / "truncated.sig"
    target.write_bytes(original[: cut % len(original)])
    with pytest.raises((InputError, IntegrityError)):
        verify_path(model, trusted, signature=target)


@FUZZ
@given(index=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_flipped_bit_is_refused_cleanly(
    signed: tuple[Path, dict[str, Any]], trusted: list[TrustedKey], model: Path,
    index: int, bit: int,
) -> None:
    sig, _ = signed
    data = bytearray(sig.read_bytes())
    data[index % len(data)] ^= 1 << bit
    target = model.parent / "flipped.sig"
    target.write_bytes(bytes(data))
    try:
        verify_path(model, trusted, signature=target)
    except TsubaError:
        return
    # Only a flip that leaves the signed payload intact may pass (base64 padding bits, the
    # case of a hexadecimal key hint, an ignored field's name).
    envelope = json.loads(bytes(data))["dsseEnvelope"]
    assert base64.b64decode(envelope["payload"]) == base64.b64decode(
        json.loads(sig.read_bytes())["dsseEnvelope"]["payload"]
    )


def test_forged_payload_and_swapped_signatures_are_refused(
    signed: tuple[Path, dict[str, Any]], trusted: list[TrustedKey], model: Path
) -> None:
    sig, bundle = signed
    stmt = statement_of(bundle)
    stmt["predicate"]["resources"][0]["digest"] = "00" * 32
    forged = copy.deepcopy(bundle)
    forged["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    sig.write_text(json.dumps(forged))
    with pytest.raises(IntegrityError, match="signature does not verify"):
        verify_path(model, trusted)
    # A genuine signature over a statement whose resources do not hash to its subject.
    attacker = ec.generate_private_key(ec.SECP256R1())
    sig.write_bytes(resign(bundle, stmt, attacker))
    with pytest.raises(IntegrityError, match="resources do not hash to its subject"):
        verify_path(model, [TrustedKey(pem_of(attacker), "attacker")])


def test_a_missing_hint_still_needs_the_right_key(
    signed: tuple[Path, dict[str, Any]], trusted: list[TrustedKey], model: Path,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    sig, bundle = signed
    sig.write_bytes(resign(bundle, statement_of(bundle), ec_key, hint=False))
    assert verify_path(model, trusted).key_hint is None
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_path(model, [TrustedKey(pem_of(other), "other")])


@pytest.mark.parametrize("curve", [ec.SECP384R1(), ec.SECP521R1()])
def test_p384_and_p521_keys_sign_with_their_own_hash(
    model: Path, curve: ec.EllipticCurve
) -> None:
    key = ec.generate_private_key(curve)
    sign_path(model, PrivateKeySigner(key))
    assert verify_path(model, [TrustedKey(pem_of(key), curve.name)]).ok


def test_keys_outside_the_format_are_refused() -> None:
    from cryptography.hazmat.primitives import serialization

    for private in (ed25519.Ed25519PrivateKey.generate(),
                    rsa.generate_private_key(public_exponent=65537, key_size=2048),
                    ec.generate_private_key(ec.SECP256K1())):
        pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with pytest.raises(InputError, match="not an EC key on P-256, P-384 or P-521"):
            load_public_key(pem)
    with pytest.raises(InputError, match="not a PEM public key"):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def mutate(bundle: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(bundle)
    node = out
    for step in path[:-1]:
        node = node[step]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


ENVELOPE_CASES = [
    (["mediaType"], "application/vnd.dev.sigstore.bundle.v0.2+json", "not a Sigstore bundle v0.3"),
    (["verificationMaterial", "publicKey"], KeyError, "key-based signatures"),
    (["verificationMaterial", "publicKey", "hint"], "abc", "key hint"),
    (["dsseEnvelope"], KeyError, "no DSSE envelope"),
    (["dsseEnvelope", "payloadType"], "text/plain", "payload type"),
    (["dsseEnvelope", "payload"], "not base64!", "not valid base64"),
    (["dsseEnvelope", "signatures"], [], "exactly one signature"),
    (["dsseEnvelope", "signatures", 0, "sig"], 7, "base64 string"),
]


@pytest.mark.parametrize("path,value,message", ENVELOPE_CASES)
def test_malformed_envelopes_are_refused(
    signed: tuple[Path, dict[str, Any]], trusted: list[TrustedKey], model: Path,
    path: list[Any], value: Any, message: str,
) -> None:
    sig, bundle = signed
    sig.write_text(json.dumps(mutate(bundle, path, value)))
    with pytest.raises(InputError, match=message):
        verify_path(model, trusted)


def test_certificate_bundles_two_signatures_and_duplicate_keys_are_refused(
    signed: tuple[Path, dict[str, Any]], trusted: list[TrustedKey], model: Path
) -> None:
    sig, bundle = signed
    cert = mutate(bundle, ["verificationMaterial"], {"certificate": {"rawBytes": "AAAA"}})
    sig.write_text(json.dumps(cert))
    with pytest.raises(InputError, match="certificate and Sigstore keyless"):
        verify_path(model, trusted)
    two = copy.deepcopy(bundle)
    two["dsseEnvelope"]["signatures"] *= 2
    sig.write_text(json.dumps(two))
    with pytest.raises(InputError, match="exactly one signature"):
        verify_path(model, trusted)
    text = json.dumps(bundle)
    sig.write_text(text[:-1] + ', "mediaType": "x"}')
    with pytest.raises(InputError, match="repeats the key 'mediaType'"):
        verify_path(model, trusted)
    for raw in (b"", b"   ", b"[]", b"\xff\xfe", b"{" * 100_000):
        sig.write_bytes(raw)
        with pytest.raises(InputError):
            verify_path(model, trusted)


STATEMENT_CASES: list[tuple[str, Any, str]] = [
    ("_type", "https://in-toto.io/Statement/v0.1", "not an in-toto statement"),
    ("predicateType", "https://model_signing/Digests/v0.1", "older formats"),
    ("subject", [], "exactly one subject"),
    ("predicate", None, "no predicate"),
]


@pytest.mark.parametrize("field,value,message", STATEMENT_CASES)
def test_genuinely_signed_but_malformed_statements_are_refused(
    signed: tuple[Path, dict[str, Any]], trusted: list[TrustedKey], model: Path,
    ec_key: ec.EllipticCurvePrivateKey, field: str, value: Any, message: str,
) -> None:
    sig, bundle = signed
    stmt = statement_of(bundle)
    stmt[field] = value
    sig.write_bytes(resign(bundle, stmt, ec_key))
    with pytest.raises(InputError, match=message):
        verify_path(model, trusted)


def _with_predicate(bundle: dict[str, Any], key: ec.EllipticCurvePrivateKey, change) -> bytes:
    import hashlib

    stmt = statement_of(bundle)
    change(stmt["predicate"])
    root = hashlib.sha256()
    for resource in stmt["predicate"].get("resources", []):
        with contextlib.suppress(ValueError, TypeError, KeyError):
            root.update(bytes.fromhex(resource["digest"]))
    stmt["subject"][0]["digest"]["sha256"] = root.hexdigest()
    return resign(bundle, stmt, key)


def _set(key: str, value: Any):
    def change(pred: dict[str, Any]) -> None:
        pred["serialization"][key] = value
    return change


def _first(key: str, value: Any):
    def change(pred: dict[str, Any]) -> None:
        pred["resources"][0][key] = value
    return change


def _dup(pred: dict[str, Any]) -> None:
    pred["resources"].append(dict(pred["resources"][0]))


def _gap(pred: dict[str, Any]) -> None:
    pred["resources"] = [r for r in pred["resources"] if not r["name"].endswith(":50000:100000")]


PREDICATE_CASES = [
    (_set("method", "tensors"), "method 'tensors' is not supported"),
    (_set("hash_type", "md5"), "unknown hash algorithm 'md5'"),
    (_set("ignore_paths", ["."]), "not a path inside the model"),
    (_set("ignore_paths", "model.sig"), "list of paths"),
    (_set("allow_symlinks", "false"), "true or false"),
    (_set("digest_size", 1.5), "not a whole number"),
    (_first("algorithm", "sha256"), "uses algorithm 'sha256'"),
    (_first("digest", "zz" * 32), "hexadecimal"),
    (_first("digest", "ab" * 31), "hexadecimal"),
    (_first("name", "../../etc/passwd:0:50000"), "not a relative path inside the model"),
    (_first("name", "/abs:0:50000"), "not a relative path inside the model"),
    (_first("name", "config.json"), "is not 'path:start:end'"),
    (_dup, "twice"),
    (_gap, "do not cover it"),
]


@pytest.mark.parametrize("change,message", PREDICATE_CASES)
def test_genuinely_signed_but_inconsistent_manifests_are_refused(
    signed: tuple[Path, dict[str, Any]], trusted: list[TrustedKey], model: Path,
    ec_key: ec.EllipticCurvePrivateKey, change, message: str,
) -> None:
    sig, bundle = signed
    sig.write_bytes(_with_predicate(bundle, ec_key, change))
    with pytest.raises(InputError, match=message):
        verify_path(model, trusted)


def test_hash_settings_a_signature_lacks_come_from_options_and_never_override_it(
    signed: tuple[Path, dict[str, Any]], trusted: list[TrustedKey], model: Path,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    sig, bundle = signed

    def strip(pred: dict[str, Any]) -> None:
        del pred["serialization"]["hash_type"]
        del pred["serialization"]["shard_size"]
        del pred["serialization"]["digest_size"]

    sig.write_bytes(_with_predicate(bundle, ec_key, strip))
    with pytest.raises(InputError, match="does not say which hash"):
        verify_path(model, trusted)
    # the shard size is still in each resource's algorithm name ("sha256-sharded-50000")
    assert verify_path(model, trusted, hash_type="sha256").ok
    with pytest.raises(InputError, match="records shard size 50000"):
        verify_path(model, trusted, hash_type="sha256", shard_size=4096)
    sig.write_bytes(resign(bundle, statement_of(bundle), ec_key))
    with pytest.raises(InputError, match="records hash type 'sha256'"):
        verify_path(model, trusted, hash_type="blake2")
    # protobuf writes numbers as doubles: 50000.0 is read as 50000
    sig.write_bytes(_with_predicate(bundle, ec_key, _set("shard_size", 50000.0)))
    assert verify_path(model, trusted).ok
