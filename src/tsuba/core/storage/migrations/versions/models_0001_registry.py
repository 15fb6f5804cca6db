"""Model registry: versions with provenance and signature, training datasets, lineage.

Revision ID: models_0001
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "models_0001"
down_revision = "0001_base"
branch_labels = ("models",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("root_digest", sa.String(64), nullable=False),
        sa.Column("serialization", sa.JSON(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("key_hint", sa.String(64), nullable=False),
        sa.Column("signed_by", sa.String(256), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("scan", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_changed_by", sa.String(128), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'quarantined', 'retired')",
            name=op.f("ck_models_versions_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_models_versions_name")),
    )
    op.create_index(
        op.f("ix_models_versions_root_digest"), "models_versions", ["root_digest"], unique=False
    )
    op.create_table(
        "models_datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(160), nullable=False),
        sa.Column("name", sa.String(256), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["models_versions.id"],
            name=op.f("fk_models_datasets_version_id_models_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models_datasets")),
        sa.UniqueConstraint("version_id", "digest", name=op.f("uq_models_datasets_version_id")),
    )
    op.create_index(
        op.f("ix_models_datasets_digest"), "models_datasets", ["digest"], unique=False
    )
    op.create_table(
        "models_lineage",
        sa.Column("child_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["models_versions.id"],
            name=op.f("fk_models_lineage_child_id_models_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["models_versions.id"],
            name=op.f("fk_models_lineage_parent_id_models_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("child_id", "parent_id", name=op.f("pk_models_lineage")),
    )
    op.create_index(
        op.f("ix_models_lineage_parent_id"), "models_lineage", ["parent_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_models_lineage_parent_id"), table_name="models_lineage")
    op.drop_table("models_lineage")
    op.drop_index(op.f("ix_models_datasets_digest"), table_name="models_datasets")
    op.drop_table("models_datasets")
    op.drop_index(op.f("ix_models_versions_root_digest"), table_name="models_versions")
    op.drop_table("models_versions")
