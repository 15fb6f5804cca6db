"""Audit log: entries with their hashes, the tree head row, signed tree heads.

Revision ID: audit_0001
Revises: 0001_base
"""

from __future__ import annotations

import hashlib
import os

import sqlalchemy as sa
from alembic import op

revision = "audit_0001"
down_revision = "0001_base"
branch_labels = ("audit",)
depends_on = None

_INDEX = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("idx", _INDEX, autoincrement=False, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("chain_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("subtree_hashes", sa.LargeBinary(), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_audit_entries")),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("log_id", sa.LargeBinary(16), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.Column("chain_hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "audit_tree_heads",
        sa.Column("id", _INDEX, autoincrement=True, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_tree_heads")),
    )
    op.create_index(
        op.f("ix_audit_tree_heads_tree_size"), "audit_tree_heads", ["tree_size"], unique=False
    )
    # The empty log: its id is chosen once, here, and is part of every signed tree head.
    op.bulk_insert(
        head,
        [
            {
                "id": 1,
                "log_id": os.urandom(16),
                "tree_size": 0,
                "root_hash": hashlib.sha256(b"").digest(),
                "frontier": b"",
                "chain_hash": bytes(32),
            }
        ],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_tree_heads_tree_size"), table_name="audit_tree_heads")
    op.drop_table("audit_tree_heads")
    op.drop_table("audit_head")
    op.drop_table("audit_entries")
