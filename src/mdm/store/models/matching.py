"""What matching leaves for people: review candidates and steward decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from mdm.store.models.base import Base, BigId, Json, UTCDateTime, utcnow


class MatchCandidate(Base):
    """A pair in the review band, with the per-comparison weights that explain it."""

    __tablename__ = "match_candidates"
    __table_args__ = (
        UniqueConstraint("left_record_id", "right_record_id"),
        CheckConstraint("left_record_id < right_record_id", name="ordered_pair"),
        CheckConstraint(
            "status IN ('pending', 'accepted', 'rejected', 'skipped', 'superseded')",
            name="status",
        ),
        Index(None, "entity_type", "status", "score"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entity_type: Mapped[str] = mapped_column(String(20))
    left_record_id: Mapped[int] = mapped_column(ForeignKey("source_records.id"))
    right_record_id: Mapped[int] = mapped_column(ForeignKey("source_records.id"))
    score: Mapped[float] = mapped_column(Float)  # match probability
    match_weight: Mapped[float] = mapped_column(Float)
    weights: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    reserved_by: Mapped[str | None] = mapped_column(String(200))
    reserved_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StewardDecision(Base):
    """Must-link / cannot-link between two source records. Automatic runs obey it."""

    __tablename__ = "steward_decisions"
    __table_args__ = (
        CheckConstraint("kind IN ('must_link', 'cannot_link')", name="kind"),
        CheckConstraint("left_record_id < right_record_id", name="ordered_pair"),
        Index(None, "left_record_id"),
        Index(None, "right_record_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    left_record_id: Mapped[int] = mapped_column(ForeignKey("source_records.id"))
    right_record_id: Mapped[int] = mapped_column(ForeignKey("source_records.id"))
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("match_candidates.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    active: Mapped[bool] = mapped_column(default=True)
