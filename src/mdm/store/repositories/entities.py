"""Set-based reads and writes of entities, links, redirects, versions and overrides.

Everything runs on the caller's connection, inside the caller's transaction (services
flush, the edge commits). Large writes go through :func:`bulk_insert` (COPY on
Postgres, executemany elsewhere) and large reads are chunked, so the identity service
handles millions of records without one ORM object per row.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Connection,
    String,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from mdm.store.repositories.source_records import copy_text
from mdm.store.tables import (
    conflicts,
    decisions,
    entity_versions,
    outbox,
    overrides,
    record_versions,
    records,
    redirects,
    systems,
)

# Re-exported: callers pair them with bulk_insert and allocate_ids.
from mdm.store.tables import entities as entities
from mdm.store.tables import links as links


def chunk_size(conn: Connection) -> int:
    """Ids per statement. SQLite binds one variable per id (at most 32k); Postgres
    binds one array (``= ANY(:ids)``), so a chunk only bounds memory and latency."""
    return 50_000 if conn.dialect.name == "postgresql" else 900


def chunks(conn: Connection, ids: Sequence[Any]) -> Iterator[Sequence[Any]]:
    n = chunk_size(conn)
    for start in range(0, len(ids), n):
        yield ids[start : start + n]


def one_of(
    conn: Connection, column: ColumnElement[Any], values: Sequence[Any]
) -> ColumnElement[bool]:
    """``column IN (values)``; on Postgres ``column = ANY(:array)``: one parameter, one
    cached plan, instead of tens of thousands of placeholders to render and parse."""
    if conn.dialect.name != "postgresql":
        return column.in_(list(values))
    item: Any = Text() if isinstance(column.type, String) else BigInteger()
    return column == any_(bindparam(None, list(values), type_=ARRAY(item)))


def encode_json(value: Any) -> str:
    """JSON text of a value for COPY into a JSON(B) column (orjson: several times
    faster than the json module)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. an integer past 64 bits: let the json module try
        return _ENCODER.encode(value)


_ENCODER = json.JSONEncoder(ensure_ascii=False)


def decode_json(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)


class JsonText(str):
    """A value already encoded by :func:`encode_json`: :func:`bulk_insert` writes it
    as is (the same golden record goes into ``entities`` and ``entity_versions``)."""

    __slots__ = ()


def json_for(conn: Connection, value: Any) -> Any:
    """``value`` encoded once for several COPYs on Postgres; unchanged elsewhere."""
    if conn.dialect.name != "postgresql":
        return value
    return JsonText(encode_json(value))


def bulk_insert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows: COPY on Postgres, executemany elsewhere. Rows share their keys."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), list(rows))
        return
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    _copy(conn, table.name, list(rows[0].keys()), json_columns, rows)


@dataclass(frozen=True, slots=True)
class CopyData:
    """Rows of one table already in COPY's text format (UTF-8), e.g. built by a worker
    process for :func:`write_copy` on the connection of the transaction."""

    table: str
    columns: tuple[str, ...]
    data: bytes


def copy_data(table: Table, rows: Sequence[Mapping[str, Any]]) -> CopyData | None:
    """What :func:`bulk_insert` would COPY on Postgres, as bytes (``None``: no rows)."""
    if not rows:
        return None
    json_set = {c.name for c in table.columns if isinstance(c.type, JSON)}
    columns = tuple(rows[0].keys())
    return CopyData(table.name, columns, _render(_formats(columns, json_set), rows).encode())


def write_copy(conn: Connection, data: CopyData | None) -> None:
    """COPY what :func:`copy_data` rendered (Postgres)."""
    if data is None:
        return
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    with dbapi.cursor() as cur, cur.copy(_copy_sql(data.table, data.columns)) as copy:
        view = memoryview(data.data)
        for start in range(0, len(view), _COPY_BYTES):
            copy.write(view[start : start + _COPY_BYTES])


_COPY_BYTES = 1 << 22  # per write: psycopg queues a buffer per call


