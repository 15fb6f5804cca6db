"""Managing principals, roles, permissions and bindings; every change is one transaction.

Each change bumps the policy version in the same transaction (so every process's cached
snapshots go stale together with the commit) and, once committed, hands one
:class:`SecurityEvent` to ``emit``.  Emitting after the commit keeps the caller's audit
append outside this transaction: on SQLite a second writer inside it would wait on our own
write lock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, selectinload

from tsuba.core.errors import ConflictError, InputError, NotFoundError
from tsuba.core.events import EventClass, SecurityEvent
from tsuba.core.identity.authorizer import Authorizer
from tsuba.core.identity.events import change_event
from tsuba.core.identity.models import (
    POLICY_VERSION_ROW,
    Binding,
    Permission,
    PolicyVersion,
    Principal,
    Role,
)
from tsuba.core.identity.patterns import (
    compile_pattern,
    validate_action,
    validate_principal_name,
    validate_role_name,
)
from tsuba.core.identity.policy import Decision, Effect, Explanation, iso
from tsuba.core.identity.records import (
    BindingInfo,
    PermissionInfo,
    PrincipalInfo,
    PrincipalKind,
    RoleInfo,
)
from tsuba.core.storage.sessions import read_session, versioned_write

Emit = Callable[[SecurityEvent], object]

_LABEL_KEY = re.compile(r"[a-z0-9][a-z0-9._/-]{0,62}")
MAX_LABELS = 32
MAX_LABEL_VALUE = 256
MAX_DESCRIPTION = 1024
MAX_DISPLAY_NAME = 256
MAX_ACTOR = 128


def _now() -> datetime:
    return datetime.now(UTC)


def _kind(kind: str) -> PrincipalKind:
    try:
        return PrincipalKind(kind)
    except ValueError:
        kinds = ", ".join(k.value for k in PrincipalKind)
        raise InputError(f"unknown principal kind {kind!r}: use one of {kinds}") from None


def _labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    if not labels:
        return {}
    if len(labels) > MAX_LABELS:
        raise InputError(f"too many labels ({len(labels)}): at most {MAX_LABELS}")
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
            raise InputError(
                f"invalid label key {key!r}: use 1-63 lowercase letters, digits and . _ / -"
            )
        if not isinstance(value, str) or len(value) > MAX_LABEL_VALUE:
            raise InputError(f"label {key!r} needs a text value of at most {MAX_LABEL_VALUE}")
        out[key] = value
    return out


def _actor(actor: str) -> str:
    if not actor or len(actor) > MAX_ACTOR or not actor.isprintable():
        raise InputError(f"actor {actor!r} must be 1-{MAX_ACTOR} printable characters")
    return actor


def _principal_info(row: Principal) -> PrincipalInfo:
    return PrincipalInfo(
        name=row.name,
        kind=PrincipalKind(row.kind),
        display_name=row.display_name,
        disabled=row.disabled,
        created_at=row.created_at,
        labels=dict(row.labels),
    )


def _permission_info(role: str, row: Permission) -> PermissionInfo:
    return PermissionInfo(
        role=role,
        effect=Effect(row.effect),
        action=row.action,
        resource=row.resource,
        created_at=row.created_at,
    )


def _role_info(row: Role) -> RoleInfo:
    return RoleInfo(
        name=row.name,
        description=row.description,
        created_at=row.created_at,
        permissions=tuple(_permission_info(row.name, p) for p in row.permissions),
    )


def _binding_info(row: Binding) -> BindingInfo:
    return BindingInfo(
        role=row.role.name,
        principal=row.principal.name,
        scope=row.scope or None,
        expires_at=row.expires_at,
        granted_by=row.granted_by,
        granted_at=row.granted_at,
    )


def _scoped(scope: str | None) -> str:
    return f" within scope '{scope}'" if scope else ""


class IdentityService:
    """Principals, roles, permissions and bindings in one database, plus decisions on them.

    ``actor`` names who makes the changes (recorded in events and as the default grantor);
    ``emit`` receives one event per committed change.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        emit: Emit | None = None,
        actor: str = "system",
        authorizer: Authorizer | None = None,
    ) -> None:
        self._engine = engine
        self._emit = emit
        self.actor = _actor(actor)
        self._owns_authorizer = authorizer is None
        self.authorizer = authorizer if authorizer is not None else Authorizer(engine)

    def close(self) -> None:
        if self._owns_authorizer:
            self.authorizer.close()

    def __enter__(self) -> IdentityService:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- decisions -------------------------------------------------------------------------
    def authorize(
        self, principal: str, action: str, resource: str, *, at: datetime | None = None
    ) -> Decision:
        return self.authorizer.authorize(principal, action, resource, at=at)

    def explain(
        self, principal: str, action: str, resource: str, *, at: datetime | None = None
    ) -> Explanation:
        return self.authorizer.explain(principal, action, resource, at=at)

    def policy_version(self) -> int:
        return self.authorizer.current_version()

    # -- principals ------------------------------------------------------------------------
    def create_principal(
        self,
        name: str,
        kind: PrincipalKind | str,
        *,
        display_name: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> PrincipalInfo:
        validate_principal_name(name)
        checked_kind = _kind(kind)
        clean_labels = _labels(labels)
        if display_name is not None and (
            len(display_name) > MAX_DISPLAY_NAME or not display_name.isprintable()
        ):
            raise InputError(
                f"display name must be at most {MAX_DISPLAY_NAME} printable characters"
            )
        with self._write() as s:
            if s.scalar(select(Principal.id).where(Principal.name == name)) is not None:
                raise ConflictError(f"principal '{name}' already exists")
            row = Principal(
                name=name,
                kind=checked_kind.value,
                display_name=display_name,
                disabled=False,
                created_at=_now(),
                labels=clean_labels,
            )
            s.add(row)
            s.flush()
            info = _principal_info(row)
        self._publish(
            EventClass.ACCOUNT_CHANGE,
            "create",
            f"principal/{name}",
            f"created {checked_kind.value} principal '{name}'",
            {"principal": info.to_dict()},
        )
        return info

    def get_principal(self, name: str) -> PrincipalInfo:
        with self._read() as s:
            return _principal_info(self._principal(s, name))

    def list_principals(self, *, kind: PrincipalKind | str | None = None) -> list[PrincipalInfo]:
        query = select(Principal).order_by(Principal.name)
        if kind is not None:
            query = query.where(Principal.kind == _kind(kind).value)
        with self._read() as s:
            return [_principal_info(row) for row in s.scalars(query)]

    def disable_principal(self, name: str) -> PrincipalInfo:
        return self._set_disabled(name, True)

    def enable_principal(self, name: str) -> PrincipalInfo:
        return self._set_disabled(name, False)

    def _set_disabled(self, name: str, disabled: bool) -> PrincipalInfo:
        change = "disable" if disabled else "enable"
        with self._write() as s:
            row = self._principal(s, name)
            before = row.disabled
            row.disabled = disabled
            s.flush()
            info = _principal_info(row)
        self._publish(
            EventClass.ACCOUNT_CHANGE,
            "update",
            f"principal/{name}",
            f"{change}d principal '{name}'" + ("" if before != disabled else " (no change)"),
            {"change": change, "was_disabled": before, "principal": info.to_dict()},
        )
        return info

    def delete_principal(self, name: str) -> PrincipalInfo:
        """Remove a principal and every binding it has."""
        with self._write() as s:
            row = self._principal(s, name)
            info = _principal_info(row)
            roles = sorted(b.role.name for b in row.bindings)
            s.delete(row)
        self._publish(
            EventClass.ACCOUNT_CHANGE,
            "delete",
            f"principal/{name}",
            f"deleted principal '{name}'",
            {"principal": info.to_dict(), "unbound_roles": roles},
        )
        return info

    # -- roles and permissions -------------------------------------------------------------
    def create_role(self, name: str, *, description: str = "") -> RoleInfo:
        validate_role_name(name)
        if len(description) > MAX_DESCRIPTION:
            raise InputError(f"description is longer than {MAX_DESCRIPTION} characters")
        with self._write() as s:
            if s.scalar(select(Role.id).where(Role.name == name)) is not None:
                raise ConflictError(f"role '{name}' already exists")
            row = Role(name=name, description=description, created_at=_now())
            row.permissions = []
            s.add(row)
            s.flush()
            info = _role_info(row)
        self._publish(
            EventClass.ENTITY_MANAGEMENT,
            "create",
            f"role/{name}",
            f"created role '{name}'",
            {"role": info.to_dict()},
        )
        return info

    def get_role(self, name: str) -> RoleInfo:
        with self._read() as s:
            return _role_info(self._role(s, name))

    def list_roles(self) -> list[RoleInfo]:
        query = select(Role).order_by(Role.name).options(selectinload(Role.permissions))
        with self._read() as s:
            return [_role_info(row) for row in s.scalars(query)]

    def delete_role(self, name: str, *, force: bool = False) -> RoleInfo:
        """Remove a role and its permissions; a role still bound needs ``force``.

        Deleting a bound role can widen access (its deny permissions go with it), so it is
        refused unless asked for explicitly.
        """
        with self._write() as s:
            row = self._role(s, name)
            bound = sorted(b.principal.name for b in row.bindings)
            if bound and not force:
                shown = ", ".join(bound[:5]) + (", ..." if len(bound) > 5 else "")
                raise ConflictError(
                    f"role '{name}' is bound to {len(bound)} principal(s) ({shown}): unbind "
                    "them first, or force the deletion"
                )
            info = _role_info(row)
            s.delete(row)
        self._publish(
            EventClass.ENTITY_MANAGEMENT,
            "delete",
            f"role/{name}",
            f"deleted role '{name}'",
            {"role": info.to_dict(), "unbound_principals": bound},
        )
        return info

    def add_permission(
        self, role: str, action: str, resource: str, *, effect: Effect | str = Effect.ALLOW
    ) -> PermissionInfo:
        """Grant (or, with ``effect=deny``, forbid) ``action`` on resources matching a pattern."""
        validate_action(action, pattern=True)
        compile_pattern(resource)
        try:
            checked = Effect(effect)
        except ValueError:
            raise InputError(f"unknown effect {effect!r}: use allow or deny") from None
        with self._write() as s:
            role_row = self._role(s, role)
            existing = s.scalar(
                select(Permission).where(
                    Permission.role_id == role_row.id,
                    Permission.action == action,
                    Permission.resource == resource,
                )
            )
            if existing is not None:
                have = f"role '{role}' already has {existing.effect} ({action}, {resource})"
                if existing.effect == checked.value:
                    raise ConflictError(have)
                raise ConflictError(f"{have}: revoke it before adding {checked.value}")
            row = Permission(
                role_id=role_row.id,
                effect=checked.value,
                action=action,
                resource=resource,
                created_at=_now(),
            )
            s.add(row)
            s.flush()
            info = _permission_info(role, row)
        self._publish(
            EventClass.ENTITY_MANAGEMENT,
            "update",
            f"role/{role}",
            f"role '{role}' now has {checked.value} ({action}, {resource})",
            {"change": "grant", "permission": info.to_dict()},
        )
        return info

    def remove_permission(self, role: str, action: str, resource: str) -> PermissionInfo:
        with self._write() as s:
            role_row = self._role(s, role)
            row = s.scalar(
                select(Permission).where(
                    Permission.role_id == role_row.id,
                    Permission.action == action,
                    Permission.resource == resource,
                )
            )
            if row is None:
                raise NotFoundError(f"role '{role}' has no permission ({action}, {resource})")
            info = _permission_info(role, row)
            s.delete(row)
        self._publish(
            EventClass.ENTITY_MANAGEMENT,
            "update",
            f"role/{role}",
            f"role '{role}' no longer has {info.effect.value} ({action}, {resource})",
            {"change": "revoke", "permission": info.to_dict()},
        )
        return info

    # -- bindings --------------------------------------------------------------------------
    def bind(
        self,
        role: str,
        principal: str,
        *,
        expires_at: datetime | None = None,
        scope: str | None = None,
        granted_by: str | None = None,
    ) -> BindingInfo:
        """Give ``principal`` the permissions of ``role`` (within ``scope``, until expiry)."""
        grantor = _actor(granted_by) if granted_by is not None else self.actor
        now = _now()
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise InputError("expiry must carry a timezone (use UTC)")
            if expires_at <= now:
                raise InputError(f"expiry {iso(expires_at)} is not in the future")
        if scope is not None:
            compile_pattern(scope)
        with self._write() as s:
            p_row = self._principal(s, principal)
            r_row = self._role(s, role)
            existing = s.scalar(
                select(Binding).where(
                    Binding.principal_id == p_row.id,
                    Binding.role_id == r_row.id,
                    Binding.scope == (scope or ""),
                )
            )
            if existing is not None:
                until = f" until {iso(existing.expires_at)}" if existing.expires_at else ""
                raise ConflictError(
                    f"role '{role}' is already bound to '{principal}'{_scoped(scope)}{until}: "
                    "unbind it first to change it"
                )
            row = Binding(
                principal=p_row,
                role=r_row,
                scope=scope or "",
                expires_at=expires_at,
                granted_by=grantor,
                granted_at=now,
            )
            s.add(row)
            s.flush()
            info = _binding_info(row)
        self._publish(
            EventClass.ENTITY_MANAGEMENT,
            "create",
            f"binding/{role}/{principal}",
            f"bound role '{role}' to '{principal}'{_scoped(scope)}"
            + (f" until {iso(expires_at)}" if expires_at else ""),
            {"binding": info.to_dict()},
            actor=grantor,
        )
        return info

    def unbind(self, role: str, principal: str, *, scope: str | None = None) -> BindingInfo:
        with self._write() as s:
            p_row = self._principal(s, principal)
            r_row = self._role(s, role)
            row = s.scalar(
                select(Binding).where(
                    Binding.principal_id == p_row.id,
                    Binding.role_id == r_row.id,
                    Binding.scope == (scope or ""),
                )
            )
            if row is None:
                raise NotFoundError(f"role '{role}' is not bound to '{principal}'{_scoped(scope)}")
            info = _binding_info(row)
            s.delete(row)
        self._publish(
            EventClass.ENTITY_MANAGEMENT,
            "delete",
            f"binding/{role}/{principal}",
            f"unbound role '{role}' from '{principal}'{_scoped(scope)}",
            {"binding": info.to_dict()},
        )
        return info

    def list_bindings(
        self, *, principal: str | None = None, role: str | None = None
    ) -> list[BindingInfo]:
        query = (
            select(Binding)
            .join(Binding.role)
            .join(Binding.principal)
            .options(selectinload(Binding.role), selectinload(Binding.principal))
            .order_by(Principal.name, Role.name, Binding.scope)
        )
        with self._read() as s:
            if principal is not None:
                query = query.where(Binding.principal_id == self._principal(s, principal).id)
            if role is not None:
                query = query.where(Binding.role_id == self._role(s, role).id)
            return [_binding_info(row) for row in s.scalars(query)]

    # -- internals -------------------------------------------------------------------------
    @staticmethod
    def _principal(s: Session, name: str) -> Principal:
        row = s.scalar(select(Principal).where(Principal.name == name))
        if row is None:
            raise NotFoundError(f"principal '{name}' does not exist")
        return row

    @staticmethod
    def _role(s: Session, name: str) -> Role:
        row = s.scalar(select(Role).where(Role.name == name))
        if row is None:
            raise NotFoundError(f"role '{name}' does not exist")
        return row

    def _read(self) -> AbstractContextManager[Session]:
        return read_session(self._engine, "identity store")

    def _write(self) -> AbstractContextManager[Session]:
        """A transaction that also bumps the policy version, so caches everywhere go stale."""
        return versioned_write(self._engine, "identity store", PolicyVersion, POLICY_VERSION_ROW)

    def _publish(
        self,
        event_class: EventClass,
        activity: str,
        resource: str,
        message: str,
        attributes: dict[str, Any],
        *,
        actor: str | None = None,
    ) -> None:
        if self._emit is None:
            return
        self._emit(
            change_event(
                event_class,
                activity,
                actor=actor or self.actor,
                resource=resource,
                message=message,
                attributes=attributes,
            )
        )


