"""Where records come from: source systems, source records and their versions, rejects.

A source record is the logical identity (source system, source key); each payload a
source sends for it is an immutable version. Records are never edited in place
(DESIGN.md): a changed payload is a new version, a vanished one is ``withdrawn``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mdm.domain.standards import ENTITY_TYPES as ENTITY_TYPES
from mdm.store.models.base import Base, BigId, Json, JsonText, UTCDateTime, utcnow

_ENTITY_TYPE_CHECK = "entity_type IN ('citizen', 'organization', 'dossier')"


class SourceSystem(Base):
    __tablename__ = "source_systems"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    # {entity_type: {attribute: trust in [0, 1], "default": ...}}; read by survivorship.
    trust: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IngestRun(Base):
    """One run of ``mdm ingest`` over one input file: the unit of resume."""

    __tablename__ = "ingest_runs"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'completed', 'failed')", name="status"),
        Index(None, "source_system_id", "file_sha256"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_system_id: Mapped[int] = mapped_column(ForeignKey("source_systems.id"))
    entity_type: Mapped[str] = mapped_column(String(20))
    file_name: Mapped[str] = mapped_column(Text)
    file_sha256: Mapped[str] = mapped_column(String(64))
    mapping_sha256: Mapped[str] = mapped_column(String(64))
    full_snapshot: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20), default="running")
    # Rows [0, rows_committed) are durably in the store; resume starts there.
    rows_committed: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SourceRecord(Base):
    __tablename__ = "source_records"
    __table_args__ = (
        UniqueConstraint("source_system_id", "source_key"),
        CheckConstraint(_ENTITY_TYPE_CHECK, name="entity_type"),
        CheckConstraint("status IN ('active', 'withdrawn')", name="status"),
        CheckConstraint("current_version >= 1", name="current_version_positive"),
        Index(None, "entity_type", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_system_id: Mapped[int] = mapped_column(ForeignKey("source_systems.id"))
    source_key: Mapped[str] = mapped_column(String(200))
    entity_type: Mapped[str] = mapped_column(String(20))
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), default="active")
    # The last ingest run whose file contained this key; a full-snapshot run withdraws
    # the active records of its source and type that it did not see.
    last_ingest_run_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_runs.id"))
    # The current version's content hash, kept here so ingest compares without a join.
    current_hash: Mapped[str | None] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    source_system: Mapped[SourceSystem] = relationship(lazy="raise")


#: Foreign keys that Postgres enforces with statement-level triggers instead of its
#: per-row checks (migration 0012: one check per COPY, not one query per row, in the
#: bulk path of ingest). The models declare them, SQLite keeps them as declared, and
#: the drift check (``mdm db check``) does not look for them on Postgres.
TRIGGER_CHECKED_FOREIGN_KEYS = frozenset(
    {
        "fk_source_record_versions_source_record_id_source_records",
        "fk_source_record_versions_ingest_run_id_ingest_runs",
        "fk_source_records_source_system_id_source_systems",
        "fk_source_records_last_ingest_run_id_ingest_runs",
    }
)


class SourceRecordVersion(Base):
    """One payload as a source sent it, with its standardized form. Immutable."""

    __tablename__ = "source_record_versions"
    __table_args__ = (
        UniqueConstraint("source_record_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_record_id: Mapped[int] = mapped_column(ForeignKey("source_records.id"))
    version: Mapped[int] = mapped_column(Integer)
    raw: Mapped[dict[str, Any]] = mapped_column(JsonText)
    standardized: Mapped[dict[str, Any]] = mapped_column(JsonText)
    issues: Mapped[list[dict[str, Any]]] = mapped_column(JsonText, default=list)
    content_hash: Mapped[str] = mapped_column(String(64))
    ingest_run_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_runs.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Reject(Base):
    """An input row that could not become a source record, and why. Never dropped."""

    __tablename__ = "rejects"
    __table_args__ = (Index(None, "source_system_id", "ingest_run_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_system_id: Mapped[int | None] = mapped_column(ForeignKey("source_systems.id"))
    ingest_run_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_runs.id"))
    entity_type: Mapped[str | None] = mapped_column(String(20))
    # Where in the input: file name and 1-based line / row number.
    location: Mapped[dict[str, Any]] = mapped_column(Json)
    source_key: Mapped[str | None] = mapped_column(String(200))
    # [{"field", "code", "severity", "message"}, ...]
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    raw_content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
