"""Golden records and the bookkeeping around their identity.

Entities are never deleted: a merged entity keeps its row (status ``merged``) so its
canonical ID keeps resolving through ``redirects`` (DESIGN.md invariant 3).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from mdm.store.models.base import Base, BigId, JsonText, UTCDateTime, utcnow

_ENTITY_TYPE_CHECK = "entity_type IN ('citizen', 'organization', 'dossier')"


class Entity(Base):
    __tablename__ = "entities"
    __table_args__ = (
        CheckConstraint(_ENTITY_TYPE_CHECK, name="entity_type"),
        CheckConstraint("status IN ('active', 'merged', 'retired')", name="status"),
        CheckConstraint("version >= 1", name="version_positive"),
        Index(None, "entity_type", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    canonical_id: Mapped[str] = mapped_column(String(32), unique=True)
    entity_type: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="active")
    version: Mapped[int] = mapped_column(Integer, default=1)
    # served whole, never queried inside: JSON text (migration 0013)
    attributes: Mapped[dict[str, Any]] = mapped_column(JsonText, default=dict)
    # {attribute: {"rule": ..., "source_records": [...], "conflict": bool}}
    provenance: Mapped[dict[str, Any]] = mapped_column(JsonText, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EntityVersion(Base):
    """Every state an entity has been in; the golden record as of any moment."""

    __tablename__ = "entity_versions"
    __table_args__ = (
        UniqueConstraint("entity_id", "version"),
        Index(None, "entity_id", "valid_from"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    # immutable documents read whole: JSON text (migration 0010)
    attributes: Mapped[dict[str, Any]] = mapped_column(JsonText)
    provenance: Mapped[dict[str, Any]] = mapped_column(JsonText)
    change: Mapped[str] = mapped_column(String(40))
    changed_by: Mapped[str] = mapped_column(String(200))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Link(Base):
    """Source record -> entity. At most one active link per source record.

    The partial unique index makes the database itself refuse a second active link
    (DESIGN.md invariant 1); deactivated links stay as history.
    """

    __tablename__ = "links"
    __table_args__ = (
        CheckConstraint("method IN ('rule', 'model', 'steward', 'new')", name="method"),
        Index(
            "uq_links_active_source_record",
            "source_record_id",
            unique=True,
            postgresql_where=text("active"),
            sqlite_where=text("active = 1"),
        ),
        Index(None, "entity_id", "active"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_record_id: Mapped[int] = mapped_column(ForeignKey("source_records.id"))
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"))
    method: Mapped[str] = mapped_column(String(20))
    score: Mapped[float | None] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    active: Mapped[bool] = mapped_column(default=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Redirect(Base):
    """A retired entity -> the entity that absorbed it.

    Redirects are kept flat: a target is never itself redirected and a redirected
    entity is never a target, so every chain has length one and no cycle can form.
    Database triggers (see the initial migration) enforce this; a merge into an
    entity that already absorbed others re-points the older redirects first.
    """

    __tablename__ = "redirects"
    __table_args__ = (
        CheckConstraint("from_entity_id <> to_entity_id", name="not_self"),
        Index(None, "to_entity_id"),
    )

    from_entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"), primary_key=True)
    to_entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"))
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
