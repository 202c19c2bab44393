"""SQL of the matching candidate index: ``match_features``, ``blocking_keys`` and
``term_frequencies``.

What the feature pass reads (the active records' current versions beside their
stored feature rows), what it writes (rows, COPY text, the blocking keys' bulk mode
and its index rebuild, ANALYZE), the one-record writes of real-time registration,
the candidate lookup of one-record matching and the stored term frequencies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from sqlalchemy import (
    Connection,
    Engine,
    Text,
    and_,
    case,
    delete,
    func,
    insert,
    null,
    or_,
    select,
    text,
    true,
)
from sqlalchemy import cast as cast_
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint, DropIndex

from mdm.store.models.match import blocking_key_hashes
from mdm.store.repositories.entities import bulk_insert
from mdm.store.repositories.source_records import copy_text
from mdm.store.tables import (
    blocking_keys,
    links,
    match_features,
    record_versions,
    records,
    systems,
    term_frequencies,
)

log = logging.getLogger(__name__)


READ_BATCH = 20_000
_IN_BATCH = 900  # bound-parameter lists stay far below SQLite's limit
_ANALYZE_AFTER = 10_000  # rows written by one pass
# A first load into an empty candidate index: the blocking keys go in without its
# indexes, which are built afterwards (below this many active records, not worth it)
_BULK_KEYS_AFTER = 50_000


def _chunks(items: Sequence[Any], size: int = _IN_BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ----------------------------------------------------------- reading the store

#: record id, version, source system, the payload's JSON text, and the stored
#: feature row's content hash, record version, signature and features as JSON text
ActiveRow = tuple[int, int, str, Any, str | None, int | None, str | None, str | bytes | None]


def active_count(conn: Connection, entity_type: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(records)
            .where(records.c.entity_type == entity_type, records.c.status == "active")
        ).scalar_one()
    )


def iter_active(
    conn: Connection,
    entity_type: str,
    with_stored: bool,
    batch: int | None = None,
    *,
    signature: str | None = None,
) -> Iterator[list[ActiveRow]]:
    """The active records' current standardized versions, in id order, in batches,
    as plain tuples (they go to worker processes as they are): record id, version,
    source system, the payload's JSON text, and with ``with_stored`` the stored
    feature row's content hash, record version, signature and features as JSON text
    (``None`` each otherwise). With ``signature``, a record whose stored row is
    current under it (and is reused as stored) comes without its payload: a run
    after training reads no payload at all.

    ``stream_results`` makes this a server-side cursor on Postgres; SQLite's
    cursor steps through the rows anyway. Memory stays at one batch.
    """
    # the payload as its stored JSON text (Postgres ``json`` keeps it verbatim; the
    # cast is free), parsed with orjson: psycopg's default ``json.loads`` cost a
    # third of the pass's reading time
    payload: Any = cast_(record_versions.c.standardized, Text)
    if with_stored and signature is not None:
        current = and_(
            match_features.c.record_version == records.c.current_version,
            match_features.c.signature == signature,
        )
        payload = case((current, null()), else_=payload)
    cols = [records.c.id, records.c.current_version, systems.c.name, payload]
    joined = records.join(
        record_versions,
        and_(
            record_versions.c.source_record_id == records.c.id,
            record_versions.c.version == records.c.current_version,
        ),
    ).join(systems, systems.c.id == records.c.source_system_id)
    if with_stored:
        cols += [
            match_features.c.content_hash,
            match_features.c.record_version,
            match_features.c.signature,
        ]
        cols.append(cast_(match_features.c.features, Text))
        joined = joined.outerjoin(match_features, match_features.c.source_record_id == records.c.id)
    stmt = (
        select(*cols)
        .select_from(joined)
        .where(records.c.entity_type == entity_type, records.c.status == "active")
        .order_by(records.c.id)
    )
    batch = batch or READ_BATCH
    if conn.dialect.name == "postgresql":
        yield from _iter_active_driver(conn, stmt, with_stored, batch)
        return
    result = conn.execution_options(stream_results=True, yield_per=batch).execute(stmt)
    for part in result.partitions(batch):
        if with_stored:
            yield [(int(r[0]), int(r[1]), str(r[2]), r[3], r[4], r[5], r[6], r[7]) for r in part]
        else:
            yield [(int(r[0]), int(r[1]), str(r[2]), r[3], None, None, None, None) for r in part]


def _iter_active_driver(
    conn: Connection, stmt: Any, with_stored: bool, batch: int
) -> Iterator[list[ActiveRow]]:
    """:func:`iter_active` on Postgres: the statement on a psycopg server-side cursor
    of the same connection (and transaction), rows taken as the driver's tuples. A
    first feature pass reads every record of the type; SQLAlchemy's result machinery
    cost about 8 µs a row of it (no column here needs a result processor: integers
    and text)."""
    compiled = stmt.compile(dialect=conn.dialect)
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    with dbapi.cursor(name=f"mdm_active_{id(stmt):x}") as cur:
        # the two JSON texts (cast to ``text``; names and hashes are ``varchar``)
        # come as the server's UTF-8 bytes: orjson parses bytes, and a worker process
        # receives them without the decoding and re-encoding of a ``str``
        cur.adapters.register_loader("text", _RawTextLoader)
        cur.itersize = batch
        cur.execute(str(compiled), compiled.params)
        while part := cur.fetchmany(batch):
            if with_stored:
                yield part
            else:
                yield [(*r, None, None, None, None) for r in part]


class _RawTextLoader(psycopg.adapt.Loader):
    def load(self, data: Any) -> bytes:
        return bytes(data)


# ------------------------------------------------------- writing a feature pass

#: one record's row of the index: record id, record version, feature row,
#: blocking keys, content hash
IndexRow = tuple[int, int, Mapping[str, Any], list[str], str]


@dataclass(slots=True)
class FeatureWrite:
    """What one batch of a feature pass writes to the candidate index."""

    #: records whose feature row and keys are (re)written
    ids: list[int]
    #: of those, the ones that had stored rows (only theirs need deleting first)
    replace: list[int]
    #: on Postgres: the COPY text of their ``match_features`` and ``blocking_keys``
    #: rows, built where the features were computed (in a worker process)
    copy: tuple[bytes, bytes] | None = None
    #: elsewhere: the rows themselves
    rows: list[IndexRow] | None = None


def prepare_write(
    entity_type: str, signature: str | None, copy: bool, rows: list[IndexRow], replace: list[int]
) -> FeatureWrite:
    """The write of ``rows``; ``replace``: those of them that had stored rows. With
    ``copy`` (Postgres) as COPY text, built here (pure: a worker process calls it)."""
    out = FeatureWrite([rid for rid, *_ in rows], replace)
    if not copy:
        out.rows = rows
        return out
    # the text built directly (psycopg's per-row ``write_row`` cost more than
    # Postgres's own work)
    et = copy_text(entity_type)
    sig = "\\N" if signature is None else copy_text(signature)
    features = "".join(
        f"{rid}\t{et}\t{version}\t{digest}\t{sig}\t{copy_text(orjson.dumps(feats).decode())}\n"
        for rid, version, feats, _keys, digest in rows
    )
    keys = "".join(
        f"{et}\t{h}\t{rid}\n"
        for rid, _version, _feats, record_keys, _digest in rows
        for h in blocking_key_hashes(entity_type, record_keys)
    )
    # as bytes: they cross from a worker process without a decode and re-encode
    out.copy = (features.encode(), keys.encode())
    return out


def store_write(
    engine: Engine, entity_type: str, write: FeatureWrite, signature: str | None
) -> None:
    """One batch's write, one transaction."""
    # only records that had features need their old rows removed: on a first run
    # (or for new records) there is nothing to delete, and a DELETE ... IN on a
    # table whose statistics still say "empty" is a sequential scan per batch
    with engine.begin() as conn:
        if write.copy is None:
            # (SQLite's planner uses the index whatever its statistics say)
            assert write.rows is not None
            _delete_features(conn, write.ids)
            _insert_features(conn, entity_type, write.rows, signature)
            return
        _delete_features(conn, write.replace)
        try:
            with conn.begin_nested():
                _copy_features(conn, write.copy)
        except psycopg.errors.UniqueViolation:
            # the API registered one of these records (its features) after this
            # run read it: replace them all, as a run that deletes first would
            # (the next run sees the newer version and rewrites its features)
            log.info("features of %d records written concurrently; replacing", len(write.ids))
            _delete_features(conn, write.ids)
            _copy_features(conn, write.copy)


