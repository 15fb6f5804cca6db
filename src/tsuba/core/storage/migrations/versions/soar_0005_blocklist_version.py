"""SOAR: the block list's version counter (checkers re-read the list only when it moves).

Revision ID: soar_0005
Revises: soar_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "soar_0005"
down_revision = "soar_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    version = op.create_table(
        "soar_blocklist_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_soar_blocklist_version")),
    )
    op.bulk_insert(version, [{"id": 1, "version": 1}])


def downgrade() -> None:
    op.drop_table("soar_blocklist_version")
