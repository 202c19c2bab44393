"""Steward accounts and server-side sessions.

Passwords are hashed with argon2id (``argon2-cffi`` defaults, re-hashed on login when
the parameters change). Login is throttled two ways: per submitted username (after
``steward_login_max_failures`` failures, each within
``steward_login_failure_window_minutes`` of the previous one, the username is locked
for ``steward_login_lock_minutes``, all in :class:`mdm.config.Settings`; the counter
lives in the database, ``login_failures``, so it holds across processes) and per client
address (an in-process sliding window; the address is the TCP peer unless it is one
of ``MDM_TRUSTED_PROXIES``, see mdm.http_server).

Nothing tells which usernames exist: an unknown (or deactivated) username is
counted and locked exactly like a steward's, answers the same status and page, and
costs the same single argon2 verification (against a dummy hash made with the same
parameters); a locked username, known or not, is refused before any verification.

A session's cookie carries a random token (256 bits); the database keeps its
SHA-256 and a per-session CSRF token that every POST must echo.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import unicodedata
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mdm.config import Settings, get_settings
from mdm.exceptions import BadRequest, Conflict
from mdm.services import audit
from mdm.store.db import Connection, Session
from mdm.store.models import STEWARD_ROLES, utcnow
from mdm.store.repositories import stewards as repo

_hasher = PasswordHasher()
_DUMMY_HASH: Final = _hasher.hash("not a password of anyone")
ROLE_RANK: Final = {"reviewer": 1, "senior": 2, "admin": 3}


@dataclass(frozen=True, slots=True)
class StewardInfo:
    id: int
    username: str
    display_name: str
    role: str

    @property
    def actor(self) -> str:
        """How the steward appears in links, decisions, versions and the audit log."""
        return f"steward:{self.username}"

    def can(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    steward: StewardInfo
    csrf_token: str
    token_hash: str


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def create_steward(
    session: Session,
    username: str,
    role: str,
    password: str,
    *,
    display_name: str | None = None,
    actor: str = "system:cli",
) -> StewardInfo:
    """A new active steward. Flushes; the caller commits."""
    username = username.strip()
    if not username or len(username) > 100:
        raise BadRequest("a steward needs a username of 1 to 100 characters")
    if role not in STEWARD_ROLES:
        raise BadRequest(f"unknown role {role!r}; expected one of {', '.join(STEWARD_ROLES)}")
    if len(password) < 10:
        raise BadRequest("a password needs at least 10 characters")
    conn = session.connection()
    if repo.steward_id(conn, username) is not None:
        raise Conflict(f"a steward named {username!r} already exists", code="steward_exists")
    sid = repo.add(
        conn,
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=_hasher.hash(password),
        now=utcnow(),
    )
    audit.append(
        session.connection(),
        [
            audit.AuditEntry(
                "system" if actor.startswith("system:") else "steward",
                actor,
                "steward.create",
                details={"username": username, "role": role},
            )
        ],
    )
    return StewardInfo(int(sid), username, display_name or username, role)


class _IpWindow:
    """Attempts per address in the last minute (per process). Once a minute the
    addresses with no attempt in the last minute are forgotten, so the map holds
    the addresses of about two minutes, however many an attacker uses."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._swept = time.monotonic()

    def allow(self, address: str, limit: int) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._swept > 60:
                self._swept = now
                for old in [a for a, h in self._hits.items() if not h or h[-1] < now - 60]:
                    del self._hits[old]
            hits = self._hits[address]
            while hits and hits[0] < now - 60:
                hits.popleft()
            if len(hits) >= limit:
                return False
            hits.append(now)
            return True


_ip_window = _IpWindow()


class LoginThrottled(Exception):
    pass


def authenticate(
    session: Session,
    username: str,
    password: str,
    *,
    address: str = "?",
    settings: Settings | None = None,
) -> StewardInfo | None:
    """The steward if the password is right and the account usable, else ``None``.

    Raises :class:`LoginThrottled` when the address or the username is locked out;
    writes the counters in the caller's transaction (commit even on failure). Every
    username takes the same path: one lock lookup, then (unless locked) one argon2
    verification, then one counter update.
    """
    cfg = settings or get_settings()
    if not _ip_window.allow(address, cfg.steward_login_per_ip_per_minute):
        raise LoginThrottled()
    conn = session.connection()
    now = utcnow()
    key = username_key(username)
    locked = repo.locked_until(conn, key)
    if locked is not None and locked > now:
        raise LoginThrottled()
    row = repo.by_username(conn, username)
    usable = row is not None and bool(row.active)
    verified = _verify(row.password_hash if row is not None and usable else _DUMMY_HASH, password)
    if row is None or not usable or not verified:
        _count_failure(conn, key, now, cfg)
        return None
    repo.clear_failures(conn, key)
    if _hasher.check_needs_rehash(row.password_hash):
        repo.set_password_hash(conn, int(row.id), _hasher.hash(password))
    return StewardInfo(int(row.id), row.username, row.display_name, row.role)


