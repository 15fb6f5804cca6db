"""Registering a model: scan it, sign it (or verify the signature it came with), record it.

Everything cheap is checked before anything is hashed: the name and version are free, the
parents exist, the datasets and parameters are well formed.  A model the scanner finds
unsafe, or cannot read, is refused (fail closed); the scan summary is kept with the version.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tsuba.core.errors import InputError, IntegrityError
from tsuba.models.registry.records import DatasetRef, VersionInfo, parse_params
from tsuba.models.registry.service import Registry
from tsuba.models.sign import (
    Signer,
    SignResult,
    TrustedKey,
    VerifyReport,
    sign_path,
    verify_path,
)
from tsuba.models.sign.paths import default_signature_path


class UnsafeModelError(IntegrityError):
    """The scanner found something dangerous in the model (or could not read all of it)."""

    code = "unsafe_model"


@dataclass(frozen=True)
class Registration:
    info: VersionInfo
    signed: SignResult | None
    verified: VerifyReport | None

    def to_dict(self) -> dict[str, Any]:
        out = self.info.to_dict()
        out["signature"] = (self.signed.signature if self.signed else
                            self.verified.signature if self.verified else None)
        return out


def scan_model(path: Path) -> dict[str, Any]:
    """The scanner's verdict as a summary; UnsafeModelError when it is not clean."""
    try:
        scanner = importlib.import_module("tsuba.models.scan")
        scan_path = scanner.scan_path
    except (ModuleNotFoundError, AttributeError):
        return {"status": "unavailable", "detail": "the model scanner is not installed"}
    report = scan_path(path)
    counts = report.counts() if hasattr(report, "counts") else {}
    worst = getattr(report, "max_severity", None)
    summary: dict[str, Any] = {
        "status": "clean",
        "tool_version": str(getattr(report, "tool_version", "")),
        "findings": len(getattr(report, "findings", [])),
        "max_severity": getattr(worst, "label", None if worst is None else str(worst)),
        "counts": {str(k): int(v) for k, v in counts.items()},
    }
    code = report.exit_code()
    if code == 1:
        summary["status"] = "unsafe"
        raise UnsafeModelError(
            f"model {path} is unsafe: {summary['findings']} finding(s), worst "
            f"{summary['max_severity']}; see 'tsuba model scan {path}'"
        )
    if code != 0:
        unreadable = ", ".join(getattr(report, "unreadable", [])[:5])
        raise UnsafeModelError(
            f"model {path} could not be fully scanned ({unreadable or 'unreadable files'}): "
            f"see 'tsuba model scan {path}'"
        )
    return summary


def register_model(
    registry: Registry,
    name: str,
    version: str,
    path: str | Path,
    *,
    signer: Signer | None = None,
    trusted: Sequence[TrustedKey] = (),
    signature: str | Path | None = None,
    algorithm: str = "sha256",
    shard_size: int | Literal["auto"] | None = "auto",
    source: str | None = None,
    datasets: Sequence[str | DatasetRef] = (),
    parents: Sequence[str] = (),
    params: dict[str, Any] | list[str] | None = None,
    scan: bool = True,
    workers: int | None = None,
) -> Registration:
    """Register ``path`` as ``name:version``.

    With ``signer`` the model is signed now (the signature goes to ``signature``, default
    ``model.sig``).  Without, it must carry a signature that one of ``trusted`` verifies.
    """
    root = Path(path)
    if not root.exists():
        raise InputError(f"no such file or directory: {root}")
    registry.check_new(name, version, parents)
    refs = [d if isinstance(d, DatasetRef) else DatasetRef.parse(d) for d in datasets]
    parse_params(params)
    if signer is None and not trusted:
        raise InputError("register needs a key to sign with, or trusted keys to verify with")
    summary = scan_model(root) if scan else {"status": "skipped"}
    signed: SignResult | None = None
    report: VerifyReport | None = None
    if signer is not None:
        signed = sign_path(root, signer, signature=signature, algorithm=algorithm,
                           shard_size=shard_size, workers=workers)
        bundle, root_digest, key_hint, signed_by = (
            signed.bundle.decode(), signed.root_digest, signed.key_hint, signed.key
        )
        serialization, files, total = signed.serialization, signed.files, signed.total_bytes
    else:
        report = verify_path(root, trusted, signature=signature, workers=workers)
        sig_path = Path(signature) if signature is not None else default_signature_path(root)
        bundle = sig_path.read_text(encoding="utf-8")
        root_digest, key_hint, signed_by = report.root_digest, report.key_hint or "", report.key
        serialization, files = report.serialization, report.files_checked
        total = report.bytes_hashed
    info = registry.record(
        name=name, version=version, uri=str(root.resolve()), root_digest=root_digest,
        serialization=serialization, signature=bundle, key_hint=key_hint, signed_by=signed_by,
        file_count=files, total_bytes=total, scan=summary, source=source, datasets=refs,
        parents=parents, params=params,
    )
    return Registration(info, signed, report)


def check_integrity(
    registry: Registry, ref: str, trusted: Sequence[TrustedKey], *, path: str | Path | None = None
) -> VerifyReport:
    """Verify a registered version's files again against the signature it was registered
    with.  A mismatch quarantines it (recorded) and clears its verification."""
    import tempfile  # noqa: PLC0415

    info = registry.get(ref)
    root = Path(path) if path is not None else Path(info.uri)
    with tempfile.TemporaryDirectory(prefix="tsuba-sig-") as tmp:
        sig = Path(tmp) / "model.sig"
        sig.write_text(info.signature, encoding="utf-8")
        try:
            report = verify_path(root, trusted, signature=sig)
        except IntegrityError as exc:
            registry.mark_unverified(info.ref)
            if info.status != "quarantined":
                registry.quarantine(info.ref, f"integrity check failed: {exc.message[:900]}")
            raise
    registry.mark_verified(info.ref)
    return report


__all__ = ["Registration", "UnsafeModelError", "check_integrity", "register_model", "scan_model"]
