"""SOAR: the lease that keeps one response loop per database, with the holder's health.

Revision ID: soar_0003
Revises: soar_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "soar_0003"
down_revision = "soar_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "soar_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("health", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_soar_leases")),
    )


def downgrade() -> None:
    op.drop_table("soar_leases")
