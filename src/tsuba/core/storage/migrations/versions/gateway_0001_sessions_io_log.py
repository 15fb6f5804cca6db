"""Gateway: conversation sessions and the encrypted input/output log.

Revision ID: gateway_0001
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "gateway_0001"
down_revision = "0001_base"
branch_labels = ("gateway",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_sessions",
        sa.Column("id_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_gateway_sessions")),
    )
    op.create_index(
        op.f("ix_gateway_sessions_expires_at"), "gateway_sessions", ["expires_at"], unique=False
    )
    op.create_table(
        "gateway_io_log",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("route", sa.String(32), nullable=False),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("classification", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("prompt", sa.LargeBinary(), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_io_log")),
    )
    op.create_index(
        op.f("ix_gateway_io_log_expires_at"), "gateway_io_log", ["expires_at"], unique=False
    )
    op.create_index(
        op.f("ix_gateway_io_log_correlation_id"),
        "gateway_io_log",
        ["correlation_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_gateway_io_log_correlation_id"), table_name="gateway_io_log")
    op.drop_index(op.f("ix_gateway_io_log_expires_at"), table_name="gateway_io_log")
    op.drop_table("gateway_io_log")
    op.drop_index(op.f("ix_gateway_sessions_expires_at"), table_name="gateway_sessions")
    op.drop_table("gateway_sessions")
