"""Inclusion and consistency proofs as values, with their JSON export (see ``verify``)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from tsuba.core.audit import _fields as f
from tsuba.core.audit.merkle import HASH_SIZE
from tsuba.core.audit.treehead import LOG_ID_SIZE, SignedTreeHead

INCLUSION_FORMAT = "tsuba-audit-inclusion/v1"
CONSISTENCY_FORMAT = "tsuba-audit-consistency/v1"


@dataclass(frozen=True)
class InclusionProof:
    """Entry ``leaf_index`` is in the tree of ``tree_size`` entries.

    ``consistency_path`` (optional) proves that tree a prefix of the tree in ``sth``, so a
    proof against an older size still ties to a current signed head.
    """

    log_id: bytes
    leaf_index: int
    tree_size: int
    entry: bytes
    leaf_hash: bytes
    inclusion_path: tuple[bytes, ...]
    consistency_path: tuple[bytes, ...] = ()
    sth: SignedTreeHead | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": INCLUSION_FORMAT,
            "log_id": self.log_id.hex(),
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "entry": base64.b64encode(self.entry).decode("ascii"),
            "leaf_hash": self.leaf_hash.hex(),
            "inclusion_path": [h.hex() for h in self.inclusion_path],
        }
        if self.consistency_path:
            data["consistency_path"] = [h.hex() for h in self.consistency_path]
        if self.sth is not None:
            data["sth"] = self.sth.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InclusionProof:
        what = "inclusion proof"
        f.check_format(data, what, INCLUSION_FORMAT)
        f.check_keys(
            data,
            what,
            {"format", "log_id", "leaf_index", "tree_size", "entry", "leaf_hash",
             "inclusion_path"},
            frozenset({"consistency_path", "sth"}),
        )
        sth = None
        if "sth" in data:
            sth = SignedTreeHead.from_dict(f.get_object(data, "sth", what))
        consistency: list[bytes] = []
        if "consistency_path" in data:
            consistency = f.get_hex_list(data, "consistency_path", what, HASH_SIZE)
        return cls(
            log_id=f.get_hex(data, "log_id", what, LOG_ID_SIZE),
            leaf_index=f.get_int(data, "leaf_index", what),
            tree_size=f.get_int(data, "tree_size", what),
            entry=f.get_b64(data, "entry", what),
            leaf_hash=f.get_hex(data, "leaf_hash", what, HASH_SIZE),
            inclusion_path=tuple(f.get_hex_list(data, "inclusion_path", what, HASH_SIZE)),
            consistency_path=tuple(consistency),
            sth=sth,
        )


@dataclass(frozen=True)
class ConsistencyProof:
    """The tree of ``first_size`` entries is a prefix of the tree of ``second_size``."""

    log_id: bytes
    first_size: int
    second_size: int
    first_root: bytes
    second_root: bytes
    path: tuple[bytes, ...]
    first_sth: SignedTreeHead | None = field(default=None, compare=False)
    second_sth: SignedTreeHead | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": CONSISTENCY_FORMAT,
            "log_id": self.log_id.hex(),
            "first_size": self.first_size,
            "second_size": self.second_size,
            "first_root": self.first_root.hex(),
            "second_root": self.second_root.hex(),
            "path": [h.hex() for h in self.path],
        }
        if self.first_sth is not None:
            data["first_sth"] = self.first_sth.to_dict()
        if self.second_sth is not None:
            data["second_sth"] = self.second_sth.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConsistencyProof:
        what = "consistency proof"
        f.check_format(data, what, CONSISTENCY_FORMAT)
        f.check_keys(
            data,
            what,
            {"format", "log_id", "first_size", "second_size", "first_root", "second_root",
             "path"},
            frozenset({"first_sth", "second_sth"}),
        )
        sths = {
            key: SignedTreeHead.from_dict(f.get_object(data, key, what))
            for key in ("first_sth", "second_sth")
            if key in data
        }
        return cls(
            log_id=f.get_hex(data, "log_id", what, LOG_ID_SIZE),
            first_size=f.get_int(data, "first_size", what),
            second_size=f.get_int(data, "second_size", what),
            first_root=f.get_hex(data, "first_root", what, HASH_SIZE),
            second_root=f.get_hex(data, "second_root", what, HASH_SIZE),
            path=tuple(f.get_hex_list(data, "path", what, HASH_SIZE)),
            first_sth=sths.get("first_sth"),
            second_sth=sths.get("second_sth"),
        )
