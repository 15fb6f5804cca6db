"""Signed scan results: "scanned by tsuba X.Y with this verdict", bound to a model's digest.

The result is an in-toto statement whose subject is the model's signature digest, wrapped in
a DSSE envelope and signed with a key from the key store.  A registry that trusts the key can
accept the verdict without scanning again, and a result can never be moved to another model
or edited: the digest and every byte of the statement are under the signature.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tsuba.core.errors import InputError, IntegrityError
from tsuba.core.keys.base import KeyManager
from tsuba.models.scan.report import Report, Severity

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://tsuba.dev/attestations/model-scan/v1"
_DIGEST = re.compile(r"^(?:(sha256|sha384|sha512|blake2b|blake3):)?([0-9a-f]{64,128})$")


@dataclass(frozen=True)
class ScanAttestation:
    """What a verified scan result says."""

    subject_name: str
    subject_digest: str  # "algorithm:hex"
    scanner_version: str
    verdict: str  # "clean" or "unsafe"
    threshold: str
    max_severity: str | None
    scanned_at: str
    key_id: str
    predicate: dict[str, Any]

    @property
    def clean(self) -> bool:
        return self.verdict == "clean"


def _pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _digest(text: str) -> tuple[str, str]:
    m = _DIGEST.match(text.strip().lower())
    if not m:
        raise InputError(f"subject digest {text!r} is not a hex digest (e.g. sha256:<64 hex>)")
    return m.group(1) or "sha256", m.group(2)


def sign_report(
    report: Report,
    km: KeyManager,
    key_name: str,
    subject_digest: str,
    *,
    subject_name: str = "model",
    threshold: Severity = Severity.MEDIUM,
    scanned_at: datetime | None = None,
) -> dict[str, Any]:
    """A DSSE envelope over an in-toto statement of ``report``, bound to ``subject_digest``."""
    algorithm, hexdigest = _digest(subject_digest)
    worst = report.max_severity
    predicate = {
        "scanner": {"name": "tsuba", "version": report.tool_version},
        "scannedAt": (scanned_at or datetime.now(UTC)).isoformat(),
        "verdict": "unsafe" if report.unsafe(threshold) or report.unreadable else "clean",
        "threshold": threshold.label,
        "maxSeverity": worst.label if worst is not None else None,
        "counts": report.counts(),
        "files": [
            {"path": r.path, "format": r.format, "size": r.size,
             "maxSeverity": r.max_severity.label if r.max_severity is not None else None}
            for r in report.files
        ],
        "findings": [f.to_dict() for f in report.findings if f.severity >= Severity.LOW],
    }
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {algorithm: hexdigest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    sig = km.sign(key_name, _pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{
            "keyid": f"{sig.key_name}:{sig.version}",
            "alg": sig.algorithm,
            "sig": base64.b64encode(sig.value).decode("ascii"),
        }],
    }


def verify_report(
    envelope: dict[str, Any],
    public_key_pem: bytes,
    *,
    subject_digest: str | None = None,
) -> ScanAttestation:
    """Check the signature (and, when given, that the result is about ``subject_digest``).

    Raises IntegrityError when the signature or the subject does not match, InputError when
    the envelope is not one tsuba writes.
    """
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = envelope["signatures"]
        if envelope["payloadType"] != PAYLOAD_TYPE or not isinstance(signatures, list):
            raise ValueError("not an in-toto DSSE envelope")
        sigs = [(s["keyid"], base64.b64decode(s["sig"], validate=True)) for s in signatures]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"scan attestation is malformed: {exc}") from None
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except ValueError:
        raise InputError("public key is not a PEM public key") from None
    signed = _pae(PAYLOAD_TYPE, payload)
    key_id = next((kid for kid, sig in sigs if _valid(key, sig, signed)), None)
    if key_id is None:
        raise IntegrityError("scan attestation signature does not verify with this key")
    try:
        statement = json.loads(payload)
        subject = statement["subject"][0]
        predicate = statement["predicate"]
        (algorithm, hexdigest), = subject["digest"].items()
        if statement["_type"] != STATEMENT_TYPE or statement["predicateType"] != PREDICATE_TYPE:
            raise ValueError("unexpected statement or predicate type")
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise InputError(f"scan attestation statement is malformed: {exc}") from None
    if subject_digest is not None and _digest(subject_digest) != (algorithm, hexdigest):
        raise IntegrityError(
            f"scan attestation is about {algorithm}:{hexdigest}, not {subject_digest}"
        )
    return ScanAttestation(
        subject_name=subject.get("name", ""),
        subject_digest=f"{algorithm}:{hexdigest}",
        scanner_version=predicate["scanner"]["version"],
        verdict=predicate["verdict"],
        threshold=predicate["threshold"],
        max_severity=predicate.get("maxSeverity"),
        scanned_at=predicate["scannedAt"],
        key_id=key_id,
        predicate=predicate,
    )


def _valid(key: object, sig: bytes, data: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, data)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True
