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

**Source systems.** A write scope says which entity types a client may register; its
*binding* (``api_client_source_systems``) says under which source systems. A
registration naming any other source system is refused (403), and a client bound to
none writes nothing, so :func:`create_client` refuses a write scope without source
systems. Binding a name the registry does not know yet creates that source system
(no trust settings: survivorship's defaults), as its first registration would have.
The binding travels in :class:`ClientInfo`, so checking it costs no query.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from mdm.exceptions import BadRequest, Conflict, NotFound
from mdm.store.db import Session
from mdm.store.models import utcnow
from mdm.store.repositories import clients as repo

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
MAX_SOURCE_SYSTEM_LENGTH: Final = 100  # source_systems.name, and a registration's limit

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


def validate_source_systems(names: Iterable[str]) -> list[str]:
    """Source system names as given, surrounding blanks removed, blanks and repeats
    dropped (a registration must name one of them exactly)."""
    out: list[str] = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        if len(name) > MAX_SOURCE_SYSTEM_LENGTH or "\x00" in name:
            raise BadRequest(
                f"source system name {name[:MAX_SOURCE_SYSTEM_LENGTH]!r} is longer than "
                f"{MAX_SOURCE_SYSTEM_LENGTH} characters or holds a NUL",
                code="invalid_source_system",
            )
        if name not in out:
            out.append(name)
    return out


def _check_binding(scopes: Iterable[str], source_systems: list[str]) -> None:
    """A write scope needs source systems, and source systems need a write scope."""
    writes = sorted(s for s in scopes if s.endswith(":write"))
    if writes and not source_systems:
        raise BadRequest(
            f"a key with {', '.join(writes)} must name the source systems it may write "
            "(--source-systems a,b); without them it could write nothing",
            code="source_systems_required",
        )
    if source_systems and not writes:
        raise BadRequest(
            "source systems (--source-systems) say what a key may write, and this key "
            "has no write scope",
            code="source_systems_without_write",
        )


@dataclass(frozen=True, slots=True)
class ClientInfo:
    id: int
    name: str
    key_prefix: str
    scopes: frozenset[str]
    rate_limit_per_minute: int
    created_at: datetime
    revoked_at: datetime | None
    #: the source systems this client may write (its binding)
    source_systems: frozenset[str] = frozenset()

    def may_write(self, source_system: str) -> bool:
        """Whether a registration under ``source_system`` is this client's to make
        (its write scopes are checked apart)."""
        return source_system in self.source_systems


@dataclass(frozen=True, slots=True)
class CreatedClient:
    client: ClientInfo
    key: str  # shown once; never stored


def _info(row: object, source_systems: Iterable[str] = ()) -> ClientInfo:
    return ClientInfo(
        int(row.id),  # type: ignore[attr-defined]
        row.name,  # type: ignore[attr-defined]
        row.key_prefix,  # type: ignore[attr-defined]
        frozenset(row.scopes or ()),  # type: ignore[attr-defined]
        int(row.rate_limit_per_minute),  # type: ignore[attr-defined]
        row.created_at,  # type: ignore[attr-defined]
        row.revoked_at,  # type: ignore[attr-defined]
        frozenset(source_systems),
    )


def _bound(session: Session, client_id: int | None = None) -> dict[int, set[str]]:
    """Client id -> the names of the source systems it may write (one client's, or
    every client's)."""
    return repo.bound(session.connection(), client_id)


def _bind(session: Session, client_id: int, client_name: str, names: list[str]) -> None:
    """Make ``names`` the client's binding, creating the source systems not known yet."""
    repo.bind(session.connection(), client_id, client_name, names, utcnow())


def _with_binding(session: Session, row: object) -> ClientInfo:
    client_id = int(row.id)  # type: ignore[attr-defined]
    return _info(row, _bound(session, client_id).get(client_id, ()))


def create_client(
    session: Session,
    name: str,
    scopes: list[str],
    *,
    rate_limit_per_minute: int = DEFAULT_RATE_LIMIT,
    source_systems: Iterable[str] = (),
) -> CreatedClient:
    """A new client and its key, bound to ``source_systems`` (required with a write
    scope, refused without one). Flushes; the caller commits."""
    name = name.strip()
    if not name:
        raise BadRequest("a client needs a name")
    if rate_limit_per_minute < 1:
        raise BadRequest("the rate limit must be at least 1 request a minute")
    valid = validate_scopes(scopes)
    bound = validate_source_systems(source_systems)
    _check_binding(valid, bound)
    conn = session.connection()
    if repo.name_taken(conn, name):
        raise Conflict(f"a client named {name!r} already exists", code="client_exists")
    while True:
        prefix = secrets.token_hex(4)
        if not repo.prefix_taken(conn, prefix):
            break
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    row = repo.add(
        conn,
        name=name,
        prefix=prefix,
        key_hash=hash_key(key),
        scopes=valid,
        rate_limit_per_minute=rate_limit_per_minute,
        now=utcnow(),
    )
    _bind(session, int(row.id), name, bound)
    return CreatedClient(_with_binding(session, row), key)


def list_clients(session: Session) -> list[ClientInfo]:
    bound = _bound(session)
    return [_info(r, bound.get(int(r.id), ())) for r in repo.all_by_name(session.connection())]


def bind_client(session: Session, name: str, source_systems: Iterable[str]) -> ClientInfo:
    """Replace a client's binding with ``source_systems`` (at least one: the client
    needs a write scope). Running API processes apply it within their authentication
    cache's lifetime, as a revocation. Flushes; the caller commits."""
    row = repo.by_name(session.connection(), name)
    if row is None:
        raise NotFound(f"no client named {name!r}", code="client_not_found")
    bound = validate_source_systems(source_systems)
    if not bound:
        raise BadRequest(
            "name at least one source system (--source-systems a,b); to stop a key "
            "from writing, revoke it",
            code="source_systems_required",
        )
    _check_binding(row.scopes or (), bound)
    _bind(session, int(row.id), row.name, bound)
    return _with_binding(session, row)


def revoke_client(session: Session, name: str) -> ClientInfo:
    """Revoke a client's key. Running API processes stop accepting it within their
    authentication cache's lifetime (``MDM_API_AUTH_CACHE_SECONDS``, default 30 s)."""
    row = repo.by_name(session.connection(), name)
    if row is None:
        raise NotFound(f"no client named {name!r}", code="client_not_found")
    if row.revoked_at is None:
        repo.revoke(session.connection(), int(row.id), utcnow())
    return _with_binding(session, repo.by_id(session.connection(), int(row.id)))


def authenticate(session: Session, key: str) -> ClientInfo | None:
    """The active client owning ``key``, or ``None`` (unknown, wrong or revoked)."""
    prefix = split_key(key)
    if prefix is None:
        return None
    row = repo.by_prefix(session.connection(), prefix)
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    return _with_binding(session, row)


def active_client(session: Session, client_id: int) -> ClientInfo | None:
    """The client with this ID while its key is not revoked, else ``None``: what a
    long-lived request (an event stream) re-checks, as the key cache would."""
    row = repo.by_id(session.connection(), client_id)
    if row is None or row.revoked_at is not None:
        return None
    return _with_binding(session, row)
