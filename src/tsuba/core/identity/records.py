"""Plain values the identity service returns: detached from the database session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from tsuba.core.identity.policy import Effect, iso


class PrincipalKind(StrEnum):
    USER = "user"
    SERVICE = "service"
    AGENT = "agent"


@dataclass(frozen=True, slots=True)
class PrincipalInfo:
    name: str
    kind: PrincipalKind
    display_name: str | None
    disabled: bool
    created_at: datetime
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "display_name": self.display_name,
            "disabled": self.disabled,
            "created_at": iso(self.created_at),
            "labels": dict(self.labels),
        }


@dataclass(frozen=True, slots=True)
class PermissionInfo:
    role: str
    effect: Effect
    action: str
    resource: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "effect": self.effect.value,
            "action": self.action,
            "resource": self.resource,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class RoleInfo:
    name: str
    description: str
    created_at: datetime
    permissions: tuple[PermissionInfo, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "created_at": iso(self.created_at),
            "permissions": [p.to_dict() for p in self.permissions],
        }


@dataclass(frozen=True, slots=True)
class BindingInfo:
    role: str
    principal: str
    scope: str | None
    expires_at: datetime | None
    granted_by: str
    granted_at: datetime

    def expired(self, at: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= at

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "principal": self.principal,
            "scope": self.scope,
            "expires_at": iso(self.expires_at),
            "granted_by": self.granted_by,
            "granted_at": iso(self.granted_at),
        }
