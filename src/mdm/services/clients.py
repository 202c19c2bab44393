"""API clients: keys, scopes, revocation.

A key looks like ``mdm_<prefix>_<secret>``: ``prefix`` (8 hex characters) is stored in
clear to find the row with one indexed lookup, ``secret`` is 256 random bits. Only
``sha256(key)`` is stored, and the key is shown once, at creation.

Why SHA-256 and not a slow password hash (argon2, bcrypt): slow hashes exist to make
guessing *low-entropy* human passwords expensive. A 256-bit random secret cannot be
guessed whatever the hash costs, so a fast hash loses nothing; a slow one would cost
tens of milliseconds of CPU on every request (or force a long-lived cache of clear
keys). Comparison is constant-time (``hmac.compare_digest``).

Scopes are ``{entity_type}:{action}`` with entity types ``citizen``, ``organization``,
``dossier`` (or ``*`` for all) and actions ``read``, ``search``, ``write``, ``pii``;
``events:read`` and ``subscriptions:manage`` are reserved for the change feed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from mdm.exceptions import BadRequest, Conflict, NotFound
from mdm.store.models import ApiClient, utcnow

clients = cast(Table, ApiClient.__table__)

ENTITY_TYPES: Final = ("citizen", "organization", "dossier")
ACTIONS: Final = ("read", "search", "write", "pii")
EVENTS_READ: Final = "events:read"
SUBSCRIPTIONS_MANAGE: Final = "subscriptions:manage"
RESERVED_SCOPES: Final = (EVENTS_READ, SUBSCRIPTIONS_MANAGE)
ALL_SCOPES: Final = (
    *(f"{t}:{a}" for t in (*ENTITY_TYPES, "*") for a in ACTIONS),
    *RESERVED_SCOPES,
)
DEFAULT_RATE_LIMIT: Final = 6000

KEY_PREFIX: Final = "mdm_"
_KEY_RE = re.compile(r"^mdm_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def split_key(key: str) -> str | None:
    """The prefix of a well-formed key, else ``None`` (no query for garbage)."""
    found = _KEY_RE.match(key)
    return found.group(1) if found else None


def validate_scopes(scopes: list[str]) -> list[str]:
    out: list[str] = []
    for scope in scopes:
        scope = scope.strip()
        if not scope:
            continue
        if scope not in ALL_SCOPES:
            raise BadRequest(
                f"unknown scope {scope!r}; expected one of {', '.join(ALL_SCOPES)}",
                code="unknown_scope",
            )
        if scope not in out:
            out.append(scope)
    return out


def has_scope(scopes: frozenset[str], entity_type: str, action: str) -> bool:
    return f"{entity_type}:{action}" in scopes or f"*:{action}" in scopes


@dataclass(frozen=True, slots=True)
class ClientInfo:
    id: int
    name: str
    key_prefix: str
    scopes: frozenset[str]
    rate_limit_per_minute: int
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class CreatedClient:
    client: ClientInfo
    key: str  # shown once; never stored


def _info(row: object) -> ClientInfo:
    return ClientInfo(
        int(row.id),  # type: ignore[attr-defined]
        row.name,  # type: ignore[attr-defined]
        row.key_prefix,  # type: ignore[attr-defined]
        frozenset(row.scopes or ()),  # type: ignore[attr-defined]
        int(row.rate_limit_per_minute),  # type: ignore[attr-defined]
        row.created_at,  # type: ignore[attr-defined]
        row.revoked_at,  # type: ignore[attr-defined]
    )


def create_client(
    session: Session,
    name: str,
    scopes: list[str],
    *,
    rate_limit_per_minute: int = DEFAULT_RATE_LIMIT,
) -> CreatedClient:
    """A new client and its key. Flushes; the caller commits."""
    name = name.strip()
    if not name:
        raise BadRequest("a client needs a name")
    if rate_limit_per_minute < 1:
        raise BadRequest("the rate limit must be at least 1 request a minute")
    valid = validate_scopes(scopes)
    exists = session.execute(select(clients.c.id).where(clients.c.name == name)).scalar()
    if exists is not None:
        raise Conflict(f"a client named {name!r} already exists", code="client_exists")
    while True:
        prefix = secrets.token_hex(4)
        taken = session.execute(select(clients.c.id).where(clients.c.key_prefix == prefix)).scalar()
        if taken is None:
            break
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    now = utcnow()
    session.execute(
        insert(clients).values(
            name=name,
            key_prefix=prefix,
            key_hash=hash_key(key),
            scopes=valid,
            rate_limit_per_minute=rate_limit_per_minute,
            created_at=now,
            revoked_at=None,
        )
    )
    row = session.execute(select(clients).where(clients.c.key_prefix == prefix)).one()
    return CreatedClient(_info(row), key)


def list_clients(session: Session) -> list[ClientInfo]:
    return [_info(r) for r in session.execute(select(clients).order_by(clients.c.name))]


def revoke_client(session: Session, name: str) -> ClientInfo:
    """Revoke a client's key. Running API processes stop accepting it within their
    authentication cache's lifetime (``MDM_API_AUTH_CACHE_SECONDS``, default 30 s)."""
    row = session.execute(select(clients).where(clients.c.name == name)).first()
    if row is None:
        raise NotFound(f"no client named {name!r}", code="client_not_found")
    if row.revoked_at is None:
        session.execute(update(clients).where(clients.c.id == row.id).values(revoked_at=utcnow()))
    return _info(session.execute(select(clients).where(clients.c.id == row.id)).one())


def authenticate(session: Session, key: str) -> ClientInfo | None:
    """The active client owning ``key``, or ``None`` (unknown, wrong or revoked)."""
    prefix = split_key(key)
    if prefix is None:
        return None
    row = session.execute(select(clients).where(clients.c.key_prefix == prefix)).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    return _info(row)
