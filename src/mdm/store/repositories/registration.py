"""SQL of the real-time registration of one source record (SQLAlchemy Core).

Everything runs in the caller's transaction. One record at a time: plain statements,
no COPY.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, or_, select, text, true, update
from sqlalchemy.dialects import postgresql, sqlite

from mdm.store.repositories import locks
from mdm.store.tables import (
    decisions,
    entities,
    idempotency_keys,
    links,
    record_versions,
    records,
    rejects,
    systems,
)

# ------------------------------------------------------------------ locking


def take_write_lock(conn: Connection) -> None:
    """SQLite has one writer at a time: take the database's write lock now (a no-op
    write), waiting for the busy timeout, so that everything this transaction reads
    from here on stays true until it commits. Must come before the transaction's
    first read: a read snapshot that another writer has moved past cannot be
    upgraded (SQLITE_BUSY at once; the caller retries). Postgres: nothing (see
    :func:`lock`)."""
    if conn.dialect.name == "sqlite":
        conn.execute(update(idempotency_keys).where(text("0")).values(key=idempotency_keys.c.key))


def lock(conn: Connection, names: Iterable[str]) -> None:
    """Postgres: hold these named locks until the transaction ends
    (:func:`mdm.store.repositories.locks.xact_lock`: in ascending key order, so that
    two transactions asking for overlapping sets never wait for each other in a
    cycle). Elsewhere nothing: :func:`take_write_lock` already serialized writers.
    """
    locks.xact_lock(conn, names)


# ------------------------------------------------------------------ sources


def source_system_id(conn: Connection, name: str, *, create: bool) -> int | None:
    """The id of the source system ``name``; created (no trust: survivorship's
    defaults) when missing and ``create``, safe against a concurrent creator."""
    found = conn.execute(select(systems.c.id).where(systems.c.name == name)).scalar()
    if found is not None or not create:
        return None if found is None else int(found)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(systems)
        .values(name=name, trust={}, description="created by real-time registration")
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return int(conn.execute(select(systems.c.id).where(systems.c.name == name)).scalar_one())


@dataclass(frozen=True, slots=True)
class StoredRecord:
    id: int
    entity_type: str
    version: int
    content_hash: str | None
    status: str


def find_record(conn: Connection, system_id: int, source_key: str) -> StoredRecord | None:
    row = conn.execute(
        select(
            records.c.id,
            records.c.entity_type,
            records.c.current_version,
            records.c.current_hash,
            records.c.status,
        ).where(records.c.source_system_id == system_id, records.c.source_key == source_key)
    ).first()
    if row is None:
        return None
    return StoredRecord(int(row[0]), str(row[1]), int(row[2]), row[3], str(row[4]))


def insert_record(
    conn: Connection,
    system_id: int,
    source_key: str,
    entity_type: str,
    content_hash: str,
    now: datetime,
) -> int:
    return int(
        conn.execute(
            insert(records)
            .values(
                source_system_id=system_id,
                source_key=source_key,
                entity_type=entity_type,
                current_version=1,
                status="active",
                current_hash=content_hash,
                first_seen_at=now,
                updated_at=now,
            )
            .returning(records.c.id)
        ).scalar_one()
    )


def insert_version(
    conn: Connection,
    record_id: int,
    version: int,
    raw: dict[str, Any],
    standardized: dict[str, Any],
    issues: list[dict[str, Any]],
    content_hash: str,
    now: datetime,
) -> None:
    conn.execute(
        insert(record_versions).values(
            source_record_id=record_id,
            version=version,
            raw=raw,
            standardized=standardized,
            issues=issues,
            content_hash=content_hash,
            ingest_run_id=None,
            received_at=now,
        )
    )


def point_at_version(
    conn: Connection, record_id: int, version: int, content_hash: str, now: datetime
) -> None:
    """Make ``version`` current (and the record active again)."""
    conn.execute(
        update(records)
        .where(records.c.id == record_id)
        .values(current_version=version, current_hash=content_hash, status="active", updated_at=now)
    )


def insert_reject(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(rejects).values(**row))


# ------------------------------------------------------------------ identity


@dataclass(frozen=True, slots=True)
class LinkedEntity:
    entity_id: int
    canonical_id: str
    status: str


def active_link(conn: Connection, record_id: int) -> LinkedEntity | None:
    row = conn.execute(
        select(entities.c.id, entities.c.canonical_id, entities.c.status)
        .join(links, links.c.entity_id == entities.c.id)
        .where(links.c.source_record_id == record_id, links.c.active == true())
    ).first()
    return None if row is None else LinkedEntity(int(row[0]), str(row[1]), str(row[2]))


def entity_status(conn: Connection, entity_id: int) -> str | None:
    found = conn.execute(select(entities.c.status).where(entities.c.id == entity_id)).scalar()
    return None if found is None else str(found)


def steward_decided(conn: Connection, record_id: int) -> set[int]:
    """Records that an active steward decision (either kind) pairs with this one."""
    out: set[int] = set()
    for a, b in conn.execute(
        select(decisions.c.left_record_id, decisions.c.right_record_id).where(
            decisions.c.active == true(),
            or_(decisions.c.left_record_id == record_id, decisions.c.right_record_id == record_id),
        )
    ):
        out.add(int(b) if int(a) == record_id else int(a))
    return out


# ------------------------------------------------------------------ idempotency


@dataclass(frozen=True, slots=True)
class StoredKey:
    id: int
    request_hash: str
    response: dict[str, Any]
    created_at: datetime


def find_idempotency_key(conn: Connection, client_id: int | None, key: str) -> StoredKey | None:
    client = (
        idempotency_keys.c.client_id.is_(None)
        if client_id is None
        else idempotency_keys.c.client_id == client_id
    )
    row = conn.execute(
        select(
            idempotency_keys.c.id,
            idempotency_keys.c.request_hash,
            idempotency_keys.c.response,
            idempotency_keys.c.created_at,
        ).where(client, idempotency_keys.c.key == key)
    ).first()
    if row is None:
        return None
    return StoredKey(int(row[0]), str(row[1]), dict(row[2]), row[3])


def store_idempotency_key(
    conn: Connection,
    client_id: int | None,
    key: str,
    request_hash: str,
    response: dict[str, Any],
    now: datetime,
) -> None:
    conn.execute(
        insert(idempotency_keys).values(
            client_id=client_id,
            key=key,
            request_hash=request_hash,
            response=response,
            created_at=now,
        )
    )


def delete_idempotency_key(conn: Connection, row_id: int) -> None:
    conn.execute(delete(idempotency_keys).where(idempotency_keys.c.id == row_id))


def purge_idempotency_keys(conn: Connection, before: datetime) -> int:
    result = conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < before))
    return int(result.rowcount or 0)
