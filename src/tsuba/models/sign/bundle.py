"""The signature file: an in-toto statement in a DSSE envelope inside a Sigstore bundle v0.3.

This is the key-based flavour of OpenSSF model signing (``model_signing`` 1.1): no
certificate and no transparency log, only a hint naming the key (the SHA-256 of its public
key in PEM form) and one ECDSA signature over the DSSE pre-authentication encoding of the
payload.  The format allows EC keys on P-256, P-384 and P-521, each signing with the hash
of its size, so tsuba signs with ``ecdsa-p256`` keys and verifies all three.

Parsing is strict because the file comes from anyone: duplicate JSON keys (which parsers
resolve differently), unknown envelope shapes, several signatures or a statement of another
type are refused, never read past.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tsuba.core.errors import InputError, IntegrityError, KeyStoreError
from tsuba.core.keys.base import KeyManager
from tsuba.models.sign.manifest import Manifest

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_MEDIA_TYPES = (BUNDLE_MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3")
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
MAX_BUNDLE_BYTES = 256 << 20
_CURVE_HASH: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature covers."""
    head = f"DSSEv1 {len(payload_type.encode())} {payload_type} {len(payload)} "
    return head.encode() + payload


def load_public_key(pem: bytes, *, what: str = "public key") -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{what} is not a PEM public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _CURVE_HASH:
        raise InputError(
            f"{what} is not an EC key on P-256, P-384 or P-521: model signatures in the "
            "OpenSSF format use only those"
        )
    return key


def key_hint(key: ec.EllipticCurvePublicKey | bytes) -> str:
    """SHA-256 of the key's canonical PEM, as model_signing records it in the bundle."""
    public = load_public_key(key) if isinstance(key, bytes) else key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


# -- signing --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Signed:
    signature: bytes  # DER-encoded ECDSA
    public_key_pem: bytes
    key_ref: str  # where the key lives, for people: "key store key 'x' version 2"


class Signer(Protocol):
    def sign(self, data: bytes) -> Signed: ...


class KeyStoreSigner:
    """Signs with a key of tsuba's key store (local keyring, PKCS#11 token or Vault)."""

    def __init__(self, keys: KeyManager, name: str) -> None:
        self.keys = keys
        self.name = name

    def sign(self, data: bytes) -> Signed:
        signature = self.keys.sign(self.name, data)
        if signature.algorithm != "ecdsa-p256-sha256":
            raise KeyStoreError(
                f"key '{self.name}' is {signature.algorithm}: model signatures need an EC "
                f"P-256 key (the OpenSSF format accepts no other kind); create one with "
                f"'tsuba keys create NAME --kind ecdsa-p256'"
            )
        pem = self.keys.public_key_pem(self.name, signature.version)
        where = f"{self.keys.backend} key '{self.name}' version {signature.version}"
        return Signed(signature.value, pem, where)


