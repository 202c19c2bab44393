"""What stewards decide about golden records: attribute overrides, and the conflicts
survivorship leaves for them.

An override always wins survivorship for its attribute (DESIGN.md invariant 4: no
automatic run undoes it). Overrides are never deleted: clearing one sets
``active = false`` so the history of who decided what stays readable.

``entity_conflicts`` is derived data: the attributes of an entity's *current* golden
record whose candidate values genuinely disagree (two valid, different dates of
birth). Resolve rewrites an entity's rows whenever it recomputes the entity; it is the
stewards' queue, not a source of truth (the provenance in ``entities`` is).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from mdm.store.models.base import Base, BigId, Json, UTCDateTime, utcnow


class AttributeOverride(Base):
    """A steward's value for one attribute of one entity; wins over every source."""

    __tablename__ = "attribute_overrides"
    __table_args__ = (
        Index(
            "uq_attribute_overrides_active",
            "entity_id",
            "attribute",
            unique=True,
            postgresql_where=text("active"),
            sqlite_where=text("active = 1"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"))
    attribute: Mapped[str] = mapped_column(String(100))
    # JSON so that structured attributes (addresses) can be overridden; null = "no value".
    value: Mapped[Any] = mapped_column(Json, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    active: Mapped[bool] = mapped_column(default=True)
    cleared_by: Mapped[str | None] = mapped_column(String(200))
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EntityConflict(Base):
    """An attribute whose candidate values disagree in the current golden record."""

    __tablename__ = "entity_conflicts"
    __table_args__ = (Index(None, "detected_at"),)

    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"), primary_key=True)
    attribute: Mapped[str] = mapped_column(String(100), primary_key=True)
    # [{"value": ..., "source_records": [...]}, ...]
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