def _delete_features(conn: Connection, ids: Sequence[int]) -> None:
    for part in _chunks(ids):
        conn.execute(delete(blocking_keys).where(blocking_keys.c.source_record_id.in_(part)))
        conn.execute(delete(match_features).where(match_features.c.source_record_id.in_(part)))


def _insert_features(
    conn: Connection, entity_type: str, rows: list[IndexRow], signature: str | None
) -> None:
    feature_rows = [
        {
            "source_record_id": rid,
            "entity_type": entity_type,
            "record_version": version,
            "content_hash": digest,
            "signature": signature,
            "features": feats,
        }
        for rid, version, feats, _keys, digest in rows
    ]
    key_rows = [
        {"entity_type": entity_type, "key_hash": h, "source_record_id": rid}
        for rid, _version, _feats, keys, _digest in rows
        for h in blocking_key_hashes(entity_type, keys)
    ]
    bulk_insert(conn, match_features, feature_rows)
    bulk_insert(conn, blocking_keys, key_rows)


def _copy_features(conn: Connection, text_: tuple[bytes, bytes]) -> None:
    """Both tables by COPY of the text :func:`prepare_write` built."""
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    features, keys = text_
    with dbapi.cursor() as cur:
        with cur.copy(
            "COPY match_features (source_record_id, entity_type, record_version, "
            "content_hash, signature, features) FROM STDIN"
        ) as copy:
            copy.write(features)
        with cur.copy(
            "COPY blocking_keys (entity_type, key_hash, source_record_id) FROM STDIN"
        ) as copy:
            copy.write(keys)


