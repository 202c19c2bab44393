"""Matching wired to the store: training, the batch run, and one record at a time.

* :func:`train_from_store` streams the active records' current standardized
  versions out of the store (server-side cursor), turns them into feature rows in
  bounded batches written to parquet in a temporary directory, trains the
  Fellegi-Sunter model with Splink on DuckDB and saves it to
  ``matching_rules/models/<entity>.json``.
* :func:`run_batch` scores and clusters every active record of a type under the
  stewards' must-link / cannot-link decisions, keeps in the store what the
  incremental path needs (feature rows, blocking keys, term frequencies), queues
  the review band as ``match_candidates`` and hands the partition to the identity
  service. Idempotent and resumable: every step writes only differences from what
  the store already holds, so a rerun on unchanged data changes nothing and a run
  killed at any point is finished by running it again.
* :func:`match_one` decides for one record (the API's path) with the same model,
  the same term frequencies and the same deterministic rules, without a Splink
  linker: candidates come from one indexed query on ``blocking_keys``.
  :func:`add_record_features` keeps those tables current when the API registers
  a record between batch runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import orjson
import psycopg
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    null,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy import cast as cast_
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint, DropIndex

from mdm.exceptions import BadRequest, ConfigError, Conflict
from mdm.matching import (
    BatchResult,
    Candidate,
    IncrementalMatcher,
    IncrementalScorer,
    MatchingRules,
    MatchModel,
    ScoredCandidate,
    TrainingReport,
    arrow_schema,
    blocking_keys,
    build_features,
    decide_pair,
    exclusive_conflict,
    load_features,
    load_rules,
    predict_and_cluster,
    rows_to_arrow,
    tf_lookup_from_arrow,
    train,
    worth_review,
)
from mdm.matching.features import FeatureRow, FeatureValue
from mdm.matching.model import weight_to_prob
from mdm.matching.rules import default_rules_dir
from mdm.matching.spark import SparkOptions, check_staging, start_session
from mdm.services.bulk import BackgroundWriter, OrderedProcessPool, bulk_workers, gc_paused
from mdm.store.models import (
    BlockingKey,
    Entity,
    Link,
    MatchCandidate,
    MatchFeatures,
    MatchRun,
    SourceRecord,
    SourceRecordVersion,
    SourceSystem,
    StewardDecision,
    TermFrequency,
)
from mdm.store.models.match import blocking_key_hashes
from mdm.store.repositories import lookup
from mdm.store.repositories.entities import bulk_insert
from mdm.store.repositories.source_records import copy_text

log = logging.getLogger(__name__)

sr = cast(Table, SourceRecord.__table__)
srv = cast(Table, SourceRecordVersion.__table__)
systems = cast(Table, SourceSystem.__table__)
bk = cast(Table, BlockingKey.__table__)
mf = cast(Table, MatchFeatures.__table__)
tft = cast(Table, TermFrequency.__table__)
runs = cast(Table, MatchRun.__table__)
cands = cast(Table, MatchCandidate.__table__)
decisions = cast(Table, StewardDecision.__table__)
links = cast(Table, Link.__table__)
entities = cast(Table, Entity.__table__)

Backend = Literal["duckdb", "spark"]
BACKENDS: tuple[str, ...] = ("duckdb", "spark")
ACTOR = "system:match"
READ_BATCH = 20_000
WRITE_BATCH = 5_000
_IN_BATCH = 900  # bound-parameter lists stay far below SQLite's limit
_METHOD_RANK = {"steward": 3, "rule": 2, "model": 1}


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(items: Sequence[Any], size: int = _IN_BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def model_path(entity_type: str, rules_dir: Path | None = None) -> Path:
    return (rules_dir or default_rules_dir()) / "models" / f"{entity_type}.json"


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise BadRequest(f"unknown backend {backend!r}; expected one of {BACKENDS}")


def _load_model(rules: MatchingRules, rules_dir: Path | None) -> tuple[MatchModel, Path]:
    path = model_path(rules.entity_type, rules_dir)
    if not path.exists():
        raise ConfigError(
            f"{path}: no trained model for {rules.entity_type!r}; "
            f"run `mdm match train --entity {rules.entity_type}` first"
        )
    return MatchModel.load(path, rules), path


def _duckdb(threads: int | None, memory_limit: str | None) -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads or min(os.cpu_count() or 2, 4))}")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    return con


# ------------------------------------------------------------------ the run log


_run_locks: dict[int, Connection] = {}


def _start_run(engine: Engine, entity_type: str, kind: str, backend: str) -> int:
    """Log a new run. A run that a crash (``kill -9``, a power cut) left ``running``
    can never finish: the next run of the same entity type and kind marks it
    ``failed`` (interrupted), so the log never shows a dead run as running.

    On Postgres one run per (entity type, kind) at a time (a session advisory lock,
    released by :func:`_finish_run`; the server drops it with a dead client's
    session), so a ``running`` row found here is certainly dead. SQLite has no such
    lock: do not start two runs of one entity type at once.
    """
    lock = None
    if engine.dialect.name == "postgresql":
        key = int.from_bytes(
            hashlib.sha256(f"mdm-match:{kind}:{entity_type}".encode()).digest()[:8],
            "big",
            signed=True,
        )
        lock = engine.connect()
        if not lock.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            lock.close()
            raise Conflict(f"another match {kind} of {entity_type!r} is running; try again later")
        lock.commit()
    try:
        with engine.begin() as conn:
            conn.execute(
                update(runs)
                .where(
                    runs.c.entity_type == entity_type,
                    runs.c.kind == kind,
                    runs.c.status == "running",
                )
                .values(
                    status="failed",
                    finished_at=_now(),
                    error="interrupted (found unfinished when the next run started)",
                )
            )
            run_id = int(
                conn.execute(
                    insert(runs)
                    .values(
                        entity_type=entity_type,
                        kind=kind,
                        backend=backend,
                        status="running",
                        started_at=_now(),
                        counts={},
                    )
                    .returning(runs.c.id)
                ).scalar_one()
            )
    except BaseException:
        if lock is not None:
            lock.invalidate()  # closes the session, and its advisory lock with it
            lock.close()
        raise
    if lock is not None:
        _run_locks[run_id] = lock
    return run_id


def _finish_run(engine: Engine, run_id: int, status: str, **values: Any) -> None:
    try:
        with engine.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(status=status, finished_at=_now(), **values)
            )
    finally:
        lock = _run_locks.pop(run_id, None)
        if lock is not None:
            _release(lock)


def _release(lock: Connection) -> None:
    """Give the run lock back before returning: closing the session alone releases
    it only when the server gets round to ending that backend, and a run started
    right after (a script, a test under load) could still find it taken."""
    try:
        lock.exec_driver_sql("SELECT pg_advisory_unlock_all()")
        lock.commit()
    except Exception:  # a dead session holds no lock anyway
        log.warning("could not release the match run lock explicitly; closing its session")
    finally:
        lock.invalidate()  # never back into the pool with session state
        lock.close()


# ----------------------------------------------------------- reading the store


@dataclass(slots=True)
class _StoredRecord:
    record_id: int
    version: int
    source_system: str
    #: the payload as JSON text until :attr:`standardized` parses it (a record whose
    #: stored features are reused never needs it)
    payload: str | bytes | dict[str, Any]
    stored_hash: str | None
    stored_version: int | None = None
    stored_signature: str | None = None
    stored_features: str | None = None

    @property
    def standardized(self) -> dict[str, Any]:
        if not isinstance(self.payload, dict):
            self.payload = _loads(self.payload)
        return cast(dict[str, Any], self.payload)


_ActiveRow = tuple[int, int, str, Any, str | None, int | None, str | None, str | bytes | None]


def _iter_active(
    conn: Connection,
    entity_type: str,
    with_stored: bool,
    batch: int | None = None,
    *,
    signature: str | None = None,
) -> Iterator[list[_ActiveRow]]:
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
    payload: Any = cast_(srv.c.standardized, Text)
    if with_stored and signature is not None:
        current = and_(mf.c.record_version == sr.c.current_version, mf.c.signature == signature)
        payload = case((current, null()), else_=payload)
    cols = [sr.c.id, sr.c.current_version, systems.c.name, payload]
    joined = sr.join(
        srv, and_(srv.c.source_record_id == sr.c.id, srv.c.version == sr.c.current_version)
    ).join(systems, systems.c.id == sr.c.source_system_id)
    if with_stored:
        cols += [mf.c.content_hash, mf.c.record_version, mf.c.signature]
        cols.append(cast_(mf.c.features, Text))
        joined = joined.outerjoin(mf, mf.c.source_record_id == sr.c.id)
    stmt = (
        select(*cols)
        .select_from(joined)
        .where(sr.c.entity_type == entity_type, sr.c.status == "active")
        .order_by(sr.c.id)
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
) -> Iterator[list[_ActiveRow]]:
    """:func:`_iter_active` on Postgres: the statement on a psycopg server-side cursor
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


