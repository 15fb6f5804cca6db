"""A model's manifest: every file (or shard) with its digest, and the parameters that made them.

The manifest maps onto the predicate of OpenSSF model signing v1.0 (``serialization`` and
``resources``).  tsuba adds two things a v1.0 verifier ignores: ``digest_size`` in the
serialization (so a verifier needs no defaults at all), and ``tsuba_files``, the list of
every file with its size.  In shard mode the format records no shard for an empty file, so
without that list an empty file added after signing would go unnoticed.

Reading a predicate is strict: anything malformed, inconsistent or ambiguous is refused with
an :class:`InputError`, never guessed around.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tsuba.core.errors import InputError
from tsuba.models.sign.hashing import (
    DEFAULT_SHARD_SIZE,
    DIGEST_SIZES,
    SINGLE_FILE,
    FileEntry,
    HashSpec,
    Progress,
    canonical_algorithm,
    hash_pieces,
    list_files,
    name_key,
    plan,
)

FILES_KEY = "tsuba_files"
_MAX_EXACT_FLOAT = 2**53  # integers above this may not survive a round trip through a double
_SHARDED = re.compile(r"(sha256|blake2b|blake3)-sharded-([1-9][0-9]*)")
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class Resource:
    """One digest of the manifest: a whole file, or the bytes ``start:end`` of it."""

    name: str
    digest: bytes
    start: int | None = None
    end: int | None = None

    @property
    def identifier(self) -> str:
        if self.start is None:
            return self.name
        return f"{self.name}:{self.start}:{self.end}"

    def sort_key(self) -> tuple[tuple[str, ...], int, int]:
        return name_key(self.name), self.start or 0, self.end or 0


@dataclass(frozen=True)
class Manifest:
    model_name: str
    spec: HashSpec
    resources: tuple[Resource, ...]
    # (name, size) of every file; None when the signature did not record them.
    files: tuple[tuple[str, int], ...] | None = None

    @classmethod
    def build(
        cls,
        path: Path,
        spec: HashSpec,
        *,
        workers: int | None = None,
        exclude: Iterable[Path] = (),
        progress: Progress | None = None,
    ) -> Manifest:
        """Hash the model at ``path`` as ``spec`` says."""
        files = list_files(path, spec, exclude=exclude)
        return cls.from_files(model_name(path), files, spec, workers=workers, progress=progress)

    @classmethod
    def from_files(
        cls,
        name: str,
        files: list[FileEntry],
        spec: HashSpec,
        *,
        workers: int | None = None,
        progress: Progress | None = None,
    ) -> Manifest:
        pieces = plan(files, spec)
        digests = hash_pieces(pieces, spec, workers=workers, progress=progress)
        sharded = spec.shard_size is not None
        resources = [
            Resource(
                p.file.name, d, p.start if sharded else None, p.end if sharded else None
            )
            for p, d in zip(pieces, digests, strict=True)
        ]
        resources.sort(key=Resource.sort_key)
        return cls(name, spec, tuple(resources), tuple((f.name, f.size) for f in files))

    # -- the digest every signature commits to ------------------------------------------
    def root_digest(self) -> bytes:
        """SHA-256 over every resource digest in manifest order (the in-toto subject)."""
        hasher = hashlib.sha256()
        for resource in self.resources:
            hasher.update(resource.digest)
        return hasher.digest()

    @property
    def total_size(self) -> int | None:
        if self.files is None:
            return None
        return sum(size for _, size in self.files)

    def expected_files(self) -> dict[str, list[Resource]]:
        """Each file the manifest covers, with its resources in offset order."""
        out: dict[str, list[Resource]] = {}
        if self.files is not None:
            for name, _ in self.files:
                out[name] = []
        for resource in self.resources:
            out.setdefault(resource.name, []).append(resource)
        return out

    def expected_size(self, name: str, resources: list[Resource]) -> int | None:
        if self.files is not None:
            sizes = dict(self.files)
            if name in sizes:
                return sizes[name]
        if self.spec.shard_size is not None and resources:
            return resources[-1].end
        return None

    # -- the predicate ------------------------------------------------------------------
    def serialization(self) -> dict[str, Any]:
        spec = self.spec
        out: dict[str, Any] = {
            "method": spec.method,
            # model_signing's configuration names BLAKE2b "blake2": its verifier can then
            # rebuild the hasher from this field alone.
            "hash_type": "blake2" if spec.algorithm == "blake2b" else spec.algorithm,
            "allow_symlinks": spec.allow_symlinks,
            "digest_size": spec.size,
        }
        if spec.shard_size is not None:
            out["shard_size"] = spec.shard_size
        if spec.ignore_paths:
            out["ignore_paths"] = list(spec.ignore_paths)
        return out

    def predicate(self) -> dict[str, Any]:
        algorithm = self.spec.resource_algorithm
        out: dict[str, Any] = {
            "serialization": self.serialization(),
            "resources": [
                {"name": r.identifier, "algorithm": algorithm, "digest": r.digest.hex()}
                for r in self.resources
            ],
        }
        if self.files is not None:
            out[FILES_KEY] = [{"name": n, "size": s} for n, s in self.files]
        return out

    @classmethod
    def from_predicate(
        cls,
        model_name: str,
        predicate: Any,
        *,
        hash_type: str | None = None,
        shard_size: int | None = None,
    ) -> Manifest:
        """Read a predicate back; ``hash_type``/``shard_size`` fill what it leaves unsaid.

        Those two stand in only where the signature cannot tell: a value the signature
        states is never overridden, and a contradicting option is refused.
        """
        pred = _object(predicate, "predicate")
        serialization = _object(pred.get("serialization"), "predicate.serialization")
        raw_resources = pred.get("resources")
        if not isinstance(raw_resources, list):
            raise InputError("signature predicate has no 'resources' list")
        spec = _spec(serialization, raw_resources, hash_type, shard_size)
        resources = [_resource(item, spec, i) for i, item in enumerate(raw_resources)]
        _check_resources(resources, spec)
        files = _files(pred.get(FILES_KEY), resources, spec)
        return cls(model_name, spec, tuple(resources), files)


def model_name(path: Path) -> str:
    """The informative name of the model at ``path``: its last path component."""
    name = Path(path).name
    if not name or name == "..":
        name = os.path.basename(os.path.abspath(path))
    return name


# -- strict reading -------------------------------------------------------------------------
def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"signature {what} must be a JSON object")
    return value


def _integer(value: Any, what: str) -> int | None:
    """An integer, also from a JSON number written as a double; None if not exactly one."""
    if isinstance(value, bool):
        raise InputError(f"signature {what} must be a number, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        # protobuf's JSON writes every number as a double (model_signing's 1000000000.0)
        if math.isfinite(value) and value.is_integer() and 0 < value <= _MAX_EXACT_FLOAT:
            return int(value)
        return None
    raise InputError(f"signature {what} must be a number, not {value!r}")


def _spec(
    ser: Mapping[str, Any],
    resources: list[Any],
    hash_type: str | None,
    shard_size: int | None,
) -> HashSpec:
    method = ser.get("method")
    if method not in ("files", "shards"):
        raise InputError(
            f"signature serialization method {method!r} is not supported: use 'files' or 'shards'"
        )
    algorithm = _algorithm(ser, resources, hash_type)
    size: int | None = None
    if method == "shards":
        size = _shard_size(ser, resources, shard_size)
    elif shard_size is not None:
        raise InputError(
            "the signature hashes whole files (method 'files'): a shard size does not apply"
        )
    digest_size = ser.get("digest_size")
    if digest_size is not None:
        digest_size = _integer(digest_size, "serialization.digest_size")
        if digest_size is None:
            raise InputError("signature serialization.digest_size is not a whole number")
    allow = ser.get("allow_symlinks", False)
    if not isinstance(allow, bool):
        raise InputError("signature serialization.allow_symlinks must be true or false")
    ignores = ser.get("ignore_paths", [])
    if not isinstance(ignores, list) or not all(isinstance(p, str) for p in ignores):
        raise InputError("signature serialization.ignore_paths must be a list of paths")
    return HashSpec(
        algorithm=algorithm,
        shard_size=size,
        digest_size=digest_size,
        allow_symlinks=allow,
        ignore_paths=tuple(ignores),
    )


def _algorithm(ser: Mapping[str, Any], resources: list[Any], option: str | None) -> str:
    stated = ser.get("hash_type")
    chosen = canonical_algorithm(option) if option is not None else None
    if stated is None:
        if chosen is None:
            raise InputError(
                "the signature does not say which hash it used: pass the hash type "
                "(sha256, blake2 or blake3)"
            )
        return chosen
    if not isinstance(stated, str):
        raise InputError("signature serialization.hash_type must be a string")
    algorithm = canonical_algorithm(stated)
    if chosen is not None and chosen != algorithm:
        raise InputError(
            f"the signature records hash type {stated!r}; the hash type option "
            f"{option!r} contradicts it"
        )
    return algorithm


def _shard_size(ser: Mapping[str, Any], resources: list[Any], option: int | None) -> int:
    stated = ser.get("shard_size")
    recorded = _integer(stated, "serialization.shard_size") if stated is not None else None
    if recorded is None:
        # The resources repeat the size in their algorithm name ("sha256-sharded-N").
        for item in resources[:1]:
            algorithm = item.get("algorithm") if isinstance(item, dict) else None
            match = _SHARDED.fullmatch(algorithm) if isinstance(algorithm, str) else None
            if match:
                recorded = int(match.group(2))
    if recorded is not None:
        if option is not None and option != recorded:
            raise InputError(
                f"the signature records shard size {recorded}; the shard size option "
                f"{option} contradicts it"
            )
        return recorded
    return option if option is not None else DEFAULT_SHARD_SIZE


def _resource(item: Any, spec: HashSpec, index: int) -> Resource:
    where = f"resources[{index}]"
    if not isinstance(item, dict):
        raise InputError(f"signature {where} must be a JSON object")
    name, algorithm, digest = item.get("name"), item.get("algorithm"), item.get("digest")
    if not isinstance(name, str) or not isinstance(algorithm, str) or not isinstance(digest, str):
        raise InputError(f"signature {where} needs string 'name', 'algorithm' and 'digest'")
    if algorithm != spec.resource_algorithm:
        raise InputError(
            f"signature {where} ({name!r}) uses algorithm {algorithm!r} but the serialization "
            f"says {spec.resource_algorithm!r}"
        )
    if len(digest) != 2 * spec.size or not _HEX.fullmatch(digest.lower()):
        raise InputError(
            f"signature {where} ({name!r}) digest is not {spec.size} bytes of hexadecimal"
        )
    value = bytes.fromhex(digest)
    if spec.shard_size is None:
        _check_name(name, where)
        return Resource(name, value)
    parts = name.rsplit(":", 2)
    if len(parts) != 3 or not all(p.isdigit() for p in parts[1:]):
        raise InputError(f"signature {where}: {name!r} is not 'path:start:end'")
    path, start, end = parts[0], int(parts[1]), int(parts[2])
    _check_name(path, where)
    return Resource(path, value, start, end)


def _check_name(name: str, where: str) -> None:
    if name == SINGLE_FILE:
        return
    parts = name.split("/")
    if (
        not name
        or name.startswith("/")
        or "\x00" in name
        or "\\" in name
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise InputError(f"signature {where}: {name!r} is not a relative path inside the model")


def _check_resources(resources: list[Resource], spec: HashSpec) -> None:
    seen: set[str] = set()
    by_file: dict[str, list[Resource]] = {}
    for resource in resources:
        if resource.identifier in seen:
            raise InputError(f"signature lists {resource.identifier!r} twice")
        seen.add(resource.identifier)
        by_file.setdefault(resource.name, []).append(resource)
    if SINGLE_FILE in by_file and len(by_file) > 1:
        raise InputError("signature mixes a single-file model ('.') with other files")
    if spec.shard_size is None:
        return
    for name, shards in by_file.items():
        shards.sort(key=lambda r: r.start or 0)
        size = shards[-1].end or 0
        if [(r.start, r.end) for r in shards] != spec.ranges(size):
            raise InputError(
                f"signature shards of {name!r} do not cover it in pieces of "
                f"{spec.shard_size} bytes"
            )


def _files(
    raw: Any, resources: list[Resource], spec: HashSpec
) -> tuple[tuple[str, int], ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InputError(f"signature predicate.{FILES_KEY} must be a list")
    files: dict[str, int] = {}
    for i, item in enumerate(raw):
        where = f"{FILES_KEY}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InputError(f"signature {where} needs a 'name'")
        size = item.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InputError(f"signature {where} needs a whole, non-negative 'size'")
        name = item["name"]
        _check_name(name, where)
        if name in files:
            raise InputError(f"signature {FILES_KEY} lists {name!r} twice")
        files[name] = size
    covered: dict[str, int] = {}
    for resource in resources:
        covered[resource.name] = max(covered.get(resource.name, 0), resource.end or 0)
    for name, end in covered.items():
        if name not in files:
            raise InputError(f"signature {FILES_KEY} lacks {name!r}, which its resources cover")
        if spec.shard_size is not None and files[name] != end:
            raise InputError(f"signature {FILES_KEY} gives {name!r} a size its shards contradict")
    for name, size in files.items():
        if name not in covered and not (spec.shard_size is not None and size == 0):
            raise InputError(f"signature {FILES_KEY} names {name!r} but no digest covers it")
    return tuple(sorted(files.items(), key=lambda item: name_key(item[0])))


__all__ = ["DIGEST_SIZES", "FILES_KEY", "Manifest", "Resource", "model_name"]
