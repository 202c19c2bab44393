"""The transactional outbox and the subscriptions that read it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from mdm.store.models.base import Base, BigId, Json, JsonText, UTCDateTime, utcnow


class OutboxEvent(Base):
    """An event written in the same transaction as the change it describes.

    ``position`` is the order in which events were *written*; on Postgres concurrent
    transactions can commit them out of that order. ``feed_position`` is the order
    in which they became *visible*: the sequencer (``mdm.events.feed``) numbers
    committed events densely, so a reader paging by ``feed_position`` never skips
    one. It is NULL until sequenced. ``sequence`` orders events of one entity and is
    unique per entity.
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
        UniqueConstraint("feed_position"),
        Index(
            "ix_outbox_events_unsequenced",
            "position",
            postgresql_where=text("feed_position IS NULL"),
            sqlite_where=text("feed_position IS NULL"),
        ),
    )

    position: Mapped[int] = mapped_column(BigId, primary_key=True)
    feed_position: Mapped[int | None] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"))
    canonical_id: Mapped[str] = mapped_column(String(32))
    entity_type: Mapped[str] = mapped_column(String(20))
    event_type: Mapped[str] = mapped_column(String(30))
    sequence: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonText)  # read whole (migration 0010)
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
    # Events up to this feed position have been considered for this subscription
    # (a delivery row written for each that passed the filters).
    feed_cursor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One event to deliver to one subscription, and how that went.

    ``pending`` deliveries of one (subscription, entity) go out strictly in
    ``feed_position`` order: only the earliest pending one (the head) may be claimed.
    A relay claims a head by taking a lease (``lease_owner``, ``lease_until``); a relay
    that dies loses its leases when they expire. ``dead`` is a dead letter: it no
    longer blocks the entity's later events and can be redelivered.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_position"),
        CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status"),
        Index(
            "ix_deliveries_pending_head",
            "subscription_id",
            "entity_id",
            "feed_position",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_deliveries_pending_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(None, "subscription_id", "status", "feed_position"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"))
    event_position: Mapped[int] = mapped_column(ForeignKey("outbox_events.position"))
    feed_position: Mapped[int] = mapped_column(BigInteger)
    entity_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EventCursor(Base):
    """A named position in the feed, held by one worker at a time through a lease.

    ``sequencer``: the last feed position handed out. ``nats:<stream>``: the last feed
    position a NATS JetStream acknowledged.
    """

    __tablename__ = "event_cursors"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
