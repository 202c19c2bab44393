"""API clients and their binding to source systems (``api_clients``,
``api_client_source_systems``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mdm.store.tables import client_systems as bindings
from mdm.store.tables import clients, systems


def by_name(conn: Connection, name: str) -> Any:
    return conn.execute(select(clients).where(clients.c.name == name)).first()


def by_prefix(conn: Connection, prefix: str) -> Any:
    return conn.execute(select(clients).where(clients.c.key_prefix == prefix)).first()


def by_id(conn: Connection, client_id: int) -> Any:
    return conn.execute(select(clients).where(clients.c.id == client_id)).first()


def name_taken(conn: Connection, name: str) -> bool:
    return conn.execute(select(clients.c.id).where(clients.c.name == name)).scalar() is not None


def prefix_taken(conn: Connection, prefix: str) -> bool:
    stmt = select(clients.c.id).where(clients.c.key_prefix == prefix)
    return conn.execute(stmt).scalar() is not None


def add(
    conn: Connection,
    *,
    name: str,
    prefix: str,
    key_hash: str,
    scopes: list[str],
    rate_limit_per_minute: int,
    now: datetime,
) -> Any:
    """Insert a client; returns its row."""
    conn.execute(
        insert(clients).values(
            name=name,
            key_prefix=prefix,
            key_hash=key_hash,
            scopes=scopes,
            rate_limit_per_minute=rate_limit_per_minute,
            created_at=now,
            revoked_at=None,
        )
    )
    return conn.execute(select(clients).where(clients.c.key_prefix == prefix)).one()


def all_by_name(conn: Connection) -> list[Any]:
    return list(conn.execute(select(clients).order_by(clients.c.name)))


def revoke(conn: Connection, client_id: int, now: datetime) -> None:
    conn.execute(update(clients).where(clients.c.id == client_id).values(revoked_at=now))


def bound(conn: Connection, client_id: int | None = None) -> dict[int, set[str]]:
    """Client id -> the names of the source systems it may write (one client's, or
    every client's)."""
    query = select(bindings.c.client_id, systems.c.name).join(
        systems, systems.c.id == bindings.c.source_system_id
    )
    if client_id is not None:
        query = query.where(bindings.c.client_id == client_id)
    out: dict[int, set[str]] = {}
    for cid, name in conn.execute(query):
        out.setdefault(int(cid), set()).add(name)
    return out


def bind(
    conn: Connection, client_id: int, client_name: str, names: Sequence[str], now: datetime
) -> None:
    """Make ``names`` the client's binding, creating the source systems not known yet."""
    if names:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(systems)
            .values(
                [
                    {
                        "name": n,
                        "trust": {},
                        "description": f"named when API client {client_name!r} was bound to it",
                        "created_at": now,
                    }
                    for n in names
                ]
            )
            .on_conflict_do_nothing(index_elements=["name"])
        )
    ids = conn.execute(select(systems.c.id).where(systems.c.name.in_(names))).scalars().all()
    conn.execute(delete(bindings).where(bindings.c.client_id == client_id))
    if ids:
        conn.execute(
            insert(bindings), [{"client_id": client_id, "source_system_id": i} for i in ids]
        )
