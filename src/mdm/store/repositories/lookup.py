"""The entity read model: an entity's current state (:class:`CurrentEntity`) by
internal id, by canonical ID, following redirects (:func:`resolve_canonical_ids`, the
one place redirects are followed), by source record and by cross-reference.

Set-based: one statement per chunk of IDs (``= ANY(:array)`` on Postgres). The API's
reads take attributes and provenance as JSON text and decode them with orjson only
when needed: its hot path. Services read by internal id, the JSON decoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg.pq import TransactionStatus
from sqlalchemy import (
    BigInteger,
    Connection,
    Text,
    and_,
    any_,
    bindparam,
    func,
    select,
    true,
    tuple_,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY

from mdm.store.repositories.entities import chunks, decode_json, one_of
from mdm.store.tables import (
    blocking_keys,
    entities,
    links,
    match_features,
    records,
    redirects,
    systems,
)


@dataclass(slots=True)
class CurrentEntity:
    """An entity's current state: the one read model of an entity.

    ``stored_attributes`` / ``stored_provenance`` hold either the JSON text the
    database returned (the API's reads: an unmasked read embeds the text as is) or
    the decoded values (reads by internal id, versions read from history);
    :attr:`attributes` and :attr:`provenance` always give the decoded values.
    ``valid_from``: when this state became valid (the entity's last change)."""

    id: int
    canonical_id: str
    entity_type: str
    status: str
    version: int
    stored_attributes: str | dict[str, Any]
    stored_provenance: str | dict[str, Any]
    valid_from: datetime | None

    @property
    def attributes(self) -> dict[str, Any]:
        return _decoded(self.stored_attributes)

    @property
    def provenance(self) -> dict[str, Any]:
        return _decoded(self.stored_provenance)


def _decoded(value: str | dict[str, Any]) -> dict[str, Any]:
    return (decode_json(value) or {}) if isinstance(value, str) else value


def _columns() -> list[Any]:
    return [
        entities.c.id,
        entities.c.canonical_id,
        entities.c.entity_type,
        entities.c.status,
        entities.c.version,
        sql_cast(entities.c.attributes, Text),
        sql_cast(entities.c.provenance, Text),
        entities.c.updated_at,
    ]


def _row(row: Any) -> CurrentEntity:
    return CurrentEntity(
        int(row[0]),
        row[1],
        row[2],
        row[3],
        int(row[4]),
        row[5] or "{}",
        row[6] or "{}",
        row[7],
    )


_ONE = select(*_columns()).where(entities.c.canonical_id == bindparam("cid"))
_MANY = select(*_columns()).where(
    entities.c.canonical_id == any_(bindparam("cids", type_=ARRAY(Text())))
)

#: id of a prebuilt statement -> its SQL and the values of its literal parameters.
_driver_sql: dict[int, tuple[str, dict[str, Any]]] = {}
#: SQL -> positions of its timestamp columns.
_timestamp_columns: dict[str, list[int]] = {}
#: Type OIDs of timestamp and timestamptz.
_TIMESTAMPS = frozenset({1114, 1184})
IDLE = TransactionStatus.IDLE


def _driver_rows(conn: Connection, stmt: Any, params: dict[str, Any], *, one: bool) -> Any:
    """Rows of a prebuilt statement, run on the driver connection (Postgres): the API's
    hot path, where SQLAlchemy's execution machinery cost more CPU than the indexed
    lookup. The statement's SQL is compiled once; psycopg prepares it server-side
    after a few executions. Timestamps come back in UTC, as through
    :class:`~mdm.store.models.base.UTCDateTime`."""
    compiled = _driver_sql.get(id(stmt))
    if compiled is None:
        c = stmt.compile(dialect=conn.dialect)
        named = {k for k, v in c.binds.items() if not v.unique}  # bindparam("name")
        compiled = _driver_sql[id(stmt)] = (
            str(c),
            {k: v for k, v in c.params.items() if k not in named},
        )
    sql, literals = compiled
    if literals:
        params = {**literals, **params}
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    # Outside any transaction, the one statement runs in autocommit: psycopg would
    # otherwise send BEGIN first and the pool a ROLLBACK at check-in, two round trips
    # more than the read (a single statement's snapshot is the same).
    alone = not (conn.in_transaction() or dbapi.autocommit or dbapi.info.transaction_status != IDLE)
    if alone:
        dbapi.autocommit = True
    try:
        cur = dbapi.execute(sql, params)
        rows = cur.fetchmany(1) if one else cur.fetchall()
    finally:
        if alone:
            dbapi.autocommit = False
    stamps = _timestamp_columns.get(sql)
    if stamps is None:  # timestamp and timestamptz columns, from the result's types
        stamps = _timestamp_columns[sql] = [
            i for i, col in enumerate(cur.description or ()) if col.type_code in _TIMESTAMPS
        ]
    if not stamps or not rows:
        return rows
    out = []
    for row in rows:
        values = list(row)
        for i in stamps:
            if values[i] is not None:
                values[i] = values[i].astimezone(UTC)
        out.append(tuple(values))
    return out


def first_row(conn: Connection, stmt: Any, params: dict[str, Any]) -> Any:
    """The first row of a prebuilt single-row statement (driver connection on
    Postgres, see :func:`_driver_rows`)."""
    if conn.dialect.name != "postgresql":
        return conn.execute(stmt, params).first()
    rows = _driver_rows(conn, stmt, params, one=True)
    return rows[0] if rows else None


#: Text that needs no quoting as an element of a Postgres array literal (canonical IDs).
_BARE_ELEMENTS = re.compile(r"[A-Za-z0-9_-]+(?:,[A-Za-z0-9_-]+)*")


def _text_array(values: Sequence[str]) -> str | list[str]:
    """``values`` as a Postgres array literal (``{A,B}``) when no element needs quoting:
    one string for the driver to send instead of a list to adapt item by item (a
    batch of 1,000 canonical IDs spent about 0.8 ms there); otherwise the list."""
    joined = ",".join(values)
    if (
        _BARE_ELEMENTS.fullmatch(joined) is None
        or joined.count(",") != len(values) - 1  # an element held a comma
        or ",NULL," in f",{joined.upper()},"  # an element Postgres would read as NULL
    ):
        return list(values)
    return "{" + joined + "}"


def current_entities(conn: Connection, canonical_ids: Sequence[str]) -> dict[str, CurrentEntity]:
    """canonical ID -> the entity's current state (merged ones included, not followed)."""
    out: dict[str, CurrentEntity] = {}
    unique = list(dict.fromkeys(canonical_ids))
    if len(unique) == 1:  # the single lookup: one prebuilt statement, cached plan
        row = first_row(conn, _ONE, {"cid": unique[0]})
        if row is not None:
            out[unique[0]] = _row(row)
        return out
    if conn.dialect.name == "postgresql":  # one prebuilt statement, the IDs as an array
        for part in chunks(conn, unique):
            for row in _driver_rows(conn, _MANY, {"cids": _text_array(part)}, one=False):
                out[row[1]] = _row(row)
        return out
    for batch in chunks(conn, unique):
        stmt = select(*_columns()).where(one_of(conn, entities.c.canonical_id, batch))
        for row in conn.execute(stmt).all():
            ent = _row(row)
            out[ent.canonical_id] = ent
    return out


def resolve_canonical_ids(
    conn: Connection, canonical_ids: Sequence[str]
) -> dict[str, CurrentEntity]:
    """requested canonical ID -> the entity that answers for it now: the entity
    itself, or for a merged one the entity its redirect leads to (a merged entity
    without a redirect answers for itself). IDs no entity has are left out.

    This is the one place redirects are followed. They are kept flat (one hop);
    a longer chain would still be followed, up to :data:`MAX_HOPS` hops."""
    out = current_entities(conn, canonical_ids)
    pending = {cid: ent for cid, ent in out.items() if ent.status == "merged"}
    for _hop in range(MAX_HOPS):
        if not pending:
            break
        targets = _redirect_targets(conn, [e.id for e in pending.values()])
        followed: dict[str, CurrentEntity] = {}
        for cid, ent in pending.items():
            target = targets.get(ent.id)
            if target is not None and target.id != out[cid].id:
                out[cid] = target
                if target.status == "merged":
                    followed[cid] = target
        pending = followed
    return out


#: The most redirects :func:`resolve_canonical_ids` follows from one ID.
MAX_HOPS = 8


def resolve_canonical_id(conn: Connection, canonical_id: str) -> CurrentEntity | None:
    """The entity that answers for ``canonical_id`` now (see
    :func:`resolve_canonical_ids`); ``None`` when no entity has the ID."""
    return resolve_canonical_ids(conn, [canonical_id]).get(canonical_id)


def _redirect_targets(conn: Connection, entity_ids: Sequence[int]) -> dict[int, CurrentEntity]:
    """merged entity id -> the entity it redirects to."""
    out: dict[int, CurrentEntity] = {}
    for batch in chunks(conn, sorted(set(entity_ids))):
        stmt = (
            select(redirects.c.from_entity_id, *_columns())
            .join(entities, entities.c.id == redirects.c.to_entity_id)
            .where(one_of(conn, redirects.c.from_entity_id, batch))
        )
        for row in conn.execute(stmt).all():
            out[int(row[0])] = _row(row[1:])
    return out


def entity_states(conn: Connection, entity_ids: Iterable[int]) -> dict[int, CurrentEntity]:
    """entity id -> its current state, attributes and provenance decoded (not
    following redirects)."""
    out: dict[int, CurrentEntity] = {}
    for batch in chunks(conn, sorted(set(entity_ids))):
        stmt = select(
            entities.c.id,
            entities.c.canonical_id,
            entities.c.entity_type,
            entities.c.status,
            entities.c.version,
            entities.c.attributes,
            entities.c.provenance,
            entities.c.updated_at,
        ).where(one_of(conn, entities.c.id, batch))
        for row in conn.execute(stmt):
            out[int(row[0])] = CurrentEntity(
                int(row[0]),
                row[1],
                row[2],
                row[3],
                int(row[4]),
                row[5] or {},
                row[6] or {},
                row[7],
            )
    return out


def entity_by_canonical_id(conn: Connection, canonical_id: str) -> CurrentEntity | None:
    """The entity of ``canonical_id`` (not following redirects), decoded as by
    :func:`entity_states`."""
    found = conn.execute(
        select(entities.c.id).where(entities.c.canonical_id == canonical_id)
    ).scalar()
    if found is None:
        return None
    return entity_states(conn, [int(found)])[int(found)]


@dataclass(slots=True)
class Xref:
    source_system: str
    source_key: str
    canonical_id: str
    entity_type: str
    status: str


_ONE_XREF = (
    select(
        systems.c.name,
        records.c.source_key,
        entities.c.canonical_id,
        entities.c.entity_type,
        entities.c.status,
    )
    .select_from(records)
    .join(systems, systems.c.id == records.c.source_system_id)
    .join(links, and_(links.c.source_record_id == records.c.id, links.c.active == true()))
    .join(entities, entities.c.id == links.c.entity_id)
    .where(systems.c.name == bindparam("s"), records.c.source_key == bindparam("k"))
)


def xrefs(conn: Connection, refs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Xref]:
    """(source system, source key) -> the entity its record is actively linked to."""
    out: dict[tuple[str, str], Xref] = {}
    unique = list(dict.fromkeys(refs))
    if not unique:
        return out
    if len(unique) == 1:  # the single lookup: one prebuilt statement
        found = first_row(conn, _ONE_XREF, {"s": unique[0][0], "k": unique[0][1]})
        if found is not None:
            out[unique[0]] = Xref(*found)
        return out
    size = 450 if conn.dialect.name != "postgresql" else 20_000
    for start in range(0, len(unique), size):
        part = unique[start : start + size]
        if conn.dialect.name == "postgresql":
            wanted = (
                func.unnest(
                    bindparam(None, [s for s, _k in part], type_=ARRAY(Text())),
                    bindparam(None, [k for _s, k in part], type_=ARRAY(Text())),
                )
                .table_valued("s", "k")
                .render_derived(name="wanted")
            )
            sel = (
                select(systems.c.name, records.c.source_key)
                .select_from(wanted)
                .join(systems, systems.c.name == wanted.c.s)
                .join(
                    records,
                    and_(
                        records.c.source_system_id == systems.c.id,
                        records.c.source_key == wanted.c.k,
                    ),
                )
            )
        else:
            sel = (
                select(systems.c.name, records.c.source_key)
                .select_from(records)
                .join(systems, systems.c.id == records.c.source_system_id)
                .where(tuple_(systems.c.name, records.c.source_key).in_(part))
            )
        stmt = (
            sel.add_columns(entities.c.canonical_id, entities.c.entity_type, entities.c.status)
            .join(links, and_(links.c.source_record_id == records.c.id, links.c.active == true()))
            .join(entities, entities.c.id == links.c.entity_id)
        )
        for name, key, cid, etype, status in conn.execute(stmt).all():
            out[(name, key)] = Xref(name, key, cid, etype, status)
    return out


def entities_of_records(conn: Connection, record_ids: Sequence[int]) -> dict[int, CurrentEntity]:
    """source record id -> the entity it is actively linked to."""
    out: dict[int, CurrentEntity] = {}
    for batch in chunks(conn, sorted(set(record_ids))):
        stmt = (
            select(links.c.source_record_id, *_columns())
            .join(entities, entities.c.id == links.c.entity_id)
            .where(one_of(conn, links.c.source_record_id, batch), links.c.active == true())
        )
        for row in conn.execute(stmt).all():
            out[int(row[0])] = _row(row[1:])
    return out


def _search_statement(postgres: bool) -> Any:
    if postgres:
        shared = blocking_keys.c.key_hash == any_(bindparam("hashes", type_=ARRAY(BigInteger())))
    else:
        shared = blocking_keys.c.key_hash.in_(bindparam("hashes", expanding=True))
    # (the entity type is part of each key's hash: it is checked on the feature row)
    sharing = select(blocking_keys.c.source_record_id).where(shared).distinct()
    owner = links.outerjoin(entities, entities.c.id == links.c.entity_id)
    return (
        select(
            match_features.c.source_record_id,
            sql_cast(match_features.c.features, Text),
            *_columns(),
        )
        .select_from(
            match_features.outerjoin(
                owner,
                and_(
                    links.c.source_record_id == match_features.c.source_record_id,
                    links.c.active == true(),
                ),
            )
        )
        .where(
            match_features.c.source_record_id.in_(sharing),
            match_features.c.entity_type == bindparam("entity_type"),
        )
    )


_SEARCH_PG = _search_statement(postgres=True)
_SEARCH = _search_statement(postgres=False)


@dataclass(slots=True)
class Candidate:
    """A record sharing a blocking key with a query: its feature row and the entity
    it is actively linked to (``None`` when it is linked to none)."""

    record_id: int
    features: dict[str, Any]
    owner: CurrentEntity | None


def search_candidates(
    conn: Connection, entity_type: str, key_hashes: Sequence[int]
) -> list[Candidate]:
    """Every record sharing one of ``key_hashes`` (see
    :func:`mdm.store.models.match.blocking_key_hashes`), with its entity, in one
    statement: the candidates of a search and their owners, which took three round
    trips and most of a search's CPU through the ORM."""
    if not key_hashes:
        return []
    params = {"entity_type": entity_type, "hashes": list(key_hashes)}
    if conn.dialect.name == "postgresql":
        rows = _driver_rows(conn, _SEARCH_PG, params, one=False)
    else:
        rows = conn.execute(_SEARCH, params).all()
    return [
        Candidate(
            int(row[0]),
            orjson.loads(row[1]),
            _row(row[2:]) if row[2] is not None else None,
        )
        for row in rows
    ]
