"""The hot path: cached per-principal snapshots, checked against the stored policy version.

Each check reads one row (the policy version) on a connection kept open between checks;
while the version is unchanged the compiled snapshot answers without further queries.  A
change in any process bumps the version in its own transaction, so every process rebuilds
on its next check.  Any storage failure raises :class:`StorageError`: callers fail closed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, selectinload

from tsuba.core.errors import StorageError
from tsuba.core.identity.models import (
    POLICY_VERSION_ROW,
    Binding,
    Permission,
    PolicyVersion,
    Principal,
    Role,
)
from tsuba.core.identity.policy import (
    BindingView,
    Decision,
    Effect,
    Explanation,
    PolicySnapshot,
    Rule,
    check_instant,
    decide,
    explain,
    validate_request,
)
from tsuba.core.storage.engine import reader, storage_error
from tsuba.core.storage.readpool import ReadConnections

_VERSION = select(PolicyVersion.version).where(PolicyVersion.id == POLICY_VERSION_ROW)


class Authorizer:
    """Decides ``authorize``/``explain`` for one database, caching per principal."""

    def __init__(
        self, engine: Engine, *, max_principals: int = 10_000, idle_connections: int = 4
    ) -> None:
        self._engine = engine
        self._max = max_principals
        self._conns = ReadConnections(engine, what="policy store", idle=idle_connections)
        self._lock = threading.Lock()
        self._epoch: int | None = None
        self._cache: OrderedDict[str, PolicySnapshot] = OrderedDict()

    # -- public ----------------------------------------------------------------------------
    def authorize(
        self,
        principal: str,
        action: str,
        resource: str,
        *,
        at: datetime | None = None,
        version: int | None = None,
    ) -> Decision:
        """Allowed or not, with the reason and the rule that decided (deny by default).

        ``version`` is a policy version the caller has just read from the store (the API key
        check reads it in the same statement); without it the version is read here.
        """
        when = check_instant(at)
        validate_request(action, resource)
        return decide(self.snapshot(principal, version), action, resource, when)

    def explain(
        self, principal: str, action: str, resource: str, *, at: datetime | None = None
    ) -> Explanation:
        when = check_instant(at)
        validate_request(action, resource)
        return explain(self.snapshot(principal), action, resource, when)

    def snapshot(self, principal: str, version: int | None = None) -> PolicySnapshot:
        """The compiled policy of ``principal`` at the current stored version."""
        if version is None:
            version = self.current_version()
        with self._lock:
            if self._epoch is None or version > self._epoch:
                self._cache.clear()
                self._epoch = version
            cached = self._cache.get(principal) if version == self._epoch else None
            if cached is not None:
                self._cache.move_to_end(principal)
                return cached
        snap = self._load(principal, version)
        with self._lock:
            # Only cache what was read after reading the version the cache now stands at.
            if version == self._epoch:
                self._cache[principal] = snap
                if len(self._cache) > self._max:
                    self._cache.popitem(last=False)
        return snap

    def current_version(self) -> int:
        row = self._conns.first_row(_VERSION)
        version = None if row is None else row[0]
        if version is None:
            raise StorageError(
                "policy store is not usable: the policy version row is missing "
                "(run 'tsuba db upgrade')"
            )
        return int(version)

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()
            self._epoch = None

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
        self._conns.close()

    def __enter__(self) -> Authorizer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------
    def _load(self, principal: str, version: int) -> PolicySnapshot:
        try:
            with Session(reader(self._engine)) as session:
                return load_snapshot(session, principal, version)
        except DBAPIError as exc:
            raise storage_error(exc, "policy store") from exc


def load_snapshot(session: Session, principal: str, version: int) -> PolicySnapshot:
    """Read ``principal``'s bindings, roles and permissions and compile them."""
    row = session.scalars(
        select(Principal)
        .where(Principal.name == principal)
        .options(
            selectinload(Principal.bindings)
            .selectinload(Binding.role)
            .selectinload(Role.permissions)
        )
    ).one_or_none()
    if row is None:
        return PolicySnapshot.build(principal, version, exists=False)
    views: list[BindingView] = []
    rules: list[Rule] = []
    for binding in row.bindings:
        scope = binding.scope or None
        perms: list[Permission] = binding.role.permissions
        views.append(
            BindingView(
                role=binding.role.name,
                scope=scope,
                expires_at=binding.expires_at,
                granted_by=binding.granted_by,
                granted_at=binding.granted_at,
                permissions=len(perms),
            )
        )
        rules.extend(
            Rule(
                effect=Effect(p.effect),
                action=p.action,
                resource=p.resource,
                role=binding.role.name,
                scope=scope,
                expires_at=binding.expires_at,
                granted_by=binding.granted_by,
            )
            for p in perms
        )
    return PolicySnapshot.build(
        principal, version, disabled=row.disabled, bindings=views, rules=rules
    )
