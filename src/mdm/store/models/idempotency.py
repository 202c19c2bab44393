"""Idempotency keys of real-time registrations (``Idempotency-Key`` header).

A client that retries a registration with the same key gets the first answer back
instead of registering twice; the same key with a different request is refused.
Rows are written in the registration's own transaction, so an answer is stored if
and only if its registration committed. They expire (see
:func:`mdm.services.registration.purge_idempotency_keys`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mdm.store.models.base import Base, BigId, Json, UTCDateTime, utcnow


class IdempotencyKey(Base):
    """One key of one client: the hash of the request and the response it got.

    ``client_id`` is ``NULL`` for callers without an API client (the CLI, tests);
    the unique constraint cannot cover those (``NULL`` never equals ``NULL``), so
    the registration service serializes them itself (advisory lock / SQLite's
    single writer) before it looks the key up.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("client_id", "key"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))
    key: Mapped[str] = mapped_column(String(200))
    # sha256 of the canonical JSON of the request (type, source, key, attributes)
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
