"""What callers see of an API key: never the secret, never its hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tsuba.core.identity.policy import iso


class KeyState(StrEnum):
    ACTIVE = "active"
    ROTATING = "rotating"  # replaced by a newer key, still accepted until its grace ends
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class ApiKeyRecord:
    prefix: str
    principal: str
    scopes: tuple[str, ...]
    status: str  # stored status: active or revoked
    signing: bool
    description: str | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    replaces: str | None
    replaced_by: str | None
    last_used_at: datetime | None

    def state(self, at: datetime) -> KeyState:
        if self.status == "revoked":
            return KeyState.REVOKED
        if self.expires_at is not None and self.expires_at <= at:
            return KeyState.EXPIRED
        return KeyState.ROTATING if self.replaced_by else KeyState.ACTIVE

    def to_dict(self, at: datetime | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "prefix": self.prefix,
            "principal": self.principal,
            "scopes": list(self.scopes),
            "status": self.status,
            "signing": self.signing,
            "description": self.description,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "replaces": self.replaces,
            "replaced_by": self.replaced_by,
            "last_used_at": iso(self.last_used_at),
        }
        if at is not None:
            data["state"] = self.state(at).value
        return data


@dataclass(frozen=True)
class IssuedKey:
    """A newly issued key: ``key`` (and ``signing_secret``) are shown once, then gone."""

    key: str
    record: ApiKeyRecord
    signing_secret: str | None = None

    def __repr__(self) -> str:
        return f"IssuedKey(prefix={self.record.prefix!r}, key=<hidden>)"
