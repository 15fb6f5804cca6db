"""Guards: the shared pseudonym mapping (envelope-encrypted values, expiring with sessions).

Revision ID: guards_0001
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "guards_0001"
down_revision = "0001_base"
branch_labels = ("guards",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guards_pseudonyms",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("entity_type", sa.String(64), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("value_digest", sa.LargeBinary(32), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guards_pseudonyms")),
        sa.UniqueConstraint(
            "value_digest", "session_id", name=op.f("uq_guards_pseudonyms_value_digest")
        ),
        sa.UniqueConstraint(
            "session_id", "entity_type", "ordinal", name=op.f("uq_guards_pseudonyms_session_id")
        ),
    )
    op.create_index(
        op.f("ix_guards_pseudonyms_expires_at"), "guards_pseudonyms", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_guards_pseudonyms_expires_at"), table_name="guards_pseudonyms")
    op.drop_table("guards_pseudonyms")
