"""SOAR: the ledger of playbook steps run on incidents.

Revision ID: soar_0002
Revises: soar_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "soar_0002"
down_revision = "soar_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "soar_action_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("playbook", sa.String(128), nullable=False),
        sa.Column("step", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("approved_by", sa.String(128), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["soar_incidents.id"],
            name=op.f("fk_soar_action_runs_incident_id_soar_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_soar_action_runs")),
        sa.UniqueConstraint("key", name=op.f("uq_soar_action_runs_key")),
    )
    op.create_index(
        op.f("ix_soar_action_runs_incident_id"), "soar_action_runs", ["incident_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_soar_action_runs_incident_id"), table_name="soar_action_runs")
    op.drop_table("soar_action_runs")
