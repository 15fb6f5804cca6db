"""Identity: principals, roles, permissions, role bindings and the policy version counter.

Revision ID: identity_0001
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "identity_0001"
down_revision = "0001_base"
branch_labels = ("identity",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_principals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('user', 'service', 'agent')", name=op.f("ck_identity_principals_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_principals")),
        sa.UniqueConstraint("name", name=op.f("uq_identity_principals_name")),
    )
    op.create_table(
        "identity_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_roles")),
        sa.UniqueConstraint("name", name=op.f("uq_identity_roles_name")),
    )
    op.create_table(
        "identity_permissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("role_id", sa.Integer(), nullable=False),
        sa.Column("effect", sa.String(8), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("resource", sa.String(512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "effect IN ('allow', 'deny')", name=op.f("ck_identity_permissions_effect")
        ),
        sa.ForeignKeyConstraint(
            ["role_id"],
            ["identity_roles.id"],
            name=op.f("fk_identity_permissions_role_id_identity_roles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_permissions")),
        sa.UniqueConstraint(
            "role_id", "action", "resource", name=op.f("uq_identity_permissions_role_id")
        ),
    )
    op.create_table(
        "identity_bindings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("role_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(512), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("granted_by", sa.String(128), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["identity_principals.id"],
            name=op.f("fk_identity_bindings_principal_id_identity_principals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["role_id"],
            ["identity_roles.id"],
            name=op.f("fk_identity_bindings_role_id_identity_roles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_bindings")),
        sa.UniqueConstraint(
            "principal_id", "role_id", "scope", name=op.f("uq_identity_bindings_principal_id")
        ),
    )
    op.create_index(
        op.f("ix_identity_bindings_role_id"), "identity_bindings", ["role_id"], unique=False
    )
    version = op.create_table(
        "identity_policy_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_policy_version")),
    )
    op.bulk_insert(version, [{"id": 1, "version": 1}])


def downgrade() -> None:
    op.drop_table("identity_policy_version")
    op.drop_index(op.f("ix_identity_bindings_role_id"), table_name="identity_bindings")
    op.drop_table("identity_bindings")
    op.drop_table("identity_permissions")
    op.drop_table("identity_roles")
    op.drop_table("identity_principals")
