"""What the registry hands out: plain values, never live database rows."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from tsuba.core.errors import InputError

Status = Literal["active", "quarantined", "retired"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9][A-Za-z0-9._-]{0,62})?")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_PARAM_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
# Dataset digests: algorithm -> hex length.
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128, "blake2b": 128, "blake3": 64}
MAX_PARAMS = 256
MAX_PARAM_VALUE = 1024


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise InputError(
            f"invalid model name {name!r}: letters, digits, '.', '_', '-', at most one '/' "
            "(like org/model), up to 128 characters"
        )
    return name


def check_version(version: str) -> str:
    if not _VERSION.fullmatch(version):
        raise InputError(
            f"invalid model version {version!r}: letters, digits, '.', '_', '+', '-', up to "
            "64 characters, starting with a letter or digit"
        )
    return version


@dataclass(frozen=True)
class ModelRef:
    """``name:version``, or ``name`` alone meaning its newest version where that is allowed."""

    name: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str, *, need_version: bool = False) -> ModelRef:
        name, sep, version = text.strip().rpartition(":")
        if not sep:
            name, version = version, ""
        if need_version and not version:
            raise InputError(f"name a version: {text.strip()}:VERSION")
        return cls(check_name(name), check_version(version) if version else None)

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}:{self.version}"


@dataclass(frozen=True)
class DatasetRef:
    digest: str  # "<algorithm>:<hex>"
    name: str | None = None

    @classmethod
    def parse(cls, text: str) -> DatasetRef:
        """``[NAME=]DIGEST`` where DIGEST is ``sha256:<hex>`` (or bare SHA-256 hex)."""
        raw = text.strip()
        name: str | None = None
        if "=" in raw:
            name, raw = (part.strip() for part in raw.split("=", 1))
            if not name or len(name) > 256:
                raise InputError(f"invalid dataset name in {text!r}")
        algorithm, sep, value = raw.lower().partition(":")
        if not sep:
            algorithm, value = "sha256", algorithm
        length = _DIGEST_LENGTHS.get(algorithm)
        if length is None or len(value) != length or not re.fullmatch(r"[0-9a-f]+", value):
            raise InputError(
                f"invalid dataset digest {text!r}: use [NAME=]sha256:<64 hex digits> "
                f"(or {', '.join(a for a in _DIGEST_LENGTHS if a != 'sha256')})"
            )
        return cls(f"{algorithm}:{value}", name)

    @property
    def algorithm(self) -> str:
        return self.digest.split(":", 1)[0]

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "name": self.name}


def parse_params(items: list[str] | dict[str, Any] | None) -> dict[str, str]:
    """Hyperparameters from ``k=v`` strings (or a mapping), as strings."""
    if not items:
        return {}
    pairs: list[tuple[str, Any]]
    if isinstance(items, dict):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            key, sep, value = item.partition("=")
            if not sep:
                raise InputError(f"invalid parameter {item!r}: use key=value")
            pairs.append((key.strip(), value))
    if len(pairs) > MAX_PARAMS:
        raise InputError(f"at most {MAX_PARAMS} parameters")
    out: dict[str, str] = {}
    for key, value in pairs:
        if not _PARAM_KEY.fullmatch(key):
            raise InputError(f"invalid parameter name {key!r}: letters, digits, '_', '.', '-'")
        if key in out:
            raise InputError(f"parameter {key!r} given twice")
        text = str(value)
        if len(text) > MAX_PARAM_VALUE:
            raise InputError(f"parameter {key!r} is longer than {MAX_PARAM_VALUE} characters")
        out[key] = text
    return out


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    status: Status
    uri: str
    source: str | None
    root_digest: str
    serialization: dict[str, Any]
    key_hint: str
    signed_by: str
    file_count: int
    total_bytes: int
    scan: dict[str, Any]
    params: dict[str, str]
    created_at: datetime
    created_by: str
    verified_at: datetime | None
    status_reason: str | None
    status_changed_at: datetime
    status_changed_by: str
    datasets: tuple[DatasetRef, ...] = ()
    parents: tuple[str, ...] = ()
    signature: str = field(default="", repr=False)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "uri": self.uri,
            "source": self.source,
            "root_digest": self.root_digest,
            "serialization": self.serialization,
            "key_hint": self.key_hint,
            "signed_by": self.signed_by,
            "file_count": self.file_count,
            "total_bytes": self.total_bytes,
            "scan": self.scan,
            "params": self.params,
            "datasets": [d.to_dict() for d in self.datasets],
            "parents": list(self.parents),
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "verified_at": iso(self.verified_at),
            "status_reason": self.status_reason,
            "status_changed_at": iso(self.status_changed_at),
            "status_changed_by": self.status_changed_by,
        }


@dataclass(frozen=True)
class LineageEntry:
    """A version related to the one asked about, ``depth`` steps away."""

    ref: str
    status: Status
    depth: int

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "status": self.status, "depth": self.depth}


@dataclass(frozen=True)
class Lineage:
    subject: str  # "name:version" or a dataset digest
    ancestors: tuple[LineageEntry, ...] = ()
    descendants: tuple[LineageEntry, ...] = ()
    datasets: tuple[DatasetRef, ...] = ()  # of the subject and all its ancestors

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "ancestors": [a.to_dict() for a in self.ancestors],
            "descendants": [d.to_dict() for d in self.descendants],
            "datasets": [d.to_dict() for d in self.datasets],
        }


__all__ = [
    "DatasetRef",
    "Lineage",
    "LineageEntry",
    "ModelRef",
    "Status",
    "VersionInfo",
    "check_name",
    "check_version",
    "iso",
    "parse_params",
]
