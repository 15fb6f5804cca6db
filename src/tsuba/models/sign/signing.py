"""Signing a model folder or file: hash it, build the manifest, sign it, write the bundle."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tsuba.core.errors import InputError
from tsuba.models.sign.bundle import Signer, key_hint, sign_manifest
from tsuba.models.sign.hashing import (
    DEFAULT_SHARD_SIZE,
    GIT_PATHS,
    HashSpec,
    Progress,
    canonical_algorithm,
)
from tsuba.models.sign.manifest import Manifest
from tsuba.models.sign.paths import default_signature_path


@dataclass(frozen=True)
class SignResult:
    path: str
    signature: str
    model_name: str
    root_digest: str
    key: str
    key_hint: str
    serialization: dict[str, Any]
    files: int
    total_bytes: int
    bundle: bytes = field(repr=False)
    manifest: Manifest = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "signature": self.signature,
            "model_name": self.model_name,
            "root_digest": self.root_digest,
            "key": self.key,
            "key_hint": self.key_hint,
            "serialization": self.serialization,
            "files": self.files,
            "total_bytes": self.total_bytes,
        }


def hash_spec(
    algorithm: str = "sha256",
    shard_size: int | Literal["auto"] | None = "auto",
    *,
    allow_symlinks: bool = False,
    ignore_paths: Iterable[str] = (),
    ignore_git_paths: bool = True,
) -> HashSpec:
    """The spec tsuba signs with.

    ``auto`` shards SHA-256 and BLAKE2b in pieces of 1 GB (so one large file still keeps
    every core busy) and hashes BLAKE3 per file (it spreads one file over the cores
    itself).  ``None`` or 0 hashes every file whole.
    """
    algorithm = canonical_algorithm(algorithm)
    size: int | None
    if shard_size == "auto":
        size = None if algorithm == "blake3" else DEFAULT_SHARD_SIZE
    elif shard_size in (None, 0):
        size = None
    else:
        assert isinstance(shard_size, int)
        size = shard_size
    if algorithm == "blake3" and size is not None:
        raise InputError(
            "BLAKE3 hashes each file on every core already: drop the shard size (shards "
            "apply to sha256 and blake2)"
        )
    ignores = [*ignore_paths, *(GIT_PATHS if ignore_git_paths else ())]
    return HashSpec(
        algorithm=algorithm,
        shard_size=size,
        allow_symlinks=allow_symlinks,
        ignore_paths=tuple(ignores),
    )


def sign_path(
    path: str | Path,
    signer: Signer,
    *,
    signature: str | Path | None = None,
    algorithm: str = "sha256",
    shard_size: int | Literal["auto"] | None = "auto",
    allow_symlinks: bool = False,
    ignore_paths: Iterable[str] = (),
    ignore_git_paths: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
) -> SignResult:
    """Sign the model at ``path``; the bundle goes to ``signature`` (default ``model.sig``).

    A signature written inside the model folder is itself left out, and recorded as
    ignored, so that verifiers (tsuba or model_signing) leave it out too.
    """
    root = Path(path)
    sig_path = Path(signature) if signature is not None else default_signature_path(root)
    ignores = list(ignore_paths)
    inside = _inside(root, sig_path)
    if inside is not None:
        ignores.append(inside)
    spec = hash_spec(
        algorithm,
        shard_size,
        allow_symlinks=allow_symlinks,
        ignore_paths=ignores,
        ignore_git_paths=ignore_git_paths,
    )
    manifest = Manifest.build(root, spec, workers=workers, exclude=[sig_path], progress=progress)
    bundle, signed = sign_manifest(manifest, signer)
    _write_atomic(sig_path, bundle)
    return SignResult(
        path=str(root),
        signature=str(sig_path),
        model_name=manifest.model_name,
        root_digest=manifest.root_digest().hex(),
        key=signed.key_ref,
        key_hint=key_hint(signed.public_key_pem),
        serialization=manifest.serialization(),
        files=len(manifest.files or ()),
        total_bytes=manifest.total_size or 0,
        bundle=bundle,
        manifest=manifest,
    )


def _inside(root: Path, target: Path) -> str | None:
    if not root.is_dir():
        return None
    try:
        rel = Path(os.path.abspath(target)).relative_to(os.path.abspath(root))
    except ValueError:
        return None
    return rel.as_posix()


def _write_atomic(path: Path, data: bytes) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write signature {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        os.unlink(tmp)
        raise InputError(f"cannot write signature {path}: {exc.strerror}") from None


__all__ = ["SignResult", "hash_spec", "sign_path"]
