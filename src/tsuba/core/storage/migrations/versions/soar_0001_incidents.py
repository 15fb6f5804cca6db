"""SOAR: incidents, their alerts, correlation entities and state history.

Revision ID: soar_0001
Revises: 0001_base
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "soar_0001"
down_revision = "0001_base"
branch_labels = ("soar",)
depends_on = None


def _fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["incident_id"],
        ["soar_incidents.id"],
        name=op.f(f"fk_{table}_incident_id_soar_incidents"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "soar_incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("severity", sa.String(2), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(32), nullable=True),
        sa.Column("first_event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_alert_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("respond_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("contained_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sla_breached", sa.Boolean(), nullable=False),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("alert_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("postmortem", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "severity IN ('P0', 'P1', 'P2', 'P3')", name=op.f("ck_soar_incidents_severity")
        ),
        sa.CheckConstraint(
            "state IN ('open', 'acknowledged', 'contained', 'resolved', 'closed')",
            name=op.f("ck_soar_incidents_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_soar_incidents")),
    )
    op.create_index(op.f("ix_soar_incidents_state"), "soar_incidents", ["state"], unique=False)
    op.create_table(
        "soar_alerts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("dedup_key", sa.String(512), nullable=False),
        sa.Column("severity", sa.String(2), nullable=False),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("false_positive", sa.Boolean(), nullable=False),
        sa.Column("fp_reason", sa.Text(), nullable=True),
        sa.Column("fp_by", sa.String(128), nullable=True),
        sa.Column("fp_at", sa.DateTime(timezone=True), nullable=True),
        _fk("soar_alerts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_soar_alerts")),
    )
    op.create_index(op.f("ix_soar_alerts_dedup_key"), "soar_alerts", ["dedup_key"], unique=False)
    op.create_index(
        op.f("ix_soar_alerts_incident_id"), "soar_alerts", ["incident_id"], unique=False
    )
    op.create_table(
        "soar_incident_entities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(300), nullable=False),
        _fk("soar_incident_entities"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_soar_incident_entities")),
        sa.UniqueConstraint(
            "incident_id", "entity", name=op.f("uq_soar_incident_entities_incident_id")
        ),
    )
    op.create_index(
        op.f("ix_soar_incident_entities_entity"), "soar_incident_entities", ["entity"],
        unique=False,
    )
    op.create_index(
        op.f("ix_soar_incident_entities_incident_id"), "soar_incident_entities",
        ["incident_id"], unique=False,
    )
    op.create_table(
        "soar_incident_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        _fk("soar_incident_history"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_soar_incident_history")),
    )
    op.create_index(
        op.f("ix_soar_incident_history_incident_id"), "soar_incident_history",
        ["incident_id"], unique=False,
    )


def downgrade() -> None:
    for table in ("soar_incident_history", "soar_incident_entities", "soar_alerts"):
        op.drop_table(table)
    op.drop_index(op.f("ix_soar_incidents_state"), table_name="soar_incidents")
    op.drop_table("soar_incidents")
