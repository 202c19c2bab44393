"""The transactional outbox and the subscriptions that read it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mdm.store.models.base import Base, BigId, Json, UTCDateTime, utcnow


class OutboxEvent(Base):
    """An event written in the same transaction as the change it describes.

    ``position`` is the global order (the change feed's cursor); ``sequence`` orders
    events of one entity and is unique per entity.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (
        UniqueConstraint("entity_id", "sequence"),
        CheckConstraint(
            "event_type IN ('entity.created', 'entity.updated', 'entity.merged', "
            "'entity.unmerged', 'entity.retired')",
            name="event_type",
        ),
        Index(None, "entity_type", "position"),
    )

    position: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"))
    canonical_id: Mapped[str] = mapped_column(String(32))
    entity_type: Mapped[str] = mapped_column(String(20))
    event_type: Mapped[str] = mapped_column(String(30))
    sequence: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (CheckConstraint("status IN ('active', 'paused')", name="status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"))
    url: Mapped[str] = mapped_column(Text)
    # Needed in clear to sign deliveries; never logged, never returned after creation.
    secret: Mapped[str] = mapped_column(String(200))
    # {"entity_types": [...], "event_types": [...], "canonical_ids": [...]}
    filters: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
