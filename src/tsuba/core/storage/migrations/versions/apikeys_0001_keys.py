"""API keys of the gateway: hashed keys and the revocation version counter.

Revision ID: apikeys_0001
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "apikeys_0001"
down_revision = "0001_base"
branch_labels = ("apikeys",)
# Keys belong to principals (foreign key), so the identity tables must exist first.
depends_on = ("identity_0001",)


def upgrade() -> None:
    op.create_table(
        "apikeys_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("pepper_version", sa.Integer(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("signing", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replaces", sa.String(32), nullable=True),
        sa.Column("replaced_by", sa.String(32), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'revoked')", name=op.f("ck_apikeys_keys_status")
        ),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["identity_principals.id"],
            name=op.f("fk_apikeys_keys_principal_id_identity_principals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apikeys_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_apikeys_keys_prefix")),
    )
    op.create_index(
        op.f("ix_apikeys_keys_principal_id"), "apikeys_keys", ["principal_id"], unique=False
    )
    version = op.create_table(
        "apikeys_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apikeys_version")),
    )
    op.bulk_insert(version, [{"id": 1, "version": 1}])


def downgrade() -> None:
    op.drop_table("apikeys_version")
    op.drop_index(op.f("ix_apikeys_keys_principal_id"), table_name="apikeys_keys")
    op.drop_table("apikeys_keys")
