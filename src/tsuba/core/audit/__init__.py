"""Tamper-evident audit log: an RFC 9162 Merkle tree over security events, signed heads.

``AuditLog`` (storage-backed) is loaded on first use, so that
``tsuba.core.audit.verify`` stays importable with nothing but ``cryptography``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tsuba.core.audit.integrity import VerifyReport
    from tsuba.core.audit.log import AuditLog, LogEntry, Receipt
    from tsuba.core.audit.proofs import ConsistencyProof, InclusionProof
    from tsuba.core.audit.signer import KeyManagerSigner, PrivateKeySigner, Signer
    from tsuba.core.audit.treehead import SignedTreeHead, TreeHead
    from tsuba.core.audit.verify import verify_consistency, verify_inclusion, verify_tree_head

_WHERE = {
    "AuditLog": "log",
    "LogEntry": "log",
    "Receipt": "log",
    "VerifyReport": "integrity",
    "ConsistencyProof": "proofs",
    "InclusionProof": "proofs",
    "KeyManagerSigner": "signer",
    "PrivateKeySigner": "signer",
    "Signer": "signer",
    "SignedTreeHead": "treehead",
    "TreeHead": "treehead",
    "verify_consistency": "verify",
    "verify_inclusion": "verify",
    "verify_tree_head": "verify",
}

__all__ = [
    "AuditLog",
    "ConsistencyProof",
    "InclusionProof",
    "KeyManagerSigner",
    "LogEntry",
    "PrivateKeySigner",
    "Receipt",
    "SignedTreeHead",
    "Signer",
    "TreeHead",
    "VerifyReport",
    "verify_consistency",
    "verify_inclusion",
    "verify_tree_head",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tsuba.core.audit' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tsuba.core.audit.{module}"), name)