def drop_inactive_features(engine: Engine, entity_type: str) -> int:
    """Records withdrawn (or retyped) since the last run leave the candidate index."""
    gone = (
        select(records.c.id)
        .where(records.c.id == match_features.c.source_record_id)
        .where(or_(records.c.status != "active", records.c.entity_type != entity_type))
        .exists()
    )
    with engine.begin() as conn:
        ids = [
            int(i)
            for i in conn.execute(
                select(match_features.c.source_record_id).where(
                    match_features.c.entity_type == entity_type, gone
                )
            ).scalars()
        ]
        _delete_features(conn, ids)
    return len(ids)


def analyze_after_pass(engine: Engine, written: int) -> None:
    """After a pass that wrote many rows on Postgres: fresh statistics. The API's
    candidate query plans with these: after a first run they would still say
    "empty" until autovacuum comes round."""
    if engine.dialect.name == "postgresql" and written >= _ANALYZE_AFTER:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE match_features, blocking_keys")


# ------------------------------------------------- blocking keys' bulk mode


def _key_index_ddl() -> list[tuple[str, Any]]:
    """(name, DDL) of ``blocking_keys``' primary key and indexes, from the model."""
    out: list[tuple[str, Any]] = [
        (str(blocking_keys.primary_key.name), AddConstraint(blocking_keys.primary_key))
    ]
    out.extend((str(ix.name), CreateIndex(ix)) for ix in sorted(blocking_keys.indexes, key=str))
    return out


def _missing_key_indexes(conn: Connection) -> list[tuple[str, Any]]:
    return [
        (name, ddl)
        for name, ddl in _key_index_ddl()
        if conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is None
    ]