class PrivateKeySigner:
    """Signs with an EC private key held in memory (a PEM file, or a test key)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, *, ref: str = "private key") -> None:
        load_public_key(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.key = key
        self.ref = ref

    def sign(self, data: bytes) -> Signed:
        algorithm = _CURVE_HASH[self.key.curve.name]()
        value = self.key.sign(data, ec.ECDSA(algorithm))
        pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return Signed(value, pem, self.ref)


def statement(manifest: Manifest) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": manifest.model_name, "digest": {"sha256": manifest.root_digest().hex()}}
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": manifest.predicate(),
    }


def sign_manifest(manifest: Manifest, signer: Signer) -> tuple[bytes, Signed]:
    """The bundle (JSON bytes) signing ``manifest``, and what the signer reported."""
    payload = json.dumps(statement(manifest), indent=2).encode()
    signed = signer.sign(pae(PAYLOAD_TYPE, payload))
    public = load_public_key(signed.public_key_pem, what=f"public key of {signed.key_ref}")
    # Check our own signature before anyone relies on it (a faulty token, a wrong key).
    try:
        public.verify(
            signed.signature, pae(PAYLOAD_TYPE, payload), ec.ECDSA(_CURVE_HASH[public.curve.name]())
        )
    except InvalidSignature:
        raise KeyStoreError(
            f"{signed.key_ref} produced a signature its own public key does not verify"
        ) from None
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint(public)}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signed.signature).decode(), "keyid": ""}],
        },
    }
    return json.dumps(bundle, separators=(",", ":")).encode(), signed


# -- reading and verifying -----------------------------------------------------------------
@dataclass(frozen=True)
class Bundle:
    payload_type: str
    payload: bytes
    signature: bytes
    hint: str | None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InputError(f"signature JSON repeats the key {key!r}")
        out[key] = value
    return out


def strict_json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InputError(f"{what} nests too deeply") from None


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value.isascii():
        raise InputError(f"signature {what} must be a base64 string")
    data = value.encode("ascii")
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        pass
    try:  # protobuf's JSON also accepts the URL-safe alphabet
        return base64.b64decode(data, altchars=b"-_", validate=True)
    except binascii.Error:
        raise InputError(f"signature {what} is not valid base64") from None


def parse_bundle(raw: bytes) -> Bundle:
    """The envelope of a key-based Sigstore bundle; InputError for anything else."""
    if len(raw) > MAX_BUNDLE_BYTES:
        raise InputError(f"signature file is larger than {MAX_BUNDLE_BYTES >> 20} MiB")
    if not raw.strip():
        raise InputError("signature file is empty")
    doc = strict_json(raw, "signature file")
    if not isinstance(doc, dict):
        raise InputError("signature file is not a Sigstore bundle (expected a JSON object)")
    media = doc.get("mediaType")
    if media not in _MEDIA_TYPES:
        raise InputError(
            f"signature media type {media!r} is not a Sigstore bundle v0.3 "
            f"({BUNDLE_MEDIA_TYPE})"
        )
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise InputError("signature bundle has no verificationMaterial")
    if "publicKey" not in material:
        found = ", ".join(sorted(k for k in material if k != "tlogEntries")) or "nothing"
        raise InputError(
            f"signature bundle identifies its signer by {found}: tsuba verifies key-based "
            "signatures (publicKey); certificate and Sigstore keyless bundles are not supported"
        )
    public = material["publicKey"]
    if not isinstance(public, dict):
        raise InputError("signature verificationMaterial.publicKey must be an object")
    hint = public.get("hint")
    if hint is not None and (not isinstance(hint, str) or len(hint) != 64):
        raise InputError("signature key hint is not a SHA-256 in hexadecimal")
    envelope = doc.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise InputError(
            "signature bundle has no DSSE envelope (a message signature is not a model "
            "signature)"
        )
    payload_type = envelope.get("payloadType")
    if payload_type != PAYLOAD_TYPE:
        raise InputError(f"signature payload type {payload_type!r} is not {PAYLOAD_TYPE}")
    payload = _b64(envelope.get("payload"), "payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise InputError("signature envelope must carry exactly one signature")
    sig = signatures[0]
    if not isinstance(sig, dict):
        raise InputError("signature envelope signature must be an object")
    value = _b64(sig.get("sig"), "signature value")
    return Bundle(payload_type=payload_type, payload=payload, signature=value,
                  hint=hint.lower() if hint else None)


@dataclass(frozen=True)
class TrustedKey:
    """A public key a verifier accepts, and a label saying where it came from."""

    pem: bytes
    label: str


def verify_envelope(bundle: Bundle, keys: Sequence[TrustedKey]) -> TrustedKey:
    """The key whose signature covers the envelope; IntegrityError when none does."""
    if not keys:
        raise InputError("no public key to verify with: pass a public key or a key name")
    candidates = [(k, load_public_key(k.pem, what=k.label)) for k in keys]
    if bundle.hint is not None:
        matching = [(k, p) for k, p in candidates if key_hint(p) == bundle.hint]
        if not matching:
            labels = ", ".join(k.label for k in keys)
            raise IntegrityError(
                f"the signature was made with another key (key hint {bundle.hint[:16]}...) "
                f"than {labels}"
            )
        candidates = matching
    message = pae(bundle.payload_type, bundle.payload)
    for trusted, public in candidates:
        try:
            public.verify(bundle.signature, message, ec.ECDSA(_CURVE_HASH[public.curve.name]()))
        except InvalidSignature:
            continue
        return trusted
    raise IntegrityError(
        "the signature does not verify: the signature file was altered, or it was not made "
        f"with {', '.join(k.label for k, _ in candidates)}"
    )


@dataclass(frozen=True)
class Statement:
    model_name: str
    root_digest: bytes
    predicate: dict[str, Any]


def parse_statement(payload: bytes) -> Statement:
    doc = strict_json(payload, "signed payload")
    if not isinstance(doc, dict) or doc.get("_type") != STATEMENT_TYPE:
        raise InputError(f"signed payload is not an in-toto statement ({STATEMENT_TYPE})")
    if doc.get("predicateType") != PREDICATE_TYPE:
        raise InputError(
            f"signed payload predicate {doc.get('predicateType')!r} is not a model signature "
            f"({PREDICATE_TYPE}); older formats are not supported"
        )
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise InputError("signed statement must have exactly one subject")
    subject = subjects[0]
    name = subject.get("name", "")
    digest = subject.get("digest")
    if not isinstance(name, str) or not isinstance(digest, dict):
        raise InputError("signed statement subject needs a name and a digest")
    root = digest.get("sha256")
    if not isinstance(root, str) or len(root) != 64:
        raise InputError("signed statement subject has no SHA-256 digest")
    try:
        root_bytes = bytes.fromhex(root)
    except ValueError:
        raise InputError("signed statement subject digest is not hexadecimal") from None
    predicate = doc.get("predicate")
    if not isinstance(predicate, dict):
        raise InputError("signed statement has no predicate")
    return Statement(model_name=name, root_digest=root_bytes, predicate=predicate)


__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "Bundle",
    "KeyStoreSigner",
    "PrivateKeySigner",
    "Signed",
    "Signer",
    "Statement",
    "TrustedKey",
    "key_hint",
    "load_public_key",
    "pae",
    "parse_bundle",
    "parse_statement",
    "sign_manifest",
    "statement",
    "verify_envelope",
]
