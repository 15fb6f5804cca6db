"""Tables of incidents, their alerts, the entities they concern and their state history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tsuba.core.identity.models import UTCDateTime
from tsuba.core.storage.base import Base


class IncidentRow(Base):
    __tablename__ = "soar_incidents"
    __table_args__ = (
        CheckConstraint("severity IN ('P0', 'P1', 'P2', 'P3')", name="severity"),
        CheckConstraint(
            "state IN ('open', 'acknowledged', 'contained', 'resolved', 'closed')", name="state"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(256))
    severity: Mapped[str] = mapped_column(String(2))
    state: Mapped[str] = mapped_column(String(16), index=True)
    resolution: Mapped[str | None] = mapped_column(String(32), nullable=True)
    first_event_at: Mapped[datetime] = mapped_column(UTCDateTime())
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_alert_at: Mapped[datetime] = mapped_column(UTCDateTime())
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    respond_due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    contained_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sla_breached: Mapped[bool] = mapped_column(Boolean)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    alert_count: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(128))
    postmortem: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class AlertRow(Base):
    __tablename__ = "soar_alerts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("soar_incidents.id", ondelete="CASCADE"), index=True
    )
    rule_id: Mapped[str] = mapped_column(String(128))
    dedup_key: Mapped[str] = mapped_column(String(512), index=True)
    severity: Mapped[str] = mapped_column(String(2))
    title: Mapped[str] = mapped_column(String(256))
    message: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    hits: Mapped[int] = mapped_column(Integer)
    occurrences: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    false_positive: Mapped[bool] = mapped_column(Boolean)
    fp_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    fp_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    fp_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class EntityRow(Base):
    """Who or what an incident concerns (``actor:alice``, ``src_ip:…``): the correlation key."""

    __tablename__ = "soar_incident_entities"
    __table_args__ = (UniqueConstraint("incident_id", "entity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("soar_incidents.id", ondelete="CASCADE"), index=True
    )
    entity: Mapped[str] = mapped_column(String(300), index=True)


class HistoryRow(Base):
    __tablename__ = "soar_incident_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("soar_incidents.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)


class ActionRunRow(Base):
    """One playbook step on one incident: the ledger that makes re-runs idempotent."""

    __tablename__ = "soar_action_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("soar_incidents.id", ondelete="CASCADE"), index=True
    )
    playbook: Mapped[str] = mapped_column(String(128))
    step: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    approved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class BlockedIpRow(Base):
    """An address or network the gateway refuses, until ``expires_at`` if set."""

    __tablename__ = "soar_blocked_ips"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(Text)
    blocked_by: Mapped[str] = mapped_column(String(128))
    blocked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    incident_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class BlocklistVersionRow(Base):
    """Bumped by every change to the block list, so checkers re-read it only then."""

    __tablename__ = "soar_blocklist_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