def begin_bulk_keys(engine: Engine, active: int) -> bool:
    """On Postgres, before a feature pass: make sure ``blocking_keys`` has its
    indexes (a pass killed in bulk mode left them dropped), and, when the table is
    empty and the pass is large (``active`` records, at least ``_BULK_KEYS_AFTER``:
    a first national load), drop them for the pass.

    Why: each blocking key is a random insertion into a B-tree that soon outgrows the
    buffer cache (7M keys at 1M citizens, about 450 MB of index); Postgres's CPU per
    key doubled over such a pass. COPY into the bare table and one sorted index
    build afterwards cost a fraction of that (docs/sizing.md, "Postgres"). The
    candidate lookups of the API and of one-record matching find nothing in an empty
    table anyway; while the pass runs they scan the table instead of the index.
    Returns whether the indexes were dropped (:func:`restore_key_indexes` then
    rebuilds them)."""
    with engine.begin() as conn:
        if _missing_key_indexes(conn):
            _build_key_indexes(conn)
        if active < _BULK_KEYS_AFTER:
            return False
        # the lock makes the emptiness test and the drop one step for writers
        conn.exec_driver_sql("LOCK TABLE blocking_keys IN SHARE ROW EXCLUSIVE MODE")
        if conn.execute(select(blocking_keys.c.key_hash).limit(1)).first() is not None:
            return False
        for ix in blocking_keys.indexes:
            conn.execute(DropIndex(ix))
        conn.execute(DropConstraint(blocking_keys.primary_key))
    log.info("blocking keys: first load of %d records, indexes built after the pass", active)
    return True


def restore_key_indexes(engine: Engine) -> None:
    with engine.begin() as conn:
        _build_key_indexes(conn)


def _build_key_indexes(conn: Connection) -> None:
    """Build ``blocking_keys``' missing indexes. Writers wait meanwhile (the lock);
    a record written by the API while the indexes were down can have left a key
    twice: duplicates are removed before the primary key is built."""
    conn.exec_driver_sql("LOCK TABLE blocking_keys IN SHARE ROW EXCLUSIVE MODE")
    missing = _missing_key_indexes(conn)
    if not missing:
        return
    conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    started = time.perf_counter()
    for _name, ddl in missing:
        try:
            with conn.begin_nested():
                conn.execute(ddl)
        except sa_exc.IntegrityError:
            # only the primary key can fail: remove the duplicates, then build it
            conn.exec_driver_sql(
                "DELETE FROM blocking_keys a USING blocking_keys b"
                " WHERE a.key_hash = b.key_hash AND a.source_record_id = b.source_record_id"
                " AND a.ctid > b.ctid"
            )
            conn.execute(ddl)
    log.info(
        "blocking keys: built %s in %.1f s",
        ", ".join(name for name, _ in missing),
        time.perf_counter() - started,
    )


# ------------------------------------------------------------- one record


def put_record_features(
    session: Session,
    entity_type: str,
    source_record_id: int,
    record_version: int,
    content_hash: str,
    signature: str,
    features: Mapping[str, Any],
    keys: list[str],
) -> None:
    """Replace one record's feature row and blocking keys (the caller's transaction)."""
    remove_record_features(session, source_record_id)
    session.execute(
        insert(match_features).values(
            source_record_id=source_record_id,
            entity_type=entity_type,
            record_version=record_version,
            content_hash=content_hash,
            signature=signature,
            features=features,
        )
    )
    if keys:
        session.execute(
            insert(blocking_keys),
            [
                {
                    "entity_type": entity_type,
                    "key_hash": h,
                    "source_record_id": source_record_id,
                }
                for h in blocking_key_hashes(entity_type, keys)
            ],
        )


def remove_record_features(session: Session, source_record_id: int) -> None:
    """Take a record out of the candidate index (withdrawn, or about to be replaced)."""
    session.execute(
        delete(blocking_keys).where(blocking_keys.c.source_record_id == source_record_id)
    )
    session.execute(
        delete(match_features).where(match_features.c.source_record_id == source_record_id)
    )


