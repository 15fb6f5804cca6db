"""Verifying a model against its signature, and naming every difference.

Order matters: the signature is checked first (key hint, then ECDSA over the envelope), then
the statement is read and its resources must hash to its subject digest, and only then is
the model hashed, with the parameters the signature records.  Names in the signature are
compared with names found on disk and never opened, so a hostile signature cannot make the
verifier read outside the model.

The report lists each file modified, added (empty ones too), removed, or renamed (a removed
file whose exact contents reappear under a new name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tsuba.core.errors import InputError, IntegrityError
from tsuba.models.sign.bundle import (
    TrustedKey,
    parse_bundle,
    parse_statement,
    verify_envelope,
)
from tsuba.models.sign.hashing import (
    FileEntry,
    Progress,
    hash_pieces,
    list_files,
    name_key,
    plan,
)
from tsuba.models.sign.manifest import Manifest, Resource
from tsuba.models.sign.paths import default_signature_path

ChangeKind = Literal["modified", "added", "removed", "renamed"]
_SHOWN_RANGES = 4


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    path: str
    previous: str | None = None  # renamed: the name it was signed under
    detail: str = ""

    def describe(self) -> str:
        if self.kind == "renamed":
            text = f"renamed: {self.previous} -> {self.path}"
        else:
            text = f"{self.kind}: {self.path}"
        return f"{text} ({self.detail})" if self.detail else text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"change": self.kind, "path": self.path}
        if self.previous is not None:
            out["previous"] = self.previous
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class VerifyReport:
    path: str
    signature: str
    model_name: str
    root_digest: str
    key: str
    key_hint: str | None
    serialization: dict[str, Any]
    files_checked: int
    bytes_hashed: int
    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()
    manifest: Manifest | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.changes

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "path": self.path,
            "signature": self.signature,
            "model_name": self.model_name,
            "root_digest": self.root_digest,
            "key": self.key,
            "key_hint": self.key_hint,
            "serialization": self.serialization,
            "files_checked": self.files_checked,
            "bytes_hashed": self.bytes_hashed,
            "changes": [c.to_dict() for c in self.changes],
            "notes": list(self.notes),
        }


class ModelIntegrityError(IntegrityError):
    """The signature is genuine but the model differs from what it signed."""

    code = "model_modified"

    def __init__(self, report: VerifyReport) -> None:
        shown = "; ".join(c.describe() for c in report.changes[:20])
        more = len(report.changes) - 20
        tail = f"; and {more} more" if more > 0 else ""
        super().__init__(
            f"{report.path} does not match its signature: {shown}{tail}"
        )
        self.report = report


def verify_path(
    path: str | Path,
    keys: Sequence[TrustedKey],
    *,
    signature: str | Path | None = None,
    hash_type: str | None = None,
    shard_size: int | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Verify the model at ``path`` against its signature with one of ``keys``.

    ``hash_type`` and ``shard_size`` stand in only for what a signature does not record
    (see :meth:`Manifest.from_predicate`).  Returns the report of a model that matches;
    raises :class:`ModelIntegrityError` (with ``.report``) when any file differs,
    IntegrityError when the signature itself does not verify, InputError when it is
    malformed.
    """
    root = Path(path)
    sig_path = Path(signature) if signature is not None else default_signature_path(root)
    try:
        raw = sig_path.read_bytes()
    except FileNotFoundError:
        raise InputError(
            f"no signature at {sig_path}: sign the model first or name the signature file"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read signature {sig_path}: {exc.strerror}") from None
    bundle = parse_bundle(raw)
    trusted = verify_envelope(bundle, keys)
    stmt = parse_statement(bundle.payload)
    manifest = Manifest.from_predicate(
        stmt.model_name, stmt.predicate, hash_type=hash_type, shard_size=shard_size
    )
    if manifest.root_digest() != stmt.root_digest:
        raise IntegrityError(
            f"signature {sig_path} is inconsistent: its resources do not hash to its subject "
            "digest"
        )
    local = list_files(root, manifest.spec, exclude=[sig_path])
    changes, hashed, notes = compare(manifest, local, workers=workers, progress=progress)
    report = VerifyReport(
        path=str(root),
        signature=str(sig_path),
        model_name=stmt.model_name,
        root_digest=stmt.root_digest.hex(),
        key=trusted.label,
        key_hint=bundle.hint,
        serialization=dict(stmt.predicate.get("serialization", {})),
        files_checked=len(local),
        bytes_hashed=hashed,
        changes=tuple(changes),
        notes=tuple(notes),
        manifest=manifest,
    )
    if changes:
        raise ModelIntegrityError(report)
    return report


def compare(
    manifest: Manifest,
    local: list[FileEntry],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
) -> tuple[list[Change], int, list[str]]:
    """Differences between ``manifest`` and the files found, bytes hashed, and notes."""
    spec = manifest.spec
    expected = manifest.expected_files()
    found = {f.name: f for f in local}
    removed = sorted(set(expected) - set(found), key=name_key)
    added = sorted(set(found) - set(expected), key=name_key)
    common = sorted(set(expected) & set(found), key=name_key)

    changes: list[Change] = []
    to_hash: list[FileEntry] = []
    for name in common:
        want = manifest.expected_size(name, expected[name])
        if want is not None and want != found[name].size:
            changes.append(
                Change("modified", name, detail=f"size {want} -> {found[name].size} bytes")
            )
        else:
            to_hash.append(found[name])
    # Added files are hashed only when something was removed: a rename needs their digests.
    removed_sizes = {manifest.expected_size(n, expected[n]) for n in removed}
    candidates = [
        found[n] for n in added
        if removed and (None in removed_sizes or found[n].size in removed_sizes)
    ]
    pieces = plan(to_hash + candidates, spec)
    digests = hash_pieces(pieces, spec, workers=workers, progress=progress)
    computed: dict[str, list[tuple[int, int, bytes]]] = {}
    for piece, digest in zip(pieces, digests, strict=True):
        computed.setdefault(piece.file.name, []).append((piece.start, piece.end, digest))

    for entry in to_hash:
        detail = _difference(expected[entry.name], computed.get(entry.name, []), spec.shard_size)
        if detail is not None:
            changes.append(Change("modified", entry.name, detail=detail))

    renamed_from = _renames(manifest, expected, removed, candidates, computed)
    gone = set(renamed_from.values())
    for name in removed:
        if name not in gone:
            changes.append(Change("removed", name))
    notes: list[str] = []
    for name in added:
        if name in renamed_from:
            changes.append(Change("renamed", name, previous=renamed_from[name]))
            continue
        empty = found[name].size == 0
        changes.append(Change("added", name, detail="empty file" if empty else ""))
        if empty and spec.shard_size is not None and manifest.files is None:
            notes.append(
                f"{name}: signatures in shard mode made without a file list record no empty "
                "files, so this one may have been present when the model was signed"
            )
    changes.sort(key=lambda c: (name_key(c.path), c.kind))
    return changes, sum(p.length for p in pieces), notes


def _renames(
    manifest: Manifest,
    expected: dict[str, list[Resource]],
    removed: list[str],
    candidates: list[FileEntry],
    computed: dict[str, list[tuple[int, int, bytes]]],
) -> dict[str, str]:
    """New name -> signed name, for added files whose contents equal a removed file's.

    Where several files share the same contents, a new name in the same folder, then one
    with the same base name, is preferred: the likeliest move.
    """
    fingerprints: dict[tuple[int | None, tuple[bytes, ...]], list[str]] = {}
    for name in removed:
        resources = expected[name]
        key = (manifest.expected_size(name, resources), tuple(r.digest for r in resources))
        fingerprints.setdefault(key, []).append(name)
    pairs: list[tuple[int, str, str]] = []
    for entry in candidates:
        digest_list = tuple(d for _, _, d in computed.get(entry.name, []))
        for size in (entry.size, None):
            for old in fingerprints.get((size, digest_list), []):
                pairs.append((-_closeness(old, entry.name), entry.name, old))
    renamed_from: dict[str, str] = {}
    taken: set[str] = set()
    for _, new, old in sorted(pairs, key=lambda p: (p[0], name_key(p[1]), name_key(p[2]))):
        if new not in renamed_from and old not in taken:
            renamed_from[new] = old
            taken.add(old)
    return renamed_from


def _closeness(old: str, new: str) -> int:
    same_dir = old.rpartition("/")[0] == new.rpartition("/")[0]
    same_base = old.rpartition("/")[2] == new.rpartition("/")[2]
    return 2 * same_dir + same_base


def _difference(
    want: list[Resource], got: list[tuple[int, int, bytes]], shard_size: int | None
) -> str | None:
    if shard_size is None:
        if len(want) == 1 and len(got) == 1 and want[0].digest == got[0][2]:
            return None
        return "contents differ"
    wanted = {(r.start, r.end): r.digest for r in want}
    bad = [(s, e) for s, e, d in got if wanted.get((s, e)) != d]
    if not bad and len(got) == len(want):
        return None
    if not bad:
        return "contents differ"
    shown = ", ".join(f"{s}-{e}" for s, e in bad[:_SHOWN_RANGES])
    more = f" and {len(bad) - _SHOWN_RANGES} more" if len(bad) > _SHOWN_RANGES else ""
    return f"bytes {shown}{more} differ"


__all__ = ["Change", "ModelIntegrityError", "VerifyReport", "compare", "verify_path"]
