"""The hot path: cached per-principal snapshots, checked against the stored policy version.

Each check reads one row (the policy version) on a connection kept open between checks;
while the version is unchanged the compiled snapshot answers without further queries.  A
change in any process bumps the version in its own transaction, so every process rebuilds
on its next check.  Any storage failure raises :class:`StorageError`: callers fail closed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections import OrderedDict
from datetime import datetime

from sqlalchemy import Connection, Engine, select
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
from tsuba.core.storage.engine import reader

_VERSION = select(PolicyVersion.version).where(PolicyVersion.id == POLICY_VERSION_ROW)


def _storage_error(exc: BaseException) -> StorageError:
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return StorageError(
        f"policy store is not usable: {first} (check the database, then 'tsuba db upgrade')"
    )


def _close_all(connections: list[Connection]) -> None:
    while connections:
        with contextlib.suppress(DBAPIError):  # already broken: nothing left to release
            connections.pop().close()


class Authorizer:
    """Decides ``authorize``/``explain`` for one database, caching per principal."""

    def __init__(
        self, engine: Engine, *, max_principals: int = 10_000, idle_connections: int = 4
    ) -> None:
        self._engine = engine
        self._max = max_principals
        self._idle_max = idle_connections
        self._lock = threading.Lock()
        self._epoch: int | None = None
        self._cache: OrderedDict[str, PolicySnapshot] = OrderedDict()
        self._idle: list[Connection] = []
        self._pid = os.getpid()
        self._inherited: list[Connection] = []
        self._finalizer = weakref.finalize(self, _close_all, self._idle)

    # -- public ----------------------------------------------------------------------------
    def authorize(
        self, principal: str, action: str, resource: str, *, at: datetime | None = None
    ) -> Decision:
        """Allowed or not, with the reason and the rule that decided (deny by default)."""
        when = check_instant(at)
        validate_request(action, resource)
        return decide(self.snapshot(principal), action, resource, when)

    def explain(
        self, principal: str, action: str, resource: str, *, at: datetime | None = None
    ) -> Explanation:
        when = check_instant(at)
        validate_request(action, resource)
        return explain(self.snapshot(principal), action, resource, when)

    def snapshot(self, principal: str) -> PolicySnapshot:
        """The compiled policy of ``principal`` at the current stored version."""
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
        conn = self._checkout()
        try:
            version = conn.execute(_VERSION).scalar_one_or_none()
            conn.rollback()
        except DBAPIError as exc:
            conn.invalidate()
            conn.close()
            raise _storage_error(exc) from exc
        self._checkin(conn)
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
        self._finalizer()

    def __enter__(self) -> Authorizer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------
    def _checkout(self) -> Connection:
        with self._lock:
            if self._pid != os.getpid():
                # Forked: the parent's connections are neither ours to use nor to close (closing
                # would end the parent's session on the shared socket); keep them unreferenced
                # by the pool so no finalizer touches them.
                self._inherited.extend(self._idle)
                self._idle.clear()
                self._pid = os.getpid()
            if self._idle:
                return self._idle.pop()
        try:
            conn = reader(self._engine).connect()
        except DBAPIError as exc:
            raise _storage_error(exc) from exc
        if self._engine.dialect.name != "sqlite":
            # One statement, no BEGIN/ROLLBACK round trips.  Not on SQLite, where the engine
            # issues its own BEGIN IMMEDIATE that autocommit mode would leave open.
            conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn

    def _checkin(self, conn: Connection) -> None:
        with self._lock:
            if len(self._idle) < self._idle_max and self._finalizer.alive:
                self._idle.append(conn)
                return
        conn.close()

    def _load(self, principal: str, version: int) -> PolicySnapshot:
        try:
            with Session(reader(self._engine)) as session:
                return load_snapshot(session, principal, version)
        except DBAPIError as exc:
            raise _storage_error(exc) from exc


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
