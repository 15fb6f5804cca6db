"""Event bus: durable outbox, head counter, subscriber cursors, dead letters.

Revision ID: bus_0001
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "bus_0001"
down_revision = "0001_base"
branch_labels = ("bus",)
depends_on = None

_POSITION = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bus_outbox",
        sa.Column("position", _POSITION, autoincrement=False, nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("event_class", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.SmallInteger(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_bus_outbox")),
    )
    op.create_index(op.f("ix_bus_outbox_event_time"), "bus_outbox", ["event_time"], unique=False)
    head = op.create_table(
        "bus_head",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_bus_head")),
    )
    op.bulk_insert(head, [{"name": "outbox", "position": 0}])
    op.create_table(
        "bus_cursor",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_bus_cursor")),
    )
    op.create_table(
        "bus_dead_letter",
        sa.Column("subscriber", sa.String(length=128), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subscriber", "position", name=op.f("pk_bus_dead_letter")),
    )


def downgrade() -> None:
    op.drop_table("bus_dead_letter")
    op.drop_table("bus_cursor")
    op.drop_table("bus_head")
    op.drop_index(op.f("ix_bus_outbox_event_time"), table_name="bus_outbox")
    op.drop_table("bus_outbox")
