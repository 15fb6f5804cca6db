"""Audit log over HTTP: signed tree heads and proofs are public, entries need the admin token.

Proofs reveal only hashes, so anyone may check that an entry is in the log; entry content
is security data and is served only to an admin bearer token.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import PlainTextResponse

from tsuba.core.errors import AuthorizationError, InputError
from tsuba.core.platform import Platform

router = APIRouter(prefix="/v1/audit", tags=["audit"])


def platform(request: Request) -> Platform:
    p: Platform = request.app.state.platform
    return p


PlatformDep = Annotated[Platform, Depends(platform)]


def require_admin(p: PlatformDep, authorization: Annotated[str | None, Header()] = None) -> None:
    token = p.settings.server.admin_token
    if token is None:
        raise AuthorizationError(
            "admin routes are disabled: set server.admin_token (TSUBA_SERVER__ADMIN_TOKEN)"
        )
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not given or not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise AuthorizationError("admin token missing or wrong")


@router.get("/tree-head")
def tree_head(p: PlatformDep) -> dict[str, Any]:
    """The newest signed tree head; one is signed now when the log grew past it."""
    sth = p.audit.sign_if_grown() or p.audit.latest_signed_tree_head()
    if sth is None:
        sth = p.audit.sign_tree_head()
    return sth.to_dict()


@router.post("/tree-head", dependencies=[Depends(require_admin)])
def sign_tree_head(p: PlatformDep) -> dict[str, Any]:
    """Sign the current tree head now."""
    return p.audit.sign_tree_head().to_dict()


@router.get("/public-key", response_class=PlainTextResponse)
def public_key(p: PlatformDep) -> str:
    """The PEM public key that verifies tree heads (with the standalone verifier)."""
    return p.keys.public_key_pem(p.settings.audit.signing_key).decode()


@router.get("/proofs/inclusion/{index}")
def inclusion(
    p: PlatformDep, index: int, tree_size: Annotated[int | None, Query(ge=1)] = None
) -> dict[str, Any]:
    """Inclusion proof of entry ``index``, bundled with a signed tree head that covers it."""
    _check_range(p, index, tree_size)
    return p.audit.export_inclusion(index, tree_size).to_dict()


@router.get("/proofs/consistency")
def consistency(
    p: PlatformDep,
    first: Annotated[int, Query(ge=1)],
    second: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """Consistency proof that the tree of size ``first`` is a prefix of ``second``."""
    size = p.audit.size()
    second = size if second is None else second
    if not first <= second <= size:
        raise InputError(f"need 1 <= first <= second <= {size} (log size)")
    return p.audit.export_consistency(first, second).to_dict()


@router.get("/entries", dependencies=[Depends(require_admin)])
def entries(
    p: PlatformDep,
    start: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Entries ``start`` .. ``start+limit-1`` as events, with their leaf hashes."""
    size = p.audit.size()
    rows = p.audit.entries(start, min(start + limit, size)) if start < size else []
    return {
        "size": size,
        "entries": [
            {"index": r.index, "leaf_hash": r.leaf_hash.hex(), "event": r.event().to_dict()}
            for r in rows
        ],
    }


@router.post("/verify", dependencies=[Depends(require_admin)])
def verify(p: PlatformDep) -> dict[str, Any]:
    """Recompute the whole log and check every signed head."""
    return p.audit.verify().to_dict()


def _check_range(p: Platform, index: int, tree_size: int | None) -> None:
    size = p.audit.size()
    bound = size if tree_size is None else min(tree_size, size)
    if tree_size is not None and tree_size > size:
        raise InputError(f"tree_size {tree_size} is beyond the log size {size}")
    if not 0 <= index < bound:
        raise InputError(f"index {index} is outside the tree of size {bound}")
