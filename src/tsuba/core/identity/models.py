"""Tables of the identity area; migration branch ``identity`` creates exactly these.

A binding's ``scope`` is stored as ``''`` when it has none, so that the unique constraint on
(principal, role, scope) also holds for unscoped bindings (SQL treats NULLs as distinct).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from tsuba.core.storage.base import Base

POLICY_VERSION_ROW = 1


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends (SQLite keeps no offset, so it stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("datetime must carry a timezone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Principal(Base):
    __tablename__ = "identity_principals"
    __table_args__ = (CheckConstraint("kind IN ('user', 'service', 'agent')", name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str | None] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    labels: Mapped[dict[str, str]] = mapped_column(JSON)

    bindings: Mapped[list[Binding]] = relationship(
        back_populates="principal", cascade="all, delete-orphan", passive_deletes=True
    )


class Role(Base):
    __tablename__ = "identity_roles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    permissions: Mapped[list[Permission]] = relationship(
        back_populates="role",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Permission.id",
    )
    bindings: Mapped[list[Binding]] = relationship(
        back_populates="role", cascade="all, delete-orphan", passive_deletes=True
    )


class Permission(Base):
    __tablename__ = "identity_permissions"
    __table_args__ = (
        UniqueConstraint("role_id", "action", "resource"),
        CheckConstraint("effect IN ('allow', 'deny')", name="effect"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("identity_roles.id", ondelete="CASCADE"))
    effect: Mapped[str] = mapped_column(String(8))
    action: Mapped[str] = mapped_column(String(128))
    resource: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    role: Mapped[Role] = relationship(back_populates="permissions")


class Binding(Base):
    __tablename__ = "identity_bindings"
    __table_args__ = (UniqueConstraint("principal_id", "role_id", "scope"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    principal_id: Mapped[int] = mapped_column(
        ForeignKey("identity_principals.id", ondelete="CASCADE")
    )
    role_id: Mapped[int] = mapped_column(
        ForeignKey("identity_roles.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(512))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    granted_by: Mapped[str] = mapped_column(String(128))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)

    principal: Mapped[Principal] = relationship(back_populates="bindings")
    role: Mapped[Role] = relationship(back_populates="bindings")


class PolicyVersion(Base):
    """One row whose counter every policy change increments, in the change's transaction.

    Readers compare it with the version their cached snapshots were built at: one indexed
    read per check keeps every process within one check of the stored policy.
    """

    __tablename__ = "identity_policy_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