def candidate_features(session: Session, entity_type: str, keys: Sequence[str]) -> list[Any]:
    """The stored feature rows (as the driver returns them) of every record of the
    type sharing one of ``keys``: one indexed query on ``blocking_keys``."""
    ids = (
        select(blocking_keys.c.source_record_id)
        .where(blocking_keys.c.key_hash.in_(blocking_key_hashes(entity_type, keys)))
        .distinct()
    )
    return list(
        session.execute(
            select(match_features.c.features).where(
                match_features.c.source_record_id.in_(ids),
                match_features.c.entity_type == entity_type,
            )
        ).scalars()
    )


def entity_member_features(session: Session, entity_ids: Iterable[int]) -> dict[int, list[Any]]:
    """Per entity, the stored feature rows (as the driver returns them) of its
    actively linked records."""
    ids = sorted(set(entity_ids))
    out: dict[int, list[Any]] = {}
    for part in _chunks(ids):
        stmt = (
            select(links.c.entity_id, match_features.c.features)
            .join(match_features, match_features.c.source_record_id == links.c.source_record_id)
            .where(links.c.active == true(), links.c.entity_id.in_(part))
        )
        for eid, feats in session.execute(stmt):
            out.setdefault(int(eid), []).append(feats)
    return out


# ------------------------------------------------------- term frequencies


def load_term_frequencies(
    db: Session | Connection, entity_type: str
) -> dict[str, dict[Any, float]]:
    tf: dict[str, dict[Any, float]] = {}
    for column, value, freq in db.execute(
        select(
            term_frequencies.c.column_name, term_frequencies.c.value, term_frequencies.c.tf
        ).where(term_frequencies.c.entity_type == entity_type)
    ):
        tf.setdefault(column, {})[value] = float(freq)
    return tf


def replace_term_frequencies(engine: Engine, entity_type: str, table: Any) -> bool:
    """Replace the stored term frequencies with ``table`` (a pyarrow table of column
    name, value, tf) when they differ; returns whether they changed.

    About a million values at a million records (phones and IDs are nearly unique):
    the table is read by column, not as a dict per row; the first store of a type's
    frequencies on Postgres has nothing to compare with and is copied as DuckDB
    renders it (:func:`_copy_first_tf`)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # the lock makes "none stored yet" and the copy one step for writers
            conn.exec_driver_sql("LOCK TABLE term_frequencies IN SHARE ROW EXCLUSIVE MODE")
            first = (
                select(term_frequencies.c.value)
                .where(term_frequencies.c.entity_type == entity_type)
                .limit(1)
            )
            if conn.execute(first).first() is None:
                _copy_first_tf(conn, entity_type, table)
                return bool(table.num_rows > 0)
        new: dict[tuple[str, str], float] = {}
        for batch in table.to_batches(max_chunksize=65_536):
            columns, values, tfs = (batch.column(i).to_pylist() for i in range(3))
            for c, v, tf in zip(columns, values, tfs, strict=True):
                new[str(c), str(v)] = float(tf)
        stored = {
            (c, v): float(tf)
            for c, v, tf in conn.execute(
                select(
                    term_frequencies.c.column_name, term_frequencies.c.value, term_frequencies.c.tf
                ).where(term_frequencies.c.entity_type == entity_type)
            )
        }
        if stored == new:
            return False
        conn.execute(delete(term_frequencies).where(term_frequencies.c.entity_type == entity_type))
        bulk_insert(
            conn,
            term_frequencies,
            [
                {"entity_type": entity_type, "column_name": c, "value": v, "tf": tf}
                for (c, v), tf in new.items()
            ],
        )
    return True


def _copy_first_tf(conn: Connection, entity_type: str, table: Any) -> None:
    """COPY ``table`` into ``term_frequencies`` as text DuckDB renders
    (:func:`mdm.matching.tables.tf_copy_text`), in the primary key's order (a million
    Python row dicts, their rendering and random insertions into the key's B-tree
    cost seconds at a million records)."""
    from mdm.matching.tables import tf_copy_text

    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    sql = "COPY term_frequencies (entity_type, column_name, value, tf) FROM STDIN"
    with dbapi.cursor() as cur, cur.copy(sql) as copy:
        for text in tf_copy_text(table, copy_text(entity_type)):
            copy.write(text)
