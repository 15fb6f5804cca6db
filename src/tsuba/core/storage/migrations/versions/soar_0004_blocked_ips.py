"""SOAR: addresses and networks the gateway refuses (the block_ip playbook action).

Revision ID: soar_0004
Revises: soar_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "soar_0004"
down_revision = "soar_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "soar_blocked_ips",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("blocked_by", sa.String(128), nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_soar_blocked_ips")),
        sa.UniqueConstraint("network", name=op.f("uq_soar_blocked_ips_network")),
    )


def downgrade() -> None:
    op.drop_table("soar_blocked_ips")
