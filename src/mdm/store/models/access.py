"""Who may call the registry, and the record of what they did."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mdm.store.models.base import Base, BigId, Json, UTCDateTime, utcnow


class ApiClient(Base):
    """An agency system. Only a hash of its key is stored; the key is shown once."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # The first characters of the key, stored in clear to find the row quickly.
    key_prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list[str]] = mapped_column(Json, default=list)
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer, default=6000)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiClientSourceSystem(Base):
    """A source system a client may write (``POST /v1/{type}/records``): the client's
    binding. A client with a write scope writes only the systems bound to it; with
    none bound it writes nothing (migration 0015 explains how existing clients were
    bound)."""

    __tablename__ = "api_client_source_systems"

    client_id: Mapped[int] = mapped_column(
        ForeignKey("api_clients.id"), primary_key=True, autoincrement=False
    )
    source_system_id: Mapped[int] = mapped_column(
        ForeignKey("source_systems.id"), primary_key=True, autoincrement=False, index=True
    )


class AuditLog(Base):
    """Append-only trail; each row carries the hash of the previous one."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "actor", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_type: Mapped[str] = mapped_column(String(20))  # client | steward | system
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    entity_ids: Mapped[list[str]] = mapped_column(Json, default=list)
    purpose: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))