def _copy(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    json_columns: Iterable[str],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """COPY ``rows`` with the text format built here: psycopg's per-row ``write_row``
    (a dumper looked up per value) cost more than Postgres's own work."""
    pairs = _formats(columns, set(json_columns))
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    with dbapi.cursor() as cur, cur.copy(_copy_sql(table, columns)) as copy:
        for start in range(0, len(rows), _COPY_BLOCK):
            copy.write(_render(pairs, rows[start : start + _COPY_BLOCK]))


_COPY_BLOCK = 5_000  # rows per write: bounded text, few calls

_Formats = list[tuple[str, Callable[[Any], str]]]


def _formats(columns: Iterable[str], json_columns: set[str]) -> _Formats:
    return [(c, _copy_json if c in json_columns else _copy_value) for c in columns]


def _render(pairs: _Formats, rows: Iterable[Mapping[str, Any]]) -> str:
    return "".join("\t".join([f(row[c]) for c, f in pairs]) + "\n" for row in rows)


def _copy_sql(table: str, columns: Iterable[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f"COPY {table} ({names}) FROM STDIN"


def _copy_value(v: Any) -> str:
    """One value in COPY's text format (the types the registry's tables hold)."""
    t = type(v)
    if t is str or t is JsonText:
        return copy_text(v)
    if v is None:
        return "\\N"
    if t is bool:
        return "t" if v else "f"
    if t is int:
        return str(v)
    if t is float:
        if v != v:
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "Infinity" if v > 0 else "-Infinity"
        return repr(v)
    if t is datetime:
        global _LAST_STAMP
        last = _LAST_STAMP  # (one tuple, replaced whole: safe across threads)
        if last[0] is v:
            return last[1]
        text = str(v.isoformat())
        _LAST_STAMP = (v, text)
        return text
    return copy_text(str(v))


#: The last datetime written and its text: the rows of one statement share their
#: time (``created_at = now``), formatted once instead of once per row.
_LAST_STAMP: tuple[Any, str] = (None, "")


def _copy_json(v: Any) -> str:
    """A JSON(B) column: ``None`` is JSON ``null``, as SQLAlchemy's JSON type writes it.

    JSON text holds no raw tab, newline or carriage return (both encoders escape
    every control character), so of COPY's escapes only the backslash can apply:
    one scan of the text instead of four (golden records are the largest values
    the identity step writes, each twice)."""
    text = v if type(v) is JsonText else encode_json(v)
    return text.replace("\\", "\\\\") if "\\" in text else text


def allocate_ids(conn: Connection, table: Table, n: int) -> list[int]:
    """Primary keys for ``n`` rows about to be inserted with explicit ids.

    Postgres draws them from the table's sequence. SQLite (one writer at a time) takes
    the next free integers; a concurrent writer makes this transaction fail with
    SQLITE_BUSY rather than reuse an id.
    """
    if n <= 0:
        return []
    if conn.dialect.name == "postgresql":
        from sqlalchemy import text

        pk = next(iter(table.primary_key.columns)).name
        # MATERIALIZED: as a plain subquery the lookup of the sequence was pulled up
        # and ran once per id (8x the cost of the nextval calls themselves).
        return [
            int(i)
            for i in conn.execute(
                text(
                    "WITH q AS MATERIALIZED (SELECT pg_get_serial_sequence("
                    f"'{table.name}', '{pk}')::regclass AS seq) "
                    "SELECT nextval(q.seq) AS id FROM q, generate_series(1, :n) ORDER BY id"
                ),
                {"n": n},
            ).scalars()
        ]
    pk_col = next(iter(table.primary_key.columns))
    top = conn.execute(select(func.coalesce(func.max(pk_col), 0))).scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + n))


# --- reads ---------------------------------------------------------------------------


def active_links(conn: Connection, entity_type: str) -> dict[int, int]:
    """source_record_id -> entity_id for every active link of the type."""
    stmt = (
        select(links.c.source_record_id, links.c.entity_id)
        .join(entities, entities.c.id == links.c.entity_id)
        .where(links.c.active == true(), entities.c.entity_type == entity_type)
    )
    return {int(r): int(e) for r, e in conn.execute(stmt)}


def members(conn: Connection, entity_ids: Sequence[int]) -> dict[int, list[int]]:
    """entity_id -> its actively linked source record ids (sorted)."""
    out: dict[int, list[int]] = {e: [] for e in entity_ids}
    for batch in chunks(conn, list(entity_ids)):
        stmt = select(links.c.entity_id, links.c.source_record_id).where(
            one_of(conn, links.c.entity_id, batch), links.c.active == true()
        )
        for e, r in conn.execute(stmt):
            out[int(e)].append(int(r))
    for rs in out.values():
        rs.sort()
    return out


def entity_ids_of_type(conn: Connection, entity_type: str, status: str = "active") -> list[int]:
    stmt = (
        select(entities.c.id)
        .where(entities.c.entity_type == entity_type, entities.c.status == status)
        .order_by(entities.c.id)
    )
    return [int(i) for i in conn.execute(stmt).scalars()]


def existing_canonical_ids(conn: Connection, candidates: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for batch in chunks(conn, list(candidates)):
        found.update(
            conn.execute(
                select(entities.c.canonical_id).where(one_of(conn, entities.c.canonical_id, batch))
            ).scalars()
        )
    return found


def record_refs(conn: Connection, record_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """source_record_id -> (source system name, source key)."""
    out: dict[int, tuple[str, str]] = {}
    for batch in chunks(conn, list(record_ids)):
        stmt = (
            select(records.c.id, systems.c.name, records.c.source_key)
            .join(systems, systems.c.id == records.c.source_system_id)
            .where(one_of(conn, records.c.id, batch))
        )
        for rid, name, key in conn.execute(stmt):
            out[int(rid)] = (name, key)
    return out


@dataclass(slots=True)
class RecordRow:
    record_id: int
    system: str
    key: str
    standardized: dict[str, Any]
    issues: list[dict[str, Any]]
    received_at: datetime
    trust: dict[str, Any]


def record_rows(conn: Connection, record_ids: Sequence[int], entity_type: str) -> list[RecordRow]:
    """The current standardized version of each record, with its source's trust.

    The few source systems are read once (their trust is shared by their records);
    JSON comes back as text and is decoded here, with orjson when installed.
    """
    trust_of: dict[int, tuple[str, dict[str, Any]]] = {
        int(sid): (name, (trust or {}).get(entity_type) or {})
        for sid, name, trust in conn.execute(select(systems.c.id, systems.c.name, systems.c.trust))
    }
    out: list[RecordRow] = []
    no_issues: list[dict[str, Any]] = []
    for batch in chunks(conn, sorted(record_ids)):
        stmt = (
            select(
                records.c.id,
                records.c.source_system_id,
                records.c.source_key,
                cast(record_versions.c.standardized, Text),
                cast(record_versions.c.issues, Text),
                record_versions.c.received_at,
            )
            .join(
                record_versions,
                and_(
                    record_versions.c.source_record_id == records.c.id,
                    record_versions.c.version == records.c.current_version,
                ),
            )
            .where(one_of(conn, records.c.id, batch))
        )
        for rid, sid, key, std, issues, received in _plain_rows(conn, stmt):
            name, trust = trust_of[int(sid)]
            out.append(
                RecordRow(
                    int(rid),
                    name,
                    key,
                    decode_json(std) or {},
                    no_issues if issues in (None, "[]", "null") else decode_json(issues) or [],
                    received if received.tzinfo is UTC else received.astimezone(UTC),
                    trust,
                )
            )
    return out


def _plain_rows(conn: Connection, stmt: Any) -> Iterable[Sequence[Any]]:
    """The rows of ``stmt``; on Postgres as the driver's tuples, run on the same
    connection and transaction, without SQLAlchemy's result processing (the identity
    step reads every new entity's records here: that per-row handling cost more than
    the decoding of their JSON). Timestamps then come in the session's time zone:
    the caller turns them to UTC, as :class:`~mdm.store.models.base.UTCDateTime`
    would."""
    if conn.dialect.name != "postgresql":
        return conn.execute(stmt)
    compiled = stmt.compile(dialect=conn.dialect)
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    with dbapi.cursor() as cur:
        rows: list[Sequence[Any]] = cur.execute(str(compiled), compiled.params).fetchall()
    return rows


def active_overrides(conn: Connection, entity_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = defaultdict(dict)
    for batch in chunks(conn, sorted(entity_ids)):
        stmt = select(overrides.c.entity_id, overrides.c.attribute, overrides.c.value).where(
            one_of(conn, overrides.c.entity_id, batch), overrides.c.active == true()
        )
        for e, attr, value in conn.execute(stmt):
            out[int(e)][attr] = value
    return dict(out)


def entities_with_newer_inputs(conn: Connection, entity_type: str) -> set[int]:
    """Active entities with a linked record changed (new version, reactivated,
    withdrawn) after the entity's last change: their golden record may be stale."""
    stmt = (
        select(links.c.entity_id)
        .distinct()
        .join(entities, entities.c.id == links.c.entity_id)
        .join(records, records.c.id == links.c.source_record_id)
        .where(
            links.c.active == true(),
            entities.c.entity_type == entity_type,
            entities.c.status == "active",
            records.c.updated_at > entities.c.updated_at,
        )
    )
    return {int(e) for e in conn.execute(stmt).scalars()}


def steward_pairs(
    conn: Connection, entity_type: str
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Active (must_link, cannot_link) pairs between records of the type."""
    stmt = (
        select(decisions.c.kind, decisions.c.left_record_id, decisions.c.right_record_id)
        .join(records, records.c.id == decisions.c.left_record_id)
        .where(decisions.c.active == true(), records.c.entity_type == entity_type)
        .order_by(decisions.c.id)
    )
    must: list[tuple[int, int]] = []
    cannot: list[tuple[int, int]] = []
    for kind, left, right in conn.execute(stmt):
        (must if kind == "must_link" else cannot).append((int(left), int(right)))
    return must, cannot


def max_sequences(conn: Connection, entity_ids: Sequence[int]) -> dict[int, int]:

    out: dict[int, int] = {}
    for batch in chunks(conn, sorted(entity_ids)):
        stmt = (
            select(outbox.c.entity_id, func.max(outbox.c.sequence))
            .where(one_of(conn, outbox.c.entity_id, batch))
            .group_by(outbox.c.entity_id)
        )
        for e, seq in conn.execute(stmt):
            out[int(e)] = int(seq)
    return out


# --- writes --------------------------------------------------------------------------


def deactivate_links(conn: Connection, record_ids: Sequence[int], now: datetime) -> None:
    for batch in chunks(conn, sorted(record_ids)):
        conn.execute(
            update(links)
            .where(one_of(conn, links.c.source_record_id, batch), links.c.active == true())
            .values(active=False, deactivated_at=now)
        )


def update_entities(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """rows: id, status, version, attributes, provenance, updated_at.

    Postgres: COPY into a temporary table and one ``UPDATE ... FROM`` (a statement
    per row costs a round trip each); elsewhere one executemany.
    """
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        columns = ("id", "status", "version", "attributes", "provenance", "updated_at")
        conn.exec_driver_sql(
            "CREATE TEMP TABLE IF NOT EXISTS mdm_entity_updates (id bigint PRIMARY KEY, "
            "status text, version integer, attributes json, provenance json, "
            "updated_at timestamptz) ON COMMIT DROP"
        )
        _copy(conn, "mdm_entity_updates", columns, {"attributes", "provenance"}, rows)
        conn.exec_driver_sql(
            "UPDATE entities AS e SET status = u.status, version = u.version, "
            "attributes = u.attributes, provenance = u.provenance, updated_at = u.updated_at "
            "FROM mdm_entity_updates AS u WHERE e.id = u.id"
        )
        conn.exec_driver_sql("TRUNCATE mdm_entity_updates")
        return
    conn.execute(
        update(entities)
        .where(entities.c.id == bindparam("_id"))
        .values(
            status=bindparam("_status"),
            version=bindparam("_version"),
            attributes=bindparam("_attributes"),
            provenance=bindparam("_provenance"),
            updated_at=bindparam("_updated_at"),
        ),
        [
            {
                "_id": r["id"],
                "_status": r["status"],
                "_version": r["version"],
                "_attributes": r["attributes"],
                "_provenance": r["provenance"],
                "_updated_at": r["updated_at"],
            }
            for r in rows
        ],
    )


def add_redirect(
    conn: Connection, loser_id: int, survivor_id: int, reason: str, actor: str, now: datetime
) -> None:
    """loser -> survivor, keeping redirects flat: older redirects into the loser are
    re-pointed first (the database triggers refuse anything else)."""
    conn.execute(
        update(redirects)
        .where(redirects.c.to_entity_id == loser_id)
        .values(to_entity_id=survivor_id)
    )
    conn.execute(
        insert(redirects).values(
            from_entity_id=loser_id,
            to_entity_id=survivor_id,
            reason=reason,
            created_by=actor,
            created_at=now,
        )
    )


def remove_redirect(conn: Connection, entity_id: int) -> None:
    conn.execute(delete(redirects).where(redirects.c.from_entity_id == entity_id))


def redirected_from(conn: Connection, entity_id: int) -> list[str]:
    stmt = (
        select(entities.c.canonical_id)
        .join(redirects, redirects.c.from_entity_id == entities.c.id)
        .where(redirects.c.to_entity_id == entity_id)
        .order_by(entities.c.canonical_id)
    )
    return list(conn.execute(stmt).scalars())


def replace_conflicts(
    conn: Connection,
    entity_ids: Sequence[int],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Make ``entity_conflicts`` of these entities exactly ``rows``."""
    for batch in chunks(conn, sorted(entity_ids)):
        conn.execute(delete(conflicts).where(one_of(conn, conflicts.c.entity_id, batch)))
    if rows:
        conn.execute(insert(conflicts), list(rows))


def previous_entity_of(conn: Connection, record_ids: Sequence[int], current: int) -> dict[int, int]:
    """record -> the entity its most recent *inactive* link (to another entity) named."""
    out: dict[int, tuple[int, int]] = {}
    for batch in chunks(conn, sorted(record_ids)):
        stmt = select(links.c.source_record_id, links.c.entity_id, links.c.id).where(
            one_of(conn, links.c.source_record_id, batch),
            links.c.active == false(),
            links.c.entity_id != current,
        )
        for rid, eid, lid in conn.execute(stmt):
            prev = out.get(int(rid))
            if prev is None or int(lid) > prev[1]:
                out[int(rid)] = (int(eid), int(lid))
    return {r: e for r, (e, _l) in out.items()}


def set_decisions(
    conn: Connection,
    kind: str,
    pairs: Iterable[tuple[int, int]],
    *,
    actor: str,
    reason: str | None,
    now: datetime,
) -> int:
    rows = [
        {
            "kind": kind,
            "left_record_id": min(a, b),
            "right_record_id": max(a, b),
            "candidate_id": None,
            "reason": reason,
            "decided_by": actor,
            "decided_at": now,
            "active": True,
        }
        for a, b in sorted({(min(a, b), max(a, b)) for a, b in pairs if a != b})
    ]
    bulk_insert(conn, decisions, rows)
    return len(rows)


def deactivate_decisions(
    conn: Connection, kind: str, left: Sequence[int], right: Sequence[int]
) -> None:
    """Deactivate ``kind`` decisions between any record of ``left`` and any of ``right``."""
    a, b = sorted(set(left)), sorted(set(right))
    if not a or not b:
        return
    for batch_a in chunks(conn, a):
        for batch_b in chunks(conn, b):
            conn.execute(
                update(decisions)
                .where(
                    decisions.c.kind == kind,
                    decisions.c.active == true(),
                    or_(
                        and_(
                            one_of(conn, decisions.c.left_record_id, batch_a),
                            one_of(conn, decisions.c.right_record_id, batch_b),
                        ),
                        and_(
                            one_of(conn, decisions.c.left_record_id, batch_b),
                            one_of(conn, decisions.c.right_record_id, batch_a),
                        ),
                    ),
                )
                .values(active=False)
            )


def add_links(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    bulk_insert(conn, links, rows)


def add_versions(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    bulk_insert(conn, entity_versions, rows)


def add_events(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append rows to the outbox (numbered by the caller)."""
    bulk_insert(conn, outbox, rows)


def new_entity_id(conn: Connection) -> int:
    """One id for an entity about to be created."""
    return allocate_ids(conn, entities, 1)[0]


def new_entity_tables(
    entity_rows: list[Any],
    version_rows: list[Any],
    link_rows: list[Any],
    conflict_rows: list[Any],
    event_rows: list[Any],
) -> list[tuple[Table, list[Any]]]:
    """The rows that create new entities paired with their tables, in the order they
    are written (referenced tables first), the outbox last."""
    return [
        (entities, entity_rows),
        (entity_versions, version_rows),
        (links, link_rows),
        (conflicts, conflict_rows),
        (outbox, event_rows),
    ]


def add_override(
    conn: Connection,
    entity_id: int,
    attribute: str,
    value: Any,
    *,
    reason: str,
    actor: str,
    now: datetime,
) -> None:
    conn.execute(
        insert(overrides).values(
            entity_id=entity_id,
            attribute=attribute,
            value=value,
            reason=reason,
            created_by=actor,
            created_at=now,
            active=True,
        )
    )


def clear_override(
    conn: Connection, entity_id: int, attribute: str, *, actor: str, now: datetime
) -> bool:
    """Deactivate the active override of ``attribute``; whether there was one."""
    found = conn.execute(
        select(overrides.c.id).where(
            overrides.c.entity_id == entity_id,
            overrides.c.attribute == attribute,
            overrides.c.active == true(),
        )
    ).scalar()
    if found is None:
        return False
    conn.execute(
        update(overrides)
        .where(overrides.c.id == found)
        .values(active=False, cleared_by=actor, cleared_at=now)
    )
    return True


def most_linked(conn: Connection, entity_type: str) -> str | None:
    """The canonical ID of the entity of ``entity_type`` with the most active links
    (the smallest ID among equals)."""
    found = conn.execute(
        select(entities.c.canonical_id)
        .join(links, links.c.entity_id == entities.c.id)
        .where(entities.c.entity_type == entity_type, links.c.active == true())
        .group_by(entities.c.canonical_id)
        .order_by(func.count().desc(), entities.c.canonical_id)
        .limit(1)
    ).scalar()
    return None if found is None else str(found)
