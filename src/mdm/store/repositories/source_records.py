"""Bulk reads and writes of source records for ingest (SQLAlchemy Core, set-based).

On Postgres the version payloads go in with COPY; elsewhere with executemany.
Everything here runs inside the caller's transaction: one chunk, one commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    Connection,
    String,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)

from mdm.store.tables import records, rejects, systems

_IN_BATCH = 1000  # bound parameter lists (SQLite allows 32k variables; stay well below)


@dataclass(slots=True)
class CurrentState:
    record_id: int
    version: int
    content_hash: str
    status: str


def get_or_create_source_system(conn: Connection, name: str) -> int:
    found = conn.execute(select(systems.c.id).where(systems.c.name == name)).scalar()
    if found is not None:
        return int(found)
    return int(
        conn.execute(
            insert(systems).values(name=name, trust={}).returning(systems.c.id)
        ).scalar_one()
    )


def set_trust(conn: Connection, system_id: int, entity_type: str, trust: dict[str, float]) -> None:
    current = conn.execute(select(systems.c.trust).where(systems.c.id == system_id)).scalar_one()
    merged = dict(current or {})
    if merged.get(entity_type) != trust:
        merged[entity_type] = trust
        conn.execute(update(systems).where(systems.c.id == system_id).values(trust=merged))


def current_states(
    conn: Connection, system_id: int, keys: Sequence[str]
) -> dict[str, CurrentState]:
    """The current version, hash and status of each key: one unique-index lookup per
    key on ``source_records`` (the hash is denormalized there)."""
    out: dict[str, CurrentState] = {}
    step = 50_000 if conn.dialect.name == "postgresql" else _IN_BATCH  # one array param
    for start in range(0, len(keys), step):
        batch = list(keys[start : start + step])
        key_match = (
            records.c.source_key == func.any(bindparam("keys", batch, type_=ARRAY(String)))
            if conn.dialect.name == "postgresql"
            else records.c.source_key.in_(batch)
        )
        stmt = select(
            records.c.source_key,
            records.c.id,
            records.c.current_version,
            records.c.status,
            records.c.current_hash,
        ).where(records.c.source_system_id == system_id, key_match)
        for key, rid, version, status, chash in conn.execute(stmt):
            out[key] = CurrentState(int(rid), int(version), chash or "", status)
    return out


def durable_commit(conn: Connection) -> None:
    """Postgres: this transaction's commit waits for the WAL flush, whatever the
    session says (the ingest writer's session commits its chunks asynchronously)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL synchronous_commit = on"))


def analyze(conn: Connection) -> None:
    """Refresh planner statistics after bulk growth (Postgres); without it the planner
    keeps the plan of an empty table while a migration adds millions of rows."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("ANALYZE source_records"))


def insert_records(
    conn: Connection,
    system_id: int,
    entity_type: str,
    keys: Sequence[tuple[str, int, str]],
    run_id: int,
    now: datetime,
) -> dict[str, int]:
    """keys: (source key, current version, current content hash)."""
    if not keys:
        return {}
    if conn.dialect.name == "postgresql":
        return _copy_records(conn, system_id, entity_type, keys, run_id, now)
    rows = [
        {
            "source_system_id": system_id,
            "source_key": k,
            "entity_type": entity_type,
            "current_version": version,
            "current_hash": chash,
            "status": "active",
            "last_ingest_run_id": run_id,
            "first_seen_at": now,
            "updated_at": now,
        }
        for k, version, chash in keys
    ]
    result = conn.execute(
        insert(records).returning(records.c.source_key, records.c.id, sort_by_parameter_order=True),
        rows,
    )
    return {key: int(rid) for key, rid in result}


def _copy_records(
    conn: Connection,
    system_id: int,
    entity_type: str,
    keys: Sequence[tuple[str, int, str]],
    run_id: int,
    now: datetime,
) -> dict[str, int]:
    """COPY with ids drawn from the table's sequence up front: a multi-row INSERT
    ... RETURNING costs more in statement building than the insert itself."""
    # (imported here: the entities repository imports copy_text from this module)
    from mdm.store.repositories.entities import allocate_ids

    ids = allocate_ids(conn, records, len(keys))
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    columns = (
        "id, source_system_id, source_key, entity_type, current_version, current_hash, "
        "status, last_ingest_run_id, first_seen_at, updated_at"
    )
    stamp = now.isoformat()
    tail = f"\tactive\t{run_id}\t{stamp}\t{stamp}\n"
    block = "".join(
        f"{rid}\t{system_id}\t{copy_text(key)}\t{entity_type}\t{version}\t{chash}{tail}"
        for rid, (key, version, chash) in zip(ids, keys, strict=True)
    )
    with dbapi.cursor() as cur, cur.copy(f"COPY source_records ({columns}) FROM STDIN") as copy:
        copy.write(block)
    return {key: rid for rid, (key, _, _) in zip(ids, keys, strict=True)}


def copy_text(value: str) -> str:
    """A value in COPY's text format: backslash, tab, newline and carriage return
    escaped (each ``replace`` is a no-op scan in C when the character is absent)."""
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    return value.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def version_payload(
    raw: bytes, standardized: bytes, issues: bytes, content_hash: str, *, copy_format: bool
) -> bytes | str:
    """A version's three JSON payloads (UTF-8) and content hash as one value
    :func:`insert_versions` takes. On Postgres: bytes already in COPY's text format,
    its four columns from ``raw`` to ``content_hash`` (made in the ingest's worker
    processes, so that the single writer only joins bytes, and nothing is encoded
    or decoded on the way). JSON text never holds a raw tab, newline or carriage
    return (it escapes them), so a backslash is the one character COPY needs
    escaped. Elsewhere: the three JSON texts tab-joined (text, for the same reason
    free of tabs)."""
    if copy_format:
        block = b"%b\t%b\t%b" % (raw, standardized, issues)
        if b"\\" in block:
            block = block.replace(b"\\", b"\\\\")
        return block + b"\t" + content_hash.encode()
    return f"{raw.decode()}\t{standardized.decode()}\t{issues.decode()}"


def insert_versions(
    conn: Connection,
    rows: Sequence[tuple[int, int, bytes | str, str]],
    run_id: int,
    received_at: datetime,
    *,
    copy_format: bool,
) -> None:
    """rows: (source record id, version, payload, content hash), the payload made by
    :func:`version_payload` (``copy_format`` says which of its two forms)."""
    if not rows:
        return
    columns = (
        "source_record_id, version, raw, standardized, issues, content_hash, "
        "ingest_run_id, received_at"
    )
    if conn.dialect.name == "postgresql":
        if not copy_format:
            raise ValueError("Postgres takes version payloads in COPY text format")
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        # One block instead of a write_row per version: psycopg's per-row conversion
        # cost more than Postgres took to store the row.
        tail = f"\t{run_id}\t{received_at.isoformat()}\n".encode()
        payloads = [payload for _, _, payload, _ in rows]
        if not all(type(payload) is bytes for payload in payloads):
            raise ValueError("Postgres takes version payloads in COPY text format (bytes)")
        block = b"".join(
            [
                b"%d\t%d\t%b%b" % (rid, version, payload, tail)
                for (rid, version, _, _), payload in zip(
                    rows, cast(list[bytes], payloads), strict=True
                )
            ]
        )
        with (
            dbapi.cursor() as cur,
            cur.copy(f"COPY source_record_versions ({columns}) FROM STDIN") as copy,
        ):
            copy.write(block)
        return
    if copy_format:
        raise ValueError("only Postgres takes version payloads in COPY text format")
    # SQLite stores JSON as text: hand the serialized text straight to the driver.
    stamp = received_at.replace(tzinfo=None).isoformat(sep=" ")
    conn.exec_driver_sql(
        f"INSERT INTO source_record_versions ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (rid, version, *cast(str, payload).split("\t"), chash, run_id, stamp)
            for rid, version, payload, chash in rows
        ],
    )


def bump_versions(
    conn: Connection, changes: Iterable[tuple[int, int, str]], run_id: int, now: datetime
) -> None:
    """Point changed records at their new version (and reactivate withdrawn ones).

    changes: (record id, new current version, its content hash)."""
    if conn.dialect.name == "postgresql":
        _bump_versions_pg(conn, list(changes), run_id, now)
        return
    params = [
        {"rid": rid, "ver": version, "hash": chash, "run": run_id, "now": now}
        for rid, version, chash in changes
    ]
    if not params:
        return
    conn.execute(
        update(records)
        .where(records.c.id == bindparam("rid"))
        .values(
            current_version=bindparam("ver"),
            current_hash=bindparam("hash"),
            status="active",
            last_ingest_run_id=bindparam("run"),
            updated_at=bindparam("now"),
        ),
        params,
    )


_BUMP_PG = text(
    "UPDATE source_records AS s SET current_version = v.ver, current_hash = v.hash, "
    "status = 'active', last_ingest_run_id = :run, updated_at = :now "
    "FROM unnest(CAST(:rids AS bigint[]), CAST(:vers AS integer[]), CAST(:hashes AS text[])) "
    "AS v(rid, ver, hash) WHERE s.id = v.rid"
)


def _bump_versions_pg(
    conn: Connection, changes: list[tuple[int, int, str]], run_id: int, now: datetime
) -> None:
    """One UPDATE per 50,000 changes (arrays joined to the table), not one statement
    per record: the statement-level reference checks (migration 0012) then run once,
    and Postgres parses and plans once."""
    for start in range(0, len(changes), 50_000):
        part = changes[start : start + 50_000]
        conn.execute(
            _BUMP_PG,
            {
                "rids": [c[0] for c in part],
                "vers": [c[1] for c in part],
                "hashes": [c[2] for c in part],
                "run": run_id,
                "now": now,
            },
        )


def mark_seen(conn: Connection, record_ids: Sequence[int], run_id: int) -> None:
    for start in range(0, len(record_ids), _IN_BATCH):
        batch = record_ids[start : start + _IN_BATCH]
        conn.execute(
            update(records).where(records.c.id.in_(batch)).values(last_ingest_run_id=run_id)
        )


def reactivate(conn: Connection, record_ids: Sequence[int], now: datetime) -> None:
    for start in range(0, len(record_ids), _IN_BATCH):
        batch = record_ids[start : start + _IN_BATCH]
        conn.execute(
            update(records).where(records.c.id.in_(batch)).values(status="active", updated_at=now)
        )


def withdraw_unseen(
    conn: Connection, system_id: int, entity_type: str, run_id: int, now: datetime
) -> int:
    result = conn.execute(
        update(records)
        .where(
            records.c.source_system_id == system_id,
            records.c.entity_type == entity_type,
            records.c.status == "active",
            (records.c.last_ingest_run_id.is_(None)) | (records.c.last_ingest_run_id != run_id),
        )
        .values(status="withdrawn", updated_at=now)
    )
    return int(result.rowcount or 0)


def insert_rejects(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(rejects), rows)


def iter_rejects(conn: Connection, run_id: int) -> Iterable[Any]:
    return conn.execute(
        select(rejects.c.location, rejects.c.source_key, rejects.c.reasons, rejects.c.raw_content)
        .where(rejects.c.ingest_run_id == run_id)
        .order_by(rejects.c.id)
    )


def count_records(conn: Connection, system_id: int, entity_type: str) -> dict[str, int]:
    stmt = (
        select(records.c.status, func.count())
        .where(records.c.source_system_id == system_id, records.c.entity_type == entity_type)
        .group_by(records.c.status)
    )
    return {status: int(n) for status, n in conn.execute(stmt)}