def _loads(text_: str | bytes) -> Any:
    try:
        return orjson.loads(text_)
    except orjson.JSONDecodeError:  # e.g. an integer past 64 bits: the slow, exact parser
        return json.loads(text_)


def _features_hash(features: FeatureRow, keys: list[str]) -> str:
    """Covers the feature row (its keys in ``FEATURE_COLUMNS`` order, always the same)
    and the blocking keys. Hashes written by an earlier encoding differ once: that
    run rewrites every feature row, later runs only what changed."""
    return hashlib.sha256(orjson.dumps([features, keys])).hexdigest()


def feature_signature(entity_type: str, rules: MatchingRules) -> str:
    """What a stored feature row was computed with: the feature code (and the text
    folding, syllable and identifier code it uses, the syllable data's and the unit
    data's versions), the blocking-key code and the rules' blocking columns.

    A row whose record version and signature are current is reused as stored (the
    pass spends most of its time computing features); any change to that code or
    to the blocking rules changes the signature and every row is recomputed once.
    """
    spec = orjson.dumps([entity_type, rules.blocking.prediction]).decode()
    found = _SIGNATURES.get(spec)
    if found is None:
        import inspect

        from mdm.matching import features as features_module
        from mdm.matching import incremental
        from mdm.standardize import ids as ids_module
        from mdm.standardize import syllables as syllables_module
        from mdm.standardize import text as text_module
        from mdm.standardize.units import dataset_version

        digest = hashlib.sha256(spec.encode())
        for part in (
            features_module,
            text_module,
            ids_module,  # the CMND regions and personal-ID provinces
            syllables_module,  # run-together name syllables split, split ones joined
            syllables_module.data_version(),  # the syllable inventory and name prior
            dataset_version(),  # which 2025 province a pre-2025 one became
            incremental.blocking_keys,
            incremental._render,
            incremental._key_rules,
            incremental.KEY_SEPARATOR,
        ):
            source = part if isinstance(part, str) else inspect.getsource(part)
            digest.update(source.encode())
        found = _SIGNATURES[spec] = digest.hexdigest()[:32]
    return found


_SIGNATURES: dict[str, str] = {}


@dataclass
class _FeaturePass:
    record_ids: list[int] = field(default_factory=list)
    written: int = 0
    reused: int = 0
    removed: int = 0
    seconds: float = 0.0


_Changed = list[tuple[_StoredRecord, FeatureRow, list[str], str]]


@dataclass(slots=True)
class _FeatureWrite:
    """What one batch of a feature pass writes to the candidate index."""

    #: records whose feature row and keys are (re)written
    ids: list[int]
    #: of those, the ones that had stored rows (only theirs need deleting first)
    replace: list[int]
    #: on Postgres: the COPY text of their ``match_features`` and ``blocking_keys``
    #: rows, built where the features were computed (in a worker process)
    copy: tuple[bytes, bytes] | None = None
    #: elsewhere: the rows themselves
    changed: _Changed | None = None


@dataclass(slots=True)
class _BatchResult:
    table: Any  # pyarrow.Table: the batch's feature rows, in record order
    reused: int
    write: _FeatureWrite | None


@dataclass(frozen=True, slots=True)
class _PassSpec:
    """What a feature pass's batches are computed with (sent once to each worker)."""

    entity_type: str
    rules: MatchingRules
    signature: str
    persist: bool
    copy: bool  # write COPY text (Postgres) rather than rows


def _feature_batch(spec: _PassSpec, part: list[_ActiveRow]) -> _BatchResult:
    """One batch of a feature pass, pure (no database): each record's stored feature
    row is reused when its version and :func:`feature_signature` are current, the
    others are computed, and those whose features or keys changed are written."""
    entity_type, rules, signature = spec.entity_type, spec.rules, spec.signature
    rows: list[FeatureRow] = []
    changed: _Changed = []
    reused = 0
    for rid, version, system, payload, stored_hash, stored_version, stored_sig, stored in part:
        if stored is not None and stored_sig == signature and stored_version == version:
            rows.append(_loads(stored))
            reused += 1
            continue
        rec = _StoredRecord(rid, version, system, payload, stored_hash, stored_version, stored_sig)
        feats = build_features(entity_type, str(rid), system, rec.standardized)
        rows.append(feats)
        if spec.persist:
            keys = blocking_keys(feats, rules)
            digest = _features_hash(feats, keys)
            if digest != stored_hash or stored_sig != signature:
                changed.append((rec, feats, keys, digest))
    write = _prepare_write(entity_type, signature, spec.copy, changed) if changed else None
    return _BatchResult(rows_to_arrow(entity_type, rows), reused, write)