def username_key(username: str) -> str:
    """The lockout's key of a submitted username: as a person would type it again
    (Unicode NFKC, no surrounding spaces, case folded), hashed (SHA-256 hex). Only
    the first 200 characters count: no steward's name is longer than 100."""
    normal = unicodedata.normalize("NFKC", username[:200]).strip().casefold()
    return hashlib.sha256(normal.encode()).hexdigest()


def _count_failure(conn: Connection, key: str, now: datetime, cfg: Settings) -> None:
    """One more failure of ``key``; the lock when it reaches ``steward_login_max_failures``.

    Rows whose last failure left the window and whose lock ran out are deleted first,
    so the table never holds more than one window's failed usernames (an attacker
    trying random names fills nothing); the per-address window bounds how fast it
    can grow within one.
    """
    repo.count_failure(
        conn,
        key,
        now,
        window=timedelta(minutes=cfg.steward_login_failure_window_minutes),
        max_failures=cfg.steward_login_max_failures,
        lock=timedelta(minutes=cfg.steward_login_lock_minutes),
    )


def _verify(hashed: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(hashed, password))
    except (VerificationError, InvalidHashError):
        return False


def start_session(session: Session, steward: StewardInfo) -> tuple[str, str]:
    """A new session; returns (cookie token, CSRF token). Only the token's hash is kept."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utcnow()
    repo.add_session(session.connection(), _hash_token(token), steward.id, csrf, now)
    return token, csrf


def load_session(
    session: Session, token: str | None, settings: Settings | None = None
) -> SessionInfo | None:
    """The live session of ``token`` (touching its idle clock), or ``None`` if the
    token is unknown, revoked, idle too long, past its absolute life, or its steward
    was deactivated."""
    if not token:
        return None
    cfg = settings or get_settings()
    token_hash = _hash_token(token)
    row = repo.session_with_steward(session.connection(), token_hash)
    if row is None or row.revoked_at is not None or not row.active:
        return None
    now = utcnow()
    if _expired(row.created_at, row.last_seen_at, now, cfg):
        return None
    # Touch at most once a minute: a page view should not always be a write.
    if now - row.last_seen_at > timedelta(seconds=60):
        repo.touch_session(session.connection(), token_hash, now)
    info = StewardInfo(int(row.id), row.username, row.display_name, row.role)
    return SessionInfo(info, row.csrf_token, token_hash)


def _expired(created: datetime, seen: datetime, now: datetime, cfg: Settings) -> bool:
    idle = timedelta(minutes=cfg.steward_session_idle_minutes)
    absolute = timedelta(hours=cfg.steward_session_absolute_hours)
    return now - seen > idle or now - created > absolute


def end_session(session: Session, token_hash: str) -> None:
    repo.revoke_session(session.connection(), token_hash, utcnow())


def list_stewards(session: Session) -> list[tuple[StewardInfo, bool]]:
    rows = repo.all_by_username(session.connection())
    return [(StewardInfo(int(r.id), r.username, r.display_name, r.role), r.active) for r in rows]


def set_active(session: Session, username: str, active: bool, *, actor: str) -> None:
    """(De)activate a steward; deactivation ends their sessions at once."""
    conn = session.connection()
    steward_id = repo.steward_id(conn, username)
    if steward_id is None:
        from mdm.exceptions import NotFound

        raise NotFound(f"no steward named {username!r}", code="steward_not_found")
    repo.set_active(conn, steward_id, active)
    if not active:
        repo.revoke_sessions_of(conn, steward_id, utcnow())
    audit.append(
        session.connection(),
        [
            audit.AuditEntry(
                "steward",
                actor,
                "steward.activate" if active else "steward.deactivate",
                details={"username": username},
            )
        ],
    )
