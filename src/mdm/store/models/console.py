"""The stewards' console: accounts, server-side sessions, failed logins, and the
review actions that make *undo* exact.

Sessions are server-side: the browser holds a random token, the table holds only
its SHA-256 (a stolen database dump yields no usable cookie). A session ends at the
first of: ``revoked_at`` set (logout), ``last_seen_at`` older than the idle limit,
``created_at`` older than the absolute limit.

A review action remembers everything its undo needs: the steward decisions it
created or deactivated and the structural change (merge or split) it made, so undo
reverses exactly that and nothing else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mdm.store.models.base import Base, BigId, Json, UTCDateTime, utcnow

STEWARD_ROLES = ("reviewer", "senior", "admin")


class Steward(Base):
    __tablename__ = "stewards"
    __table_args__ = (CheckConstraint("role IN ('reviewer', 'senior', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoginFailure(Base):
    """Failed console logins per submitted username, whether a steward of that name
    exists or not, and the lock they earned (the lockout: mdm.services.accounts).

    Keyed by the SHA-256 of the normalized username, so a password typed into the
    username field is not kept readable. A row is forgotten once its last failure is
    older than the failure window and its lock has run out: the table holds at most
    the usernames that failed within one window.
    """

    __tablename__ = "login_failures"
    __table_args__ = (Index(None, "last_failed_at"),)

    username_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StewardSession(Base):
    __tablename__ = "steward_sessions"
    __table_args__ = (Index(None, "steward_id"),)

    # sha256 of the cookie's token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    steward_id: Mapped[int] = mapped_column(ForeignKey("stewards.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReviewAction(Base):
    """One decision on a match candidate, with what undo needs to reverse it."""

    __tablename__ = "review_actions"
    __table_args__ = (
        CheckConstraint("decision IN ('same', 'not_same', 'skip')", name="decision"),
        Index(None, "steward", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("match_candidates.id"))
    steward: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(20))
    # {"decisions_created": [...], "decisions_deactivated": [...],
    #  "merge": {"survivor": cid, "loser": cid, "records": [...]} |
    #  "split": {"from": cid, "into": cid, "records": [...]}}
    effects: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