def _prepare_write(
    entity_type: str, signature: str | None, copy: bool, changed: _Changed
) -> _FeatureWrite:
    out = _FeatureWrite(
        [rec.record_id for rec, *_ in changed],
        [rec.record_id for rec, *_ in changed if rec.stored_hash is not None],
    )
    if not copy:
        out.changed = changed
        return out
    # the text built directly (psycopg's per-row ``write_row`` cost more than
    # Postgres's own work)
    et = copy_text(entity_type)
    sig = "\\N" if signature is None else copy_text(signature)
    features = "".join(
        f"{rec.record_id}\t{et}\t{rec.version}\t{digest}\t{sig}\t"
        f"{copy_text(orjson.dumps(feats).decode())}\n"
        for rec, feats, _keys, digest in changed
    )
    keys = "".join(
        f"{et}\t{h}\t{rec.record_id}\n"
        for rec, _feats, record_keys, _digest in changed
        for h in blocking_key_hashes(entity_type, record_keys)
    )
    # as bytes: they cross from a worker process without a decode and re-encode
    out.copy = (features.encode(), keys.encode())
    return out


# ----------------------------------------------------- feature worker processes

# A first pass computes every record's features: past this many active records the
# batches go to worker processes (the pass is pure Python and held one core; the
# database's share is small once the keys are bulk-loaded, see _begin_bulk_keys)
_PARALLEL_AFTER = 50_000
_worker_spec: _PassSpec | None = None


def _init_feature_worker(spec: _PassSpec) -> None:
    global _worker_spec
    import gc

    _worker_spec = spec
    gc.freeze()  # what the worker holds from now on is never garbage


def _worker_batch(part: list[_ActiveRow]) -> _BatchResult:
    assert _worker_spec is not None
    with gc_paused():
        return _feature_batch(_worker_spec, part)


def _batches_in_workers(
    spec: _PassSpec, parts: Iterator[list[_ActiveRow]], workers: int
) -> Iterator[tuple[list[_ActiveRow], _BatchResult]]:
    """``(batch, result)`` in batch order, computed by ``workers`` processes."""
    with OrderedProcessPool(workers, _init_feature_worker, (spec,)) as pool:
        for part in parts:
            yield from pool.submit(_worker_batch, part, tag=part)
        yield from pool.finish()


def _write_features(
    engine: Engine,
    entity_type: str,
    rules: MatchingRules,
    parquet_path: Path,
    *,
    persist: bool,
    workers: int | None = None,
) -> _FeaturePass:
    """Stream the active records into a parquet file of feature rows; with
    ``persist``, also bring ``match_features`` / ``blocking_keys`` up to date,
    writing only records whose features or keys changed (one transaction a batch),
    and reuse the stored row of a record whose version and
    :func:`feature_signature` are current instead of computing it again.

    On Postgres, batches of a large pass are computed by worker processes
    (``workers``, default :func:`~mdm.services.bulk.bulk_workers`) while this
    process reads the next batches and a background thread writes the results;
    smaller passes and SQLite compute in this process."""
    import pyarrow.parquet as pq

    started = time.perf_counter()
    out = _FeaturePass()
    postgres = engine.dialect.name == "postgresql"
    spec = _PassSpec(entity_type, rules, feature_signature(entity_type, rules), persist, postgres)
    writer = pq.ParquetWriter(str(parquet_path), arrow_schema(entity_type))
    # On Postgres one thread writes batch N while the next ones are computed; at most
    # one batch waits for it. SQLite has one writer: written in line.
    store = _BackgroundStore(engine, entity_type, spec.signature) if postgres else None
    # how many records the pass reads decides its bulk paths (Postgres only)
    active = 0
    if postgres:
        with engine.connect() as conn:
            active = _active_count(conn, entity_type)
    bulk_keys = persist and postgres and _begin_bulk_keys(engine, active)
    if workers is None:
        workers = bulk_workers() if postgres else 1
    try:
        with gc_paused(), engine.connect() as conn:
            parts = _iter_active(conn, entity_type, persist, signature=spec.signature)
            if workers > 1 and active >= _PARALLEL_AFTER:
                results = _batches_in_workers(spec, parts, workers)
            else:
                results = ((part, _feature_batch(spec, part)) for part in parts)
            for part, result in results:
                out.record_ids.extend(r[0] for r in part)
                out.reused += result.reused
                writer.write_table(result.table)
                if result.write is not None:
                    if store is not None:
                        store.submit(result.write)
                    else:
                        _store_write(engine, entity_type, result.write, spec.signature)
                    out.written += len(result.write.ids)
        if store is not None:
            store.drain()
    finally:
        if store is not None:
            store.close()
        writer.close()
        if bulk_keys:
            # also after an error: the candidate index is whole again (or, if even
            # this fails, the next pass's _begin_bulk_keys rebuilds it)
            _restore_key_indexes(engine)
    if persist:
        out.removed = _drop_inactive_features(engine, entity_type)
        if postgres and out.written >= _ANALYZE_AFTER:
            # the API's candidate query plans with these statistics: after a first
            # run they would still say "empty" until autovacuum comes round
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE match_features, blocking_keys")
    out.seconds = time.perf_counter() - started
    return out


_ANALYZE_AFTER = 10_000  # rows written by one pass


def _active_count(conn: Connection, entity_type: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(sr)
            .where(sr.c.entity_type == entity_type, sr.c.status == "active")
        ).scalar_one()
    )


class _BackgroundStore:
    """:func:`_store_write` on one background thread, one batch in flight."""

    def __init__(self, engine: Engine, entity_type: str, signature: str) -> None:
        self._engine = engine
        self._entity_type = entity_type
        self._signature = signature
        self._writer = BackgroundWriter("mdm-features")

    def submit(self, write: _FeatureWrite) -> None:
        self._writer.submit(_store_write, self._engine, self._entity_type, write, self._signature)

    def drain(self) -> None:
        self._writer.drain()

    def close(self) -> None:
        # after an error elsewhere: let the batch in flight finish (its transaction
        # commits or rolls back whole), never leave a thread writing behind us
        self._writer.close()


def _store_features(engine: Engine, entity_type: str, changed: _Changed, signature: str) -> None:
    """Write the feature rows and keys of ``changed`` (one transaction)."""
    copy = engine.dialect.name == "postgresql"
    _store_write(
        engine, entity_type, _prepare_write(entity_type, signature, copy, changed), signature
    )


def _store_write(
    engine: Engine, entity_type: str, write: _FeatureWrite, signature: str | None
) -> None:
    # only records that had features need their old rows removed: on a first run
    # (or for new records) there is nothing to delete, and a DELETE ... IN on a
    # table whose statistics still say "empty" is a sequential scan per batch
    with engine.begin() as conn:
        if write.copy is None:
            # (SQLite's planner uses the index whatever its statistics say)
            assert write.changed is not None
            _delete_features(conn, write.ids)
            _insert_features(conn, entity_type, write.changed, signature)
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


def _delete_features(conn: Connection, ids: list[int]) -> None:
    for part in _chunks(ids):
        conn.execute(delete(bk).where(bk.c.source_record_id.in_(part)))
        conn.execute(delete(mf).where(mf.c.source_record_id.in_(part)))


