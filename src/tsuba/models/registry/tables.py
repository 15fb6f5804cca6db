"""Tables of the model registry; migration branch ``models`` creates exactly these.

A version row keeps the signature bundle it was registered with, so its manifest (every
file and digest) can be checked again, and exported, without the model files at hand.
Lineage is a separate edge table (a model may derive from several parents), so that
"everything derived from X" is one recursive query.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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

STATUSES = ("active", "quarantined", "retired")


class ModelVersionRow(Base):
    __tablename__ = "models_versions"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        CheckConstraint("status IN ('active', 'quarantined', 'retired')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    uri: Mapped[str] = mapped_column(Text)  # where the files were when registered
    source: Mapped[str | None] = mapped_column(Text)
    root_digest: Mapped[str] = mapped_column(String(64), index=True)
    serialization: Mapped[dict[str, Any]] = mapped_column(JSON)
    signature: Mapped[str] = mapped_column(Text)  # the Sigstore bundle, verbatim
    key_hint: Mapped[str] = mapped_column(String(64))
    signed_by: Mapped[str] = mapped_column(String(256))
    file_count: Mapped[int] = mapped_column(Integer)
    total_bytes: Mapped[int] = mapped_column(BigInteger)
    scan: Mapped[dict[str, Any]] = mapped_column(JSON)
    params: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(128))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_changed_by: Mapped[str] = mapped_column(String(128))


class DatasetLinkRow(Base):
    """A training dataset of a version, by digest (``sha256:<hex>``)."""

    __tablename__ = "models_datasets"
    __table_args__ = (UniqueConstraint("version_id", "digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("models_versions.id", ondelete="CASCADE")
    )
    digest: Mapped[str] = mapped_column(String(160), index=True)
    name: Mapped[str | None] = mapped_column(String(256))


class LineageRow(Base):
    """``child`` was derived from ``parent`` (fine-tuned, distilled, quantised, merged)."""

    __tablename__ = "models_lineage"

    child_id: Mapped[int] = mapped_column(
        ForeignKey("models_versions.id", ondelete="CASCADE"), primary_key=True
    )
    parent_id: Mapped[int] = mapped_column(
        ForeignKey("models_versions.id", ondelete="CASCADE"), primary_key=True, index=True
    )


__all__ = ["STATUSES", "DatasetLinkRow", "LineageRow", "ModelVersionRow"]