def _insert_features(
    conn: Connection, entity_type: str, changed: _Changed, signature: str | None
) -> None:
    feature_rows = [
        {
            "source_record_id": rec.record_id,
            "entity_type": entity_type,
            "record_version": rec.version,
            "content_hash": digest,
            "signature": signature,
            "features": feats,
        }
        for rec, feats, _keys, digest in changed
    ]
    key_rows = [
        {"entity_type": entity_type, "key_hash": h, "source_record_id": rec.record_id}
        for rec, _feats, keys, _digest in changed
        for h in blocking_key_hashes(entity_type, keys)
    ]
    bulk_insert(conn, mf, feature_rows)
    bulk_insert(conn, bk, key_rows)


def _copy_features(conn: Connection, text_: tuple[bytes, bytes]) -> None:
    """Both tables by COPY of the text :func:`_prepare_write` built."""
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


# A first load into an empty candidate index: the blocking keys go in without its
# indexes, which are built afterwards (below this many active records, not worth it)
_BULK_KEYS_AFTER = 50_000


def _key_index_ddl() -> list[tuple[str, Any]]:
    """(name, DDL) of ``blocking_keys``' primary key and indexes, from the model."""
    table = cast(Table, BlockingKey.__table__)
    out: list[tuple[str, Any]] = [(str(table.primary_key.name), AddConstraint(table.primary_key))]
    out.extend((str(ix.name), CreateIndex(ix)) for ix in sorted(table.indexes, key=str))
    return out


def _missing_key_indexes(conn: Connection) -> list[tuple[str, Any]]:
    return [
        (name, ddl)
        for name, ddl in _key_index_ddl()
        if conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is None
    ]


def _begin_bulk_keys(engine: Engine, active: int) -> bool:
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
    Returns whether the indexes were dropped (:func:`_restore_key_indexes` then
    rebuilds them)."""
    with engine.begin() as conn:
        if _missing_key_indexes(conn):
            _build_key_indexes(conn)
        if active < _BULK_KEYS_AFTER:
            return False
        # the lock makes the emptiness test and the drop one step for writers
        conn.exec_driver_sql("LOCK TABLE blocking_keys IN SHARE ROW EXCLUSIVE MODE")
        if conn.execute(select(bk.c.key_hash).limit(1)).first() is not None:
            return False
        table = cast(Table, BlockingKey.__table__)
        for ix in table.indexes:
            conn.execute(DropIndex(ix))
        conn.execute(DropConstraint(table.primary_key))
    log.info("blocking keys: first load of %d records, indexes built after the pass", active)
    return True


def _restore_key_indexes(engine: Engine) -> None:
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


def _drop_inactive_features(engine: Engine, entity_type: str) -> int:
    """Records withdrawn (or retyped) since the last run leave the candidate index."""
    gone = (
        select(sr.c.id)
        .where(sr.c.id == mf.c.source_record_id)
        .where(or_(sr.c.status != "active", sr.c.entity_type != entity_type))
        .exists()
    )
    with engine.begin() as conn:
        ids = [
            int(i)
            for i in conn.execute(
                select(mf.c.source_record_id).where(mf.c.entity_type == entity_type, gone)
            ).scalars()
        ]
        for part in _chunks(ids):
            conn.execute(delete(bk).where(bk.c.source_record_id.in_(part)))
            conn.execute(delete(mf).where(mf.c.source_record_id.in_(part)))
    return len(ids)


# ------------------------------------------------------------------- training


def train_from_store(
    engine: Engine,
    entity_type: str,
    *,
    rules_dir: Path | None = None,
    rules: MatchingRules | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    save: bool = True,
) -> TrainingReport:
    """Train on the active records of ``entity_type`` and save the model.

    The feature pass also brings the stored candidate index up to date (as a batch
    run does), so the run that follows reuses those feature rows.

    The model is written to ``<rules dir>/models/<entity>.json`` only after
    training succeeded, atomically (a reader never sees half a file).
    """
    rules = rules or load_rules(entity_type, rules_dir)
    run_id = _start_run(engine, entity_type, "train", "duckdb")
    try:
        with tempfile.TemporaryDirectory(prefix="mdm-train-") as tmp:
            parquet = Path(tmp) / "features.parquet"
            feature_pass = _write_features(engine, entity_type, rules, parquet, persist=True)
            if not feature_pass.record_ids:
                raise BadRequest(f"no active {entity_type} records to train on; ingest first")
            con = _duckdb(threads, memory_limit)
            try:
                trained = train(rules, str(parquet), con=con)
            finally:
                con.close()
        report = trained.report
        report.step_seconds = {"read_features": feature_pass.seconds, **report.step_seconds}
        digest = None
        if save:
            target = model_path(entity_type, rules_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp_target = target.with_suffix(".json.tmp")
            trained.save_model(tmp_target)
            tmp_target.replace(target)
            digest = _file_sha256(target)
        _finish_run(
            engine,
            run_id,
            "completed",
            model_hash=digest,
            counts={
                "records": report.records,
                "pairs_per_prediction_rule": report.pairs_per_prediction_rule,
                "pairs_per_training_rule": report.pairs_per_training_rule,
                "probability_two_random_records_match": (
                    report.probability_two_random_records_match
                ),
                "warnings": report.warnings,
            },
        )
        return report
    except BaseException as exc:
        _finish_run(engine, run_id, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise


# ------------------------------------------------------------------ batch run


@dataclass
class BatchSummary:
    entity_type: str
    run_id: int
    records: int = 0
    features_written: int = 0
    features_removed: int = 0
    features_reused: int = 0
    scored_pairs: int = 0
    clusters: int = 0
    records_in_clusters: int = 0
    links_by_method: dict[str, int] = field(default_factory=dict)
    refused_links: int = 0
    tf_changed: bool = False
    candidates: dict[str, int] = field(default_factory=dict)
    records_in_review: int = 0
    identity: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    step_seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _steward_pairs(conn: Connection, entity_type: str) -> tuple[list[tuple[int, int]], ...]:
    """Active must-link and cannot-link pairs whose two records are both active."""
    left = sr.alias("l")
    right = sr.alias("r")
    stmt = (
        select(decisions.c.kind, decisions.c.left_record_id, decisions.c.right_record_id)
        .join(left, left.c.id == decisions.c.left_record_id)
        .join(right, right.c.id == decisions.c.right_record_id)
        .where(
            decisions.c.active == true(),
            left.c.entity_type == entity_type,
            right.c.entity_type == entity_type,
            left.c.status == "active",
            right.c.status == "active",
        )
    )
    must: list[tuple[int, int]] = []
    cannot: list[tuple[int, int]] = []
    for kind, a, b in conn.execute(stmt):
        (must if kind == "must_link" else cannot).append((int(a), int(b)))
    return must, cannot


def _persist_tf(engine: Engine, entity_type: str, table: Any) -> tuple[bool, str]:
    """Replace the stored term frequencies when they changed; returns (changed, hash).

    About a million values at a million records (phones and IDs are nearly unique):
    the table is read by column, not as a dict per row; the first store of a type's
    frequencies on Postgres has nothing to compare with and is copied as DuckDB
    renders it (:func:`_copy_first_tf`)."""
    digest = _tf_digest(table)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # the lock makes "none stored yet" and the copy one step for writers
            conn.exec_driver_sql("LOCK TABLE term_frequencies IN SHARE ROW EXCLUSIVE MODE")
            first = select(tft.c.value).where(tft.c.entity_type == entity_type).limit(1)
            if conn.execute(first).first() is None:
                _copy_first_tf(conn, entity_type, table)
                return table.num_rows > 0, digest
        new: dict[tuple[str, str], float] = {}
        for batch in table.to_batches(max_chunksize=65_536):
            columns, values, tfs = (batch.column(i).to_pylist() for i in range(3))
            for c, v, tf in zip(columns, values, tfs, strict=True):
                new[str(c), str(v)] = float(tf)
        stored = {
            (c, v): float(tf)
            for c, v, tf in conn.execute(
                select(tft.c.column_name, tft.c.value, tft.c.tf).where(
                    tft.c.entity_type == entity_type
                )
            )
        }
        if stored == new:
            return False, digest
        conn.execute(delete(tft).where(tft.c.entity_type == entity_type))
        bulk_insert(
            conn,
            tft,
            [
                {"entity_type": entity_type, "column_name": c, "value": v, "tf": tf}
                for (c, v), tf in new.items()
            ],
        )
    return True, digest


def _copy_first_tf(conn: Connection, entity_type: str, table: Any) -> None:
    """COPY ``table`` into ``term_frequencies`` as text DuckDB renders, in the primary
    key's order (a million Python row dicts, their rendering and random insertions
    into the key's B-tree cost seconds at a million records). Values are escaped for
    COPY (backslash, tab, newline, carriage return); DuckDB writes a double as the
    shortest text that reads back as the same double."""
    import duckdb

    def esc(col: str) -> str:
        return (
            f"replace(replace(replace(replace({col}, '\\', '\\\\'), chr(9), '\\t'), "
            f"chr(10), '\\n'), chr(13), '\\r')"
        )

    con = duckdb.connect()
    try:
        con.register("tf", table)
        et = copy_text(entity_type).replace("'", "''")
        lines = con.sql(
            f"SELECT '{et}' || chr(9) || {esc('column_name')} || chr(9) || {esc('value')} "
            "|| chr(9) || CAST(tf AS VARCHAR) FROM tf ORDER BY column_name, value"
        ).to_arrow_reader(65_536)
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        sql = "COPY term_frequencies (entity_type, column_name, value, tf) FROM STDIN"
        with dbapi.cursor() as cur, cur.copy(sql) as copy:
            for batch in lines:
                text = "\n".join(batch.column(0).to_pylist())
                if text:
                    copy.write(text + "\n")
    finally:
        con.close()


def _tf_digest(table: Any) -> str:
    """SHA-256 of the term frequencies as sorted ``column U+001F value U+001F tf``
    lines: the run's ``tf_hash``, which tells an API process its loaded frequencies
    are stale. Computed in DuckDB (sorting and formatting a million values in Python
    took seconds); the rows' order in ``table`` does not matter."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("tf", table)
        row = con.execute(
            "SELECT sha256(coalesce(string_agg(column_name || chr(31) || value || chr(31) "
            "|| CAST(tf AS VARCHAR), chr(10) ORDER BY column_name, value), '')) FROM tf"
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return str(row[0])


def _score_missing(
    con: Any, model: MatchModel, tf: Mapping[str, Mapping[Any, float]], pairs: list[Candidate]
) -> dict[tuple[str, str], Candidate]:
    """Rule pairs the model did not put in the review band still need their weights
    (every queued pair explains itself): score them with the same model."""
    if not pairs:
        return {}
    import pyarrow as pa

    ids = sorted({x for c in pairs for x in (c.left, c.right)})
    con.register("__mdm_need", pa.table({"unique_id": pa.array(ids, pa.string())}))
    try:
        rows = con.sql(
            "SELECT f.* FROM mdm_features f JOIN __mdm_need USING (unique_id)"
        ).to_arrow_table()
    finally:
        con.unregister("__mdm_need")
    by_id = {str(r["unique_id"]): r for r in rows.to_pylist()}
    scorer = IncrementalScorer(model, tf)
    out: dict[tuple[str, str], Candidate] = {}
    for c in pairs:
        s = scorer.score(by_id[c.left], by_id[c.right])
        out[(c.left, c.right)] = Candidate(
            c.left, c.right, s.match_weight, s.match_probability, s.weights, c.method, c.forbidden
        )
    return out


@dataclass(frozen=True, slots=True)
class _QueuedPair:
    left: int
    right: int
    score: float
    match_weight: float
    weights: dict[str, float]
    reason: str


def _candidate_reason(c: Candidate) -> str:
    parts = [c.method]
    if c.forbidden:
        parts.append(f"automatic link forbidden ({c.forbidden})")
    return "; ".join(parts)


def _persist_candidates(
    engine: Engine, entity_type: str, queued: dict[tuple[int, int], _QueuedPair]
) -> dict[str, int]:
    """Upsert the review band. Decided candidates are never touched (a steward's
    work stands); pending ones no longer in the band become ``superseded``."""
    counts: Counter[str] = Counter()
    now = _now()
    with engine.begin() as conn:
        existing = {
            (int(r.left_record_id), int(r.right_record_id)): r
            for r in conn.execute(
                select(
                    cands.c.id,
                    cands.c.left_record_id,
                    cands.c.right_record_id,
                    cands.c.status,
                    cands.c.score,
                    cands.c.match_weight,
                    cands.c.weights,
                    cands.c.reason,
                ).where(cands.c.entity_type == entity_type)
            )
        }
        new_rows: list[dict[str, Any]] = []
        for key, q in queued.items():
            old = existing.get(key)
            if old is None:
                new_rows.append(
                    {
                        "entity_type": entity_type,
                        "left_record_id": q.left,
                        "right_record_id": q.right,
                        "score": q.score,
                        "match_weight": q.match_weight,
                        "weights": q.weights,
                        "reason": q.reason,
                        "status": "pending",
                        "created_at": now,
                    }
                )
                counts["new"] += 1
                continue
            if old.status in ("accepted", "rejected", "skipped"):
                counts["kept_decided"] += 1
                continue
            same = (
                old.status == "pending"
                and math.isclose(old.score, q.score, rel_tol=0, abs_tol=1e-12)
                and math.isclose(old.match_weight, q.match_weight, rel_tol=0, abs_tol=1e-9)
                and old.reason == q.reason
                and _weights_equal(old.weights, q.weights)
            )
            if same:
                counts["unchanged"] += 1
                continue
            conn.execute(
                update(cands)
                .where(cands.c.id == old.id)
                .values(
                    status="pending",
                    score=q.score,
                    match_weight=q.match_weight,
                    weights=q.weights,
                    reason=q.reason,
                )
            )
            counts["reopened" if old.status == "superseded" else "updated"] += 1
        if new_rows:
            for part in _chunks(new_rows, WRITE_BATCH):
                conn.execute(insert(cands), list(part))
        stale = [
            int(old.id)
            for key, old in existing.items()
            if old.status == "pending" and key not in queued
        ]
        for part in _chunks(stale):
            conn.execute(update(cands).where(cands.c.id.in_(part)).values(status="superseded"))
        counts["superseded"] = len(stale)
    counts["pending"] = len(queued) - counts["kept_decided"]
    return dict(counts)


def _weights_equal(a: Any, b: Mapping[str, float]) -> bool:
    if not isinstance(a, dict) or set(a) != set(b):
        return False
    return all(math.isclose(float(a[k]), b[k], rel_tol=0, abs_tol=1e-9) for k in b)


PartitionFn = Callable[..., Any]


def _apply_partition_fn() -> PartitionFn:
    import importlib

    identity = importlib.import_module("mdm.services.identity")
    return cast(PartitionFn, identity.apply_partition)


def run_batch(
    engine: Engine,
    entity_type: str,
    backend: str = "duckdb",
    *,
    rules_dir: Path | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    apply_partition: PartitionFn | None = None,
    spark: SparkOptions | None = None,
    spark_session: Any = None,
) -> BatchSummary:
    """Deduplicate every active record of ``entity_type``; see the module docstring.

    ``backend="spark"``: blocked pairs are generated and scored by Splink on Spark
    (``spark_session``, else one started from ``spark`` and stopped at the end);
    everything else, and what is written, is the DuckDB backend's.
    """
    _check_backend(backend)
    started = time.perf_counter()
    model, path = _load_model(load_rules(entity_type, rules_dir), rules_dir)
    rules = model.rules  # with the thresholds training derived, if the rules ask for it
    spark_options = spark or SparkOptions()
    owned_session = None
    if backend == "spark":
        check_staging(spark_options)
        if spark_session is None:
            spark_session = owned_session = start_session(spark_options)
    apply = apply_partition or _apply_partition_fn()
    run_id = _start_run(engine, entity_type, "run", backend)
    summary = BatchSummary(entity_type, run_id)
    steps = summary.step_seconds
    try:
        with tempfile.TemporaryDirectory(prefix="mdm-match-") as tmp:
            parquet = Path(tmp) / "features.parquet"
            fp = _write_features(engine, entity_type, rules, parquet, persist=True)
            steps["features"] = fp.seconds
            summary.records = len(fp.record_ids)
            summary.features_written = fp.written
            summary.features_removed = fp.removed
            summary.features_reused = fp.reused
            with engine.connect() as conn:
                must, cannot = _steward_pairs(conn, entity_type)
            con = _duckdb(threads, memory_limit)
            try:
                t0 = time.perf_counter()
                load_features(con, entity_type, str(parquet))
                steps["load"] = time.perf_counter() - t0
                result = predict_and_cluster(
                    rules,
                    model,
                    None,
                    con=con,
                    must_link=[(str(a), str(b)) for a, b in must],
                    cannot_link=[(str(a), str(b)) for a, b in cannot],
                    backend="spark" if backend == "spark" else "duckdb",
                    spark=spark_session,
                    spark_staging=spark_options.staging_dir,
                )
                steps.update({f"batch:{k}": v for k, v in result.stats["step_seconds"].items()})
                queued = _review_band(con, model, result, must, cannot)
            finally:
                con.close()
                if owned_session is not None:
                    owned_session.stop()  # no JVM outlives the scoring
                    owned_session = None

        t0 = time.perf_counter()
        summary.tf_changed, tf_hash = _persist_tf(engine, entity_type, result.tf_table)
        steps["tf"] = time.perf_counter() - t0

        summary.scored_pairs = int(result.stats["scored_pairs"])
        summary.clusters = len(result.clusters)
        summary.records_in_clusters = sum(len(c) for c in result.clusters)
        summary.refused_links = len(result.stats["refused"])

        t0 = time.perf_counter()
        summary.candidates = _persist_candidates(engine, entity_type, queued)
        summary.records_in_review = len({x for key in queued for x in key})
        steps["candidates"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        groups, methods = _partition(fp.record_ids, result, must)
        summary.links_by_method = dict(Counter(m for m, _score in methods.values()))
        conflicts = [
            (int(c.left), int(c.right)) for c in result.candidates if c.method == "rule_conflict"
        ]
        with Session(engine, expire_on_commit=False) as session, session.begin():
            outcome = apply(
                session,
                entity_type,
                groups,
                methods=methods,
                actor=ACTOR,
                cannot_link=[*cannot, *conflicts],
                # the default identity step reads beside its writes (its transaction
                # holds no entity writes before it); a substitute gets the plain call
                **({"reader": engine} if apply_partition is None else {}),
            )
        summary.identity = outcome.as_dict() if hasattr(outcome, "as_dict") else {}
        steps["identity"] = time.perf_counter() - t0
        summary.seconds = time.perf_counter() - started
        _finish_run(
            engine,
            run_id,
            "completed",
            model_hash=_file_sha256(path),
            tf_hash=tf_hash,
            counts=_json_safe(summary.as_dict()),
        )
        return summary
    except BaseException as exc:
        _finish_run(engine, run_id, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    finally:
        if owned_session is not None:
            owned_session.stop()


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _review_band(
    con: Any,
    model: MatchModel,
    result: BatchResult,
    must: list[tuple[int, int]],
    cannot: list[tuple[int, int]],
) -> dict[tuple[int, int], _QueuedPair]:
    """Candidates for stewards: not already decided by a steward, not already in
    one entity, each with its per-comparison weights."""
    where = (result.clusters and {m: i for i, c in enumerate(result.clusters) for m in c}) or {}
    decided = {(min(a, b), max(a, b)) for a, b in (*must, *cannot)}
    keep: list[Candidate] = []
    for c in result.candidates:
        a, b = int(c.left), int(c.right)
        key = (min(a, b), max(a, b))
        if key in decided:
            continue
        if c.left in where and where.get(c.left) == where.get(c.right):
            continue
        keep.append(c)
    missing = [c for c in keep if c.match_weight is None]
    scored = _score_missing(con, model, tf_lookup_from_arrow(result.tf_table), missing)
    out: dict[tuple[int, int], _QueuedPair] = {}
    for c in keep:
        full = scored.get((c.left, c.right), c)
        assert full.match_weight is not None and full.match_probability is not None
        a, b = int(c.left), int(c.right)
        key = (min(a, b), max(a, b))
        out[key] = _QueuedPair(
            key[0],
            key[1],
            full.match_probability,
            full.match_weight,
            dict(full.weights),
            _candidate_reason(c),
        )
    return out


def _partition(
    record_ids: list[int], result: BatchResult, must: list[tuple[int, int]]
) -> tuple[list[list[int]], dict[int, tuple[str, float | None]]]:
    """Clusters plus singletons (every active record once), and per record the
    strongest accepted edge that put it in its cluster.

    Steward must-links always hold (DESIGN.md invariant 4): the clustering refuses
    a must-link that an exclusive key forbids (two personal IDs), but a steward has
    the last word, so groups joined by a must-link are united here.
    """
    best: dict[int, tuple[int, float]] = {}
    method_of: dict[int, tuple[str, float | None]] = {}
    for edge in result.edges:
        prob = weight_to_prob(edge.score) if math.isfinite(edge.score) else 1.0
        rank = (_METHOD_RANK.get(edge.method, 0), prob)
        for node in (int(edge.left), int(edge.right)):
            if node not in best or rank > best[node]:
                best[node] = rank
                method_of[node] = (edge.method, prob)
    active = set(record_ids)
    for a, b in must:
        if a in active and b in active:
            method_of[a] = method_of[b] = ("steward", 1.0)
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for c in result.clusters:
        first, *rest = (int(m) for m in c)
        for m in rest:
            union(first, m)
    for a, b in must:
        if a in active and b in active:
            union(a, b)
    members: dict[int, list[int]] = {}
    for r in record_ids:
        members.setdefault(find(r), []).append(r)
    groups = [sorted(g) for g in members.values()]
    methods: dict[int, tuple[str, float | None]] = {
        r: method_of.get(r, ("new", None)) for r in record_ids
    }
    return groups, methods


# ------------------------------------------------------------- one record (API)


@dataclass(frozen=True, slots=True)
class CandidateExplanation:
    source_record_id: int
    entity_id: int | None
    canonical_id: str | None
    match_weight: float | None
    match_probability: float | None
    #: per comparison: level weight + term-frequency adjustment
    weights: dict[str, float]
    decision: str  # auto_link | review | none
    method: str
    forbidden: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class MatchDecision:
    """What :func:`match_one` decided. ``linked``: ``canonical_id`` is the entity the
    record belongs to; ``review``: a steward must decide among ``candidates``;
    ``created``: nothing matches, the record starts a new entity."""

    outcome: Literal["linked", "review", "created"]
    canonical_id: str | None = None
    entity_id: int | None = None
    method: str | None = None
    score: float | None = None
    match_weight: float | None = None
    candidates: tuple[CandidateExplanation, ...] = ()
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SqlCandidateSource:
    """:class:`mdm.matching.CandidateSource` over ``blocking_keys``: one indexed
    query returns the feature rows of every active record sharing a key."""

    def __init__(self, session: Session, entity_type: str) -> None:
        self.session = session
        self.entity_type = entity_type

    def candidates(self, keys: Sequence[str]) -> Iterable[Mapping[str, FeatureValue]]:
        if not keys:
            return []
        ids = (
            select(bk.c.source_record_id)
            .where(bk.c.key_hash.in_(blocking_key_hashes(self.entity_type, keys)))
            .distinct()
        )
        rows = self.session.execute(
            select(mf.c.features).where(
                mf.c.source_record_id.in_(ids), mf.c.entity_type == self.entity_type
            )
        ).scalars()
        return [_decode(r) for r in rows]


def _decode(value: Any) -> dict[str, FeatureValue]:
    return cast(dict[str, FeatureValue], value if isinstance(value, dict) else json.loads(value))


@dataclass(frozen=True)
class _Loaded:
    key: tuple[Any, ...]
    model: MatchModel
    tf: Mapping[str, Mapping[Any, float]]


_cache: dict[tuple[str, str], _Loaded] = {}
_cache_lock = threading.Lock()


_LATEST_TF_HASH = (
    select(runs.c.tf_hash)
    .where(
        runs.c.entity_type == bindparam("entity_type"),
        runs.c.kind == "run",
        runs.c.status == "completed",
    )
    .order_by(runs.c.id.desc())
    .limit(1)
)


def _latest_tf_hash(db: Session | Connection, entity_type: str) -> str | None:
    """The term frequencies' hash of the last completed batch run. On a bare
    connection (the API's search) one prebuilt statement on the driver, in
    autocommit when no transaction is open: the check runs on every search, and
    through the ORM it cost a transaction (BEGIN, the query, ROLLBACK)."""
    params = {"entity_type": entity_type}
    if isinstance(db, Connection):
        row = lookup.first_row(db, _LATEST_TF_HASH, params)
        return row[0] if row is not None else None
    return db.execute(_LATEST_TF_HASH, params).scalar()


def _stat_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def loaded_model(
    session: Session | Connection, entity_type: str, rules_dir: Path | None = None
) -> tuple[MatchModel, Mapping[str, Mapping[Any, float]]]:
    """The model and term frequencies, cached per process.

    Reloaded when the model file, the rules file or the stored term frequencies
    (the hash the last completed batch run recorded) change; checking costs two
    ``stat`` calls and one indexed query.
    """
    directory = rules_dir or default_rules_dir()
    path = model_path(entity_type, directory)
    rules_file = directory / f"{entity_type}.yaml"
    if not path.exists():
        raise ConfigError(
            f"{path}: no trained model for {entity_type!r}; "
            f"run `mdm match train --entity {entity_type}` first"
        )
    key = (_stat_key(path), _stat_key(rules_file), _latest_tf_hash(session, entity_type))
    slot = (entity_type, str(directory))
    hit = _cache.get(slot)
    if hit is not None and hit.key == key:
        return hit.model, hit.tf
    with _cache_lock:
        rules = load_rules(entity_type, directory)
        model = MatchModel.load(path, rules)
        tf: dict[str, dict[Any, float]] = {}
        for column, value, freq in session.execute(
            select(tft.c.column_name, tft.c.value, tft.c.tf).where(tft.c.entity_type == entity_type)
        ):
            tf.setdefault(column, {})[value] = float(freq)
        _cache[slot] = _Loaded(key, model, tf)
    return model, tf


def clear_cache() -> None:
    _cache.clear()


def _entities_of(session: Session, record_ids: Iterable[int]) -> dict[int, tuple[int, str]]:
    ids = sorted(set(record_ids))
    out: dict[int, tuple[int, str]] = {}
    for part in _chunks(ids):
        stmt = (
            select(links.c.source_record_id, entities.c.id, entities.c.canonical_id)
            .join(entities, entities.c.id == links.c.entity_id)
            .where(links.c.active == true(), links.c.source_record_id.in_(part))
        )
        for rid, eid, cid in session.execute(stmt):
            out[int(rid)] = (int(eid), str(cid))
    return out


def _entity_members(
    session: Session, entity_ids: Iterable[int]
) -> dict[int, list[dict[str, FeatureValue]]]:
    ids = sorted(set(entity_ids))
    out: dict[int, list[dict[str, FeatureValue]]] = {}
    for part in _chunks(ids):
        stmt = (
            select(links.c.entity_id, mf.c.features)
            .join(mf, mf.c.source_record_id == links.c.source_record_id)
            .where(links.c.active == true(), links.c.entity_id.in_(part))
        )
        for eid, feats in session.execute(stmt):
            out.setdefault(int(eid), []).append(_decode(feats))
    return out


def _steward_partners(session: Session, record_id: int) -> tuple[set[int], set[int]]:
    stmt = select(decisions.c.kind, decisions.c.left_record_id, decisions.c.right_record_id).where(
        decisions.c.active == true(),
        or_(decisions.c.left_record_id == record_id, decisions.c.right_record_id == record_id),
    )
    must: set[int] = set()
    cannot: set[int] = set()
    for kind, a, b in session.execute(stmt):
        other = int(b) if int(a) == record_id else int(a)
        (must if kind == "must_link" else cannot).add(other)
    return must, cannot


def match_one(
    session: Session,
    entity_type: str,
    standardized: Mapping[str, Any],
    *,
    source_record_id: int | None = None,
    source_system: str = "api",
    rules_dir: Path | None = None,
) -> MatchDecision:
    """Decide where one standardized record belongs, reading only (no writes).

    An automatic link needs a candidate at auto-link strength (rule or model)
    whose whole target entity accepts the record: no exclusive-key clash (another
    personal ID) and no same-key conflict with any of its records, and no
    steward cannot-link between the record and any of them. Candidates in two
    different entities at auto-link strength would join them: that goes to review.
    A steward must-link to a linked record wins over everything.
    """
    model, tf = loaded_model(session, entity_type, rules_dir)
    rules = model.rules
    uid = str(source_record_id) if source_record_id is not None else "__new__"
    record = build_features(entity_type, uid, source_system, standardized)
    matcher = IncrementalMatcher(model, tf, SqlCandidateSource(session, entity_type))
    scored = matcher.match(record)
    must, cannot = (
        _steward_partners(session, source_record_id)
        if source_record_id is not None
        else (set(), set())
    )
    cand_ids = [int(c.unique_id) for c in scored]
    owners = _entities_of(session, [*cand_ids, *must, *cannot])
    for partner in sorted(must):
        if partner in owners:
            return MatchDecision(
                "linked",
                owners[partner][1],
                owners[partner][0],
                "steward",
                1.0,
                math.inf,
                (),
                "steward must-link",
            )
    forbidden_entities = {owners[p][0] for p in cannot if p in owners}

    auto = [c for c in scored if c.decision == "auto_link"]
    members = _entity_members(
        session, {owners[int(c.unique_id)][0] for c in auto if int(c.unique_id) in owners}
    )
    entity_block: dict[int, str | None] = {}
    for ent, rows in members.items():
        entity_block[ent] = _entity_refuses(rules, record, rows, ent in forbidden_entities)

    explained: list[CandidateExplanation] = []
    targets: dict[int, ScoredCandidate] = {}
    for c in scored:
        owner = owners.get(int(c.unique_id))
        eid: int | None = owner[0] if owner else None
        cid: str | None = owner[1] if owner else None
        decision, forbidden = c.decision, c.forbidden
        if decision == "auto_link":
            why = entity_block.get(eid) if eid is not None else "candidate has no entity"
            if eid is not None and eid in forbidden_entities:
                why = "steward cannot-link"
            if why is not None:
                row = next(
                    (
                        r
                        for r in (members.get(eid, []) if eid is not None else [])
                        if str(r["unique_id"]) == c.unique_id
                    ),
                    None,
                )
                if row is not None and not worth_review(rules, why, record, row):
                    continue  # two people: no clerical slip explains what forbids it
                decision, forbidden = "review", why
            elif eid is not None:
                best = targets.get(eid)
                if best is None or _rank(c) > _rank(best):
                    targets[eid] = c
        if decision == "none":
            continue
        explained.append(
            CandidateExplanation(
                int(c.unique_id),
                eid,
                cid,
                c.score.match_weight if c.score else None,
                c.score.match_probability if c.score else None,
                dict(c.score.weights) if c.score else {},
                decision,
                c.method,
                forbidden,
            )
        )
    if len(targets) == 1:
        target, best = next(iter(targets.items()))
        return MatchDecision(
            "linked",
            owners[int(best.unique_id)][1],
            target,
            best.method,
            best.score.match_probability if best.score else 1.0,
            best.score.match_weight if best.score else None,
            tuple(explained),
        )
    if targets:
        return MatchDecision(
            "review",
            candidates=tuple(explained),
            reason=f"auto-link strength to {len(targets)} different entities",
        )
    if explained:
        return MatchDecision("review", candidates=tuple(explained), reason="review band")
    return MatchDecision("created")


def _rank(c: ScoredCandidate) -> tuple[int, float]:
    return (_METHOD_RANK.get(c.method, 0), c.score.match_weight if c.score else math.inf)


def _entity_refuses(
    rules: MatchingRules,
    record: Mapping[str, FeatureValue],
    members: list[dict[str, FeatureValue]],
    steward_forbids: bool,
) -> str | None:
    """Why the whole entity may not take the record automatically (batch's cluster
    constraints, applied to every member), or ``None``."""
    if steward_forbids:
        return "steward cannot-link"
    for member in members:
        col = exclusive_conflict(rules, record, member)
        if col is not None:
            return col if ":" in col else f"exclusive:{col}"
        rule = decide_pair(rules, record, member)
        if rule is not None and rule.outcome == "conflict":
            return f"rule:{rule.rule}"
    return None


def add_record_features(
    session: Session,
    entity_type: str,
    source_record_id: int,
    standardized: Mapping[str, Any],
    *,
    source_system: str,
    record_version: int = 1,
    rules_dir: Path | None = None,
    rules: MatchingRules | None = None,
) -> list[str]:
    """Put one record's feature row and blocking keys in the candidate index
    (replacing earlier ones), so the next :func:`match_one` finds it. Flushes in
    the caller's transaction; returns the keys. ``rules`` spares reading the rules
    file (e.g. the cached model's, see :func:`loaded_model`)."""
    rules = rules or load_rules(entity_type, rules_dir)
    feats = build_features(entity_type, str(source_record_id), source_system, standardized)
    keys = list(dict.fromkeys(blocking_keys(feats, rules)))
    remove_record_features(session, source_record_id)
    session.execute(
        insert(mf).values(
            source_record_id=source_record_id,
            entity_type=entity_type,
            record_version=record_version,
            content_hash=_features_hash(feats, keys),
            signature=feature_signature(entity_type, rules),
            features=feats,
        )
    )
    if keys:
        session.execute(
            insert(bk),
            [
                {
                    "entity_type": entity_type,
                    "key_hash": h,
                    "source_record_id": source_record_id,
                }
                for h in blocking_key_hashes(entity_type, keys)
            ],
        )
    return keys


def remove_record_features(session: Session, source_record_id: int) -> None:
    """Take a record out of the candidate index (withdrawn, or about to be replaced)."""
    session.execute(delete(bk).where(bk.c.source_record_id == source_record_id))
    session.execute(delete(mf).where(mf.c.source_record_id == source_record_id))


def review_band_records(conn: Connection, entity_type: str) -> int:
    """Distinct records with a pending review candidate."""
    left = select(cands.c.left_record_id.label("r")).where(
        cands.c.entity_type == entity_type, cands.c.status == "pending"
    )
    right = select(cands.c.right_record_id.label("r")).where(
        cands.c.entity_type == entity_type, cands.c.status == "pending"
    )
    union = left.union(right).subquery()
    return int(conn.execute(select(func.count()).select_from(union)).scalar_one())
