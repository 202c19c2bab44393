"""Ingest: files from a source system become source records or rejects, nothing else.

Guarantees (DESIGN.md invariant 2):

* every input row ends up as a source-record version or a reject with reasons;
* idempotent by content hash: the same file again adds nothing, a changed row adds
  a new version of that source record;
* resumable: rows are committed in chunks, each chunk in one transaction together
  with the run's progress (``ingest_runs.rows_committed`` and the counts so far). A
  run killed at any moment (``kill -9``) and started again with the same file and
  mapping continues after the last committed chunk and ends in exactly the state an
  uninterrupted run reaches;
* a full snapshot (``--full-snapshot``) withdraws the source's active records of
  that type that the file no longer contains, in the run's final transaction.

The content hash covers the row as the source wrote it (every column, not only the
mapped ones): a record changed at the source is a new version even if no mapped
field changed.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from mdm.domain.canonical_json import canonical_json, canonical_text_map_bytes
from mdm.ingest.mapping import Mapping, MappingModel
from mdm.ingest.readers import (
    InputFileError,
    Row,
    detect_format,
    file_sha256,
    open_rows,
    to_text,
)
from mdm.services.bulk import gc_paused
from mdm.standardize.records import standardize_record
from mdm.store.db import Connection, Engine
from mdm.store.repositories import ingest_runs, locks
from mdm.store.repositories import source_records as repo

log = logging.getLogger(__name__)

CHUNK_ROWS = 5000
#: with the cyclic collector paused during an ingest, a full collection every this
#: many chunks (a young-generation collection after every chunk cost 6% of the main
#: process: with the collector paused, everything alive since the last one is young)
FULL_GC_EVERY = 50
COUNT_KEYS = ("read", "new", "changed", "unchanged", "rejected", "withdrawn")


@dataclass
class IngestSummary:
    file: str
    source_system: str
    entity_type: str
    run_id: int
    read: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    rejected: int = 0
    withdrawn: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    resumed_from_row: int = 0
    encoding: str | None = None
    rejects_file: str | None = None
    summary_file: str | None = None

    def counts(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
            "withdrawn": self.withdrawn,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "source_system": self.source_system,
            "entity_type": self.entity_type,
            "run_id": self.run_id,
            **self.counts(),
            "seconds": round(self.seconds, 3),
            "resumed_from_row": self.resumed_from_row,
            "encoding": self.encoding,
            "rejects_file": self.rejects_file,
        }


Progress = Callable[[int, int, int], None]  # rows done, rows estimated total, rejected


def _mapping_hash(mapping: Mapping) -> str:
    return hashlib.sha256(
        canonical_json(mapping.model.model_dump(mode="json")).encode()
    ).hexdigest()


# A row ready to store, already serialized: the JSON, its COPY escaping and the hash
# are made in the worker processes so that the single writer only joins bytes. A
# plain tuple (key, SHA-256 of the raw JSON, the version payload of
# ``repo.version_payload``: bytes on Postgres, text elsewhere): chunks of them cross
# a process boundary, and tuples of few strings pickle several times faster than
# objects (and bytes faster than text, which pickle encodes and decodes again).
_Accepted = tuple[str, str, bytes | str]
_Prepared = _Accepted | dict[str, Any]
_KEY: Final = 0
_HASH: Final = 1
_PAYLOAD: Final = 2

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _compact_json_bytes(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes, non-ASCII kept (orjson; the standard encoder for
    what orjson refuses, such as a lone surrogate)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return _COMPACT.encode(value).encode()


def _reject(
    row: Row, key: str | None, reasons: list[dict[str, Any]], ctx: _Context
) -> dict[str, Any]:
    return {
        "source_system_id": ctx.system_id,
        "ingest_run_id": ctx.run_id,
        "entity_type": ctx.entity_type,
        "location": {"file": ctx.file_name, "line": row.number},
        "source_key": key,
        "reasons": reasons,
        "raw_content": row.raw,
        "created_at": ctx.now(),
    }


@dataclass
class _Context:
    system_id: int
    run_id: int
    entity_type: str
    file_name: str
    full_snapshot: bool
    #: version payloads in COPY text format (Postgres)
    copy_format: bool = False
    rows_since_analyze: int = 190_000  # first ANALYZE after ~10k rows, then every 200k

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)


def _prepare(row: Row, mapping: Mapping, ctx: _Context) -> _Prepared:
    """Map and standardize one row; a reject dict when it cannot be kept."""
    if row.error is not None or row.values is None:
        return _reject(
            row,
            None,
            [
                {
                    "field": None,
                    "code": row.error_code or "unreadable_row",
                    "severity": "error",
                    "message": row.error or "the row could not be read",
                }
            ],
            ctx,
        )
    key, raw_fields = mapping.apply(row.values)
    if key is None:
        return _reject(
            row,
            None,
            [
                {
                    "field": "+".join(mapping.model.source_key),
                    "code": "missing_source_key",
                    "severity": "error",
                    "message": "the source key column(s) are blank: the record cannot be "
                    "identified",
                }
            ],
            ctx,
        )
    if len(key) > 200:
        return _reject(
            row,
            key[:200],
            [
                {
                    "field": "+".join(mapping.model.source_key),
                    "code": "source_key_too_long",
                    "severity": "error",
                    "message": f"the source key has {len(key)} characters (at most 200)",
                }
            ],
            ctx,
        )
    result = standardize_record(mapping.entity_type, raw_fields)
    issues = [i.as_dict() for i in result.issues]
    if result.rejected:
        return _reject(row, key, issues, ctx)
    values = row.values
    if not all(type(v) is str for v in values.values()):  # CSV rows are all text
        values = {str(k): to_text(v) for k, v in values.items()}
    raw = canonical_text_map_bytes(values)
    content_hash = hashlib.sha256(raw).hexdigest()
    return (
        key,
        content_hash,
        repo.version_payload(
            raw,
            _compact_json_bytes(result.standardized),
            _compact_json_bytes(issues) if issues else b"[]",
            content_hash,
            copy_format=ctx.copy_format,
        ),
    )


_worker_mapping: Mapping | None = None
_worker_ctx: _Context | None = None
_worker_chunks = 0


def _init_worker(model: MappingModel, path: Path | None, ctx: _Context) -> None:
    global _worker_mapping, _worker_ctx
    _worker_mapping = Mapping(model, path)
    _worker_ctx = ctx


def _init_worker_process(model: MappingModel, path: Path | None, ctx: _Context) -> None:
    """A worker process's start: what it holds now (modules, the administrative-unit
    index, the mapping) lives as long as it does, so it is moved out of the cyclic
    collector's reach (:func:`gc.freeze`); every full collection would walk it again.

    The collector then stays off for the worker's life, not only while a chunk is
    standardized: unpickling a chunk and building its rows allocate as many tracked
    objects as standardizing it, and each young collection there would walk what the
    previous chunk left in the standardizers' caches. ``_prepare_fields`` runs a
    full collection every ``FULL_GC_EVERY`` chunks."""
    _init_worker(model, path, ctx)
    gc.freeze()
    gc.disable()


def _prepare_chunk(rows: list[Row]) -> list[_Prepared]:
    """Map and standardize a chunk with the cyclic collector paused: a row allocates
    a few dozen small acyclic objects, and the collector scans every 700 of them all
    that is alive (in a process holding 100,000 rows, standardization took 52 µs a
    row with the collector and 26 without; in a worker, which holds one chunk, the
    gain is within the noise). Reference counting frees them all; the collector runs
    every ``FULL_GC_EVERY`` chunks instead, for the odd cycle (``_prepare_fields`` in
    a worker, ``ingest_file``'s writer in one process)."""
    assert _worker_mapping is not None and _worker_ctx is not None
    with gc_paused():
        return [_prepare(row, _worker_mapping, _worker_ctx) for row in rows]


def _prepare_fields(rows: list[tuple[Any, ...]]) -> list[_Prepared]:
    """``_prepare_chunk`` for rows sent to a worker as tuples of Row's fields (they
    pickle at half the cost of Row objects). The worker's full collection every
    ``FULL_GC_EVERY`` chunks is here: in one process, ``ingest_file``'s writer
    already runs it."""
    global _worker_chunks
    out = _prepare_chunk([Row(*fields) for fields in rows])
    _worker_chunks += 1
    if _worker_chunks % FULL_GC_EVERY == 0:
        gc.collect()
    return out


def _default_workers(path: Path, file_size: int, kind: str | None) -> int:
    """Worker processes are worth it past a few MB of text, or for a Parquet file
    past 20,000 rows (Parquet compresses: 100,000 citizens fit in 3 MB)."""
    big = file_size >= 4_000_000
    if not big and (kind or detect_format(path)) == "parquet":
        try:
            import pyarrow.parquet as pq

            big = pq.ParquetFile(path).metadata.num_rows >= 20_000
        except Exception:  # unreadable: the reader reports it; one process is enough
            big = False
    if not big:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def _write_chunk(
    conn: Connection,
    ctx: _Context,
    prepared: list[_Prepared],
    rows_done: int,
    totals: Counter[str],
    reasons: Counter[str],
) -> None:
    """One transaction: the chunk's records, versions, rejects and the run's progress."""
    delta: Counter[str] = Counter()
    reason_delta: Counter[str] = Counter()
    accepted = [p for p in prepared if type(p) is tuple]
    rejects = [p for p in prepared if type(p) is dict]
    now = ctx.now()
    with conn.begin():
        keys = list(dict.fromkeys(a[_KEY] for a in accepted))
        state = repo.current_states(conn, ctx.system_id, keys)
        new_keys: list[str] = []
        versions: list[tuple[str, int, _Accepted]] = []  # key, version, data
        bumps: dict[int, tuple[int, str]] = {}
        seen: set[int] = set()
        reactivated: set[int] = set()
        pending: dict[str, tuple[int, str]] = {}  # keys new in this chunk: version, hash
        for a in accepted:
            key, chash = a[_KEY], a[_HASH]
            delta["read"] += 1
            if key in pending:  # the same key twice in one chunk
                version, pending_hash = pending[key]
                if pending_hash == chash:
                    delta["unchanged"] += 1
                else:
                    pending[key] = (version + 1, chash)
                    versions.append((key, version + 1, a))
                    delta["changed"] += 1
                continue
            current = state.get(key)
            if current is None:
                new_keys.append(key)
                pending[key] = (1, chash)
                versions.append((key, 1, a))
                delta["new"] += 1
                continue
            if current.content_hash == chash:
                if current.status != "active":
                    reactivated.add(current.record_id)
                    delta["changed"] += 1
                else:
                    delta["unchanged"] += 1
                seen.add(current.record_id)
                continue
            current.version += 1
            current.content_hash = chash
            current.status = "active"
            bumps[current.record_id] = (current.version, chash)
            versions.append((key, current.version, a))
            delta["changed"] += 1

        # A key new in this chunk is inserted once, pointing at its last version here.
        ids = repo.insert_records(
            conn,
            ctx.system_id,
            ctx.entity_type,
            [(key, *pending[key]) for key in new_keys],
            ctx.run_id,
            now,
        )
        repo.insert_versions(
            conn,
            [
                (ids.get(key) or state[key].record_id, version, a[_PAYLOAD], a[_HASH])
                for key, version, a in versions
            ],
            ctx.run_id,
            now,
            copy_format=ctx.copy_format,
        )
        repo.bump_versions(conn, [(rid, v, h) for rid, (v, h) in bumps.items()], ctx.run_id, now)
        repo.reactivate(conn, sorted(reactivated), now)
        if ctx.full_snapshot:
            repo.mark_seen(conn, sorted(seen - set(bumps)), ctx.run_id)

        for r in rejects:
            delta["read"] += 1
            delta["rejected"] += 1
            for code in dict.fromkeys(
                x["code"] for x in r["reasons"] if x.get("severity") == "error"
            ):
                reason_delta[code] += 1
        repo.insert_rejects(conn, rejects)

        new_totals = totals + delta
        new_reasons = reasons + reason_delta
        ingest_runs.record_progress(
            conn,
            ctx.run_id,
            rows_done,
            {
                **{k: new_totals.get(k, 0) for k in COUNT_KEYS},
                "rejected_by_reason": dict(new_reasons),
            },
        )
    totals.update(delta)
    reasons.update(reason_delta)
    ctx.rows_since_analyze += len(prepared)


def _maybe_analyze(conn: Connection, ctx: _Context) -> None:
    """Keep Postgres statistics in step with a bulk load (every ~200k rows)."""
    if ctx.rows_since_analyze >= 200_000:
        with conn.begin():
            repo.analyze(conn)
        ctx.rows_since_analyze = 0


def _find_or_start_run(
    engine: Engine,
    system_id: int,
    entity_type: str,
    path: Path,
    sha: str,
    mapping_sha: str,
    full_snapshot: bool,
) -> tuple[int, int, dict[str, Any]]:
    """Resume the unfinished run of this very file and mapping, or start a new one."""
    with engine.begin() as conn:
        found = ingest_runs.latest(
            conn,
            system_id=system_id,
            entity_type=entity_type,
            sha=sha,
            mapping_sha=mapping_sha,
            full_snapshot=full_snapshot,
            status="running",
        )
        if found is not None:
            return int(found[0]), int(found[1]), dict(found[2] or {})
        return (
            _insert_run(conn, system_id, entity_type, path, sha, mapping_sha, full_snapshot),
            0,
            {},
        )


def _format(mapping: Mapping, path: Path) -> str | None:
    """The format the mapping says, unless the file is named .jsonl/.ndjson/.parquet
    (then None here, and the reader goes by the extension)."""
    if path.suffix.lower() in (".jsonl", ".parquet", ".ndjson"):
        return None
    return mapping.model.format


def _open(
    mapping: Mapping, path: Path, encoding: str | None
) -> tuple[list[str] | None, Iterator[Row], str]:
    """The file's header, rows and encoding as the mapping says to read it (a file
    named .jsonl/.ndjson/.parquet is read by its extension)."""
    model = mapping.model
    return open_rows(
        path,
        fmt=_format(mapping, path),
        encoding=encoding or model.encoding,
        delimiter=model.csv.delimiter if model.format == "csv" else None,
        quotechar=model.csv.quotechar,
        skip_rows=model.csv.skip_rows,
    )


def _insert_run(
    conn: Any,
    system_id: int,
    entity_type: str,
    path: Path,
    sha: str,
    mapping_sha: str,
    full_snapshot: bool,
) -> int:
    """A new ``running`` ingest run of one file; its id."""
    return ingest_runs.start(
        conn,
        system_id=system_id,
        entity_type=entity_type,
        path=path,
        sha=sha,
        mapping_sha=mapping_sha,
        full_snapshot=full_snapshot,
        now=datetime.now(UTC),
    )


def _source_lock_name(name: str) -> str:
    return f"mdm-ingest:{name}"


def _source_lock(engine: Engine, name: str) -> Any:
    """Serialize ingests of one source system on Postgres (a session advisory lock).

    The lock belongs to the database session, which outlives the pooled connection
    handle: :func:`_source_unlock` must release it before the connection goes back to
    the pool, or the next ingest of the source would find it still held.
    """
    if engine.dialect.name != "postgresql":
        return None
    conn = locks.try_session_lock(engine, _source_lock_name(name))
    if conn is None:
        raise InputFileError(
            f"another ingest of source system {name!r} is running; try again later"
        )
    return conn


def _source_unlock(conn: Any, name: str) -> None:
    locks.release_session_lock(conn, _source_lock_name(name))


@contextmanager
def _writer_connection(engine: Engine) -> Iterator[Connection]:
    """The one connection a run writes its chunks through, one transaction each.

    Held for the whole run (not checked out of the pool per chunk), and on Postgres
    its commits don't wait for the WAL flush (``synchronous_commit = off`` for the
    session, reset before the connection goes back to the pool). Safe for ingest: a
    chunk and the run's progress commit together, so a database crash can only lose
    whole chunks, which the resume then reads again.

    The session's ``work_mem`` is raised to 64 MB: the reference triggers of
    ``source_record_versions`` (migration 0012) see a chunk's rows as a transition
    table, about 7 MB for 5,000 citizens, which spilled to a temporary file (written
    and read back by each trigger) with the default 4 MB.
    """
    conn = engine.connect()
    postgres = engine.dialect.name == "postgresql"
    try:
        if postgres:
            ingest_runs.tune_bulk_writer(conn)
        yield conn
        if postgres:
            ingest_runs.reset_bulk_writer(conn)
    except BaseException:
        if postgres:
            # the setting must not reach the pool's next user: drop the session
            conn.invalidate()
        raise
    finally:
        conn.close()


def _pipeline(
    chunks: Iterator[tuple[int, list[Row]]],
    write: Callable[[int, list[_Prepared]], None],
    mapping: Mapping,
    ctx: _Context,
    n_workers: int,
) -> None:
    """Three stages at once: this thread reads the file and hands chunks to worker
    processes, which standardize them (the costly, pure part); a writer thread
    commits the results in file order. The writer waits on Postgres most of the time
    (the GIL is free then), so reading and COPY overlap instead of taking turns.

    The order of commits is the order of the file, so ``rows_committed`` still means
    "every row before this one is stored", which is what resume relies on.
    """
    results: queue.Queue[tuple[int, Future[list[_Prepared]]] | None] = queue.Queue(
        maxsize=2 * n_workers
    )
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            while (item := results.get()) is not None:
                end, fut = item
                write(end, fut.result())
        except BaseException as exc:  # handed to the reading thread, re-raised there
            failure.append(exc)
            while results.get() is not None:  # unblock the reader until it stops
                pass

    context = multiprocessing.get_context("forkserver")
    # (no effect once this process's forkserver runs: it is started once and serves
    # every file of a manifest, which is the point)
    context.set_forkserver_preload(["mdm.ingest.worker_preload"])
    with ProcessPoolExecutor(
        max_workers=n_workers,
        mp_context=context,
        initializer=_init_worker_process,
        initargs=(mapping.model, mapping.path, ctx),
    ) as pool:
        thread = threading.Thread(target=writer, name="ingest-writer", daemon=True)
        thread.start()
        try:
            for end, batch in chunks:
                if failure:
                    break
                fields = [(r.number, r.values, r.raw, r.error, r.error_code) for r in batch]
                results.put((end, pool.submit(_prepare_fields, fields)))
        finally:
            results.put(None)
            thread.join()
            if failure:
                pool.shutdown(wait=True, cancel_futures=True)
    if failure:
        raise failure[0]


def ingest_file(
    engine: Engine,
    mapping: Mapping,
    path: Path,
    *,
    source_name: str | None = None,
    encoding: str | None = None,
    full_snapshot: bool = False,
    report_dir: Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: Progress | None = None,
    workers: int | None = None,
) -> IngestSummary:
    started = time.monotonic()
    name = source_name or mapping.source_system
    if not name:
        raise InputFileError(
            f"{path}: no source system: pass --source or set source_system in the mapping"
        )
    rows, used_encoding = _open_checked(mapping, path, encoding)
    sha = file_sha256(path)
    lock = _source_lock(engine, name)
    try:
        with ExitStack() as stack:
            system_id, run_id, resume_at, saved = _start_run(
                engine, mapping, name, path, sha, full_snapshot
            )
            totals: Counter[str] = Counter({k: int(saved.get(k, 0)) for k in COUNT_KEYS})
            reasons: Counter[str] = Counter(saved.get("rejected_by_reason", {}))
            ctx = _Context(
                system_id,
                run_id,
                mapping.entity_type,
                path.name,
                full_snapshot,
                copy_format=engine.dialect.name == "postgresql",
            )
            if resume_at:
                log.info("resuming ingest run %s of %s after row %s", run_id, path.name, resume_at)

            size = max(path.stat().st_size, 1)
            wconn = stack.enter_context(_writer_connection(engine))
            done = _stream(
                rows,
                wconn,
                ctx,
                mapping,
                path,
                size=size,
                resume_at=resume_at,
                chunk_rows=chunk_rows,
                totals=totals,
                reasons=reasons,
                progress=progress,
                workers=workers,
            )
            _complete_run(wconn, ctx, mapping.entity_type, full_snapshot, totals, reasons)
            if progress is not None:
                progress(done, done, totals["rejected"])
    finally:
        if lock is not None:
            _source_unlock(lock, name)

    summary = IngestSummary(
        file=str(path),
        source_system=name,
        entity_type=mapping.entity_type,
        run_id=run_id,
        rejected_by_reason=dict(reasons),
        resumed_from_row=resume_at,
        encoding=used_encoding,
        read=totals["read"],
        new=totals["new"],
        changed=totals["changed"],
        unchanged=totals["unchanged"],
        rejected=totals["rejected"],
        withdrawn=totals["withdrawn"],
    )
    summary.seconds = time.monotonic() - started
    if report_dir is not None:
        _write_report(engine, summary, report_dir)
    return summary


def _open_checked(mapping: Mapping, path: Path, encoding: str | None) -> tuple[Iterator[Row], str]:
    """The file's rows and encoding, once its header has every column the mapping reads."""
    header, rows, used_encoding = _open(mapping, path, encoding)
    if header is not None:
        missing = [c for c in mapping.required_columns() if c not in header]
        if missing:
            raise InputFileError(
                f"{path}: the mapping {mapping.path or ''} reads column(s) {missing} that the "
                f"file does not have (its columns: {header})"
            )
    return rows, used_encoding


def _start_run(
    engine: Engine, mapping: Mapping, name: str, path: Path, sha: str, full_snapshot: bool
) -> tuple[int, int, int, dict[str, Any]]:
    """Register the source system and its trust, then resume or start the file's run.

    Returns (source system id, run id, rows already committed, the run's saved counts).
    """
    with engine.begin() as conn:
        system_id = repo.get_or_create_source_system(conn, name)
        trust = {k: float(v) for k, v in mapping.model.trust.items()}
        repo.set_trust(conn, system_id, mapping.entity_type, trust)
    run_id, resume_at, saved = _find_or_start_run(
        engine,
        system_id,
        mapping.entity_type,
        path,
        sha,
        _mapping_hash(mapping),
        full_snapshot,
    )
    return system_id, run_id, resume_at, saved


def _stream(
    rows: Iterator[Row],
    wconn: Connection,
    ctx: _Context,
    mapping: Mapping,
    path: Path,
    *,
    size: int,
    resume_at: int,
    chunk_rows: int,
    totals: Counter[str],
    reasons: Counter[str],
    progress: Progress | None,
    workers: int | None,
) -> int:
    """Standardize and write the rows after ``resume_at`` in chunks; the rows read."""
    raw_chars = 0
    done = 0

    def chunks() -> Iterator[tuple[int, list[Row]]]:
        nonlocal done, raw_chars
        batch: list[Row] = []
        for row in rows:
            done += 1
            raw_chars += len(row.raw) + 1
            if done <= resume_at:
                continue
            batch.append(row)
            if len(batch) >= chunk_rows:
                yield done, batch
                batch = []
        yield done, batch

    chunks_written = 0

    def write(end: int, prepared: list[_Prepared]) -> None:
        nonlocal chunks_written
        _write_chunk(wconn, ctx, prepared, end, totals, reasons)
        _maybe_analyze(wconn, ctx)
        chunks_written += 1
        if chunks_written % FULL_GC_EVERY == 0:
            gc.collect()  # the collector is paused (below): cycles, now and then
        if progress is not None:
            estimate = int(size / max(raw_chars / max(done, 1), 1.0))
            progress(end, max(estimate, done), totals["rejected"])

    n_workers = (
        workers if workers is not None else _default_workers(path, size, _format(mapping, path))
    )
    # Reading, pickling and writing allocate a few dozen small acyclic objects
    # a row: the cyclic collector is paused while they stream (``write``
    # collects every FULL_GC_EVERY chunks), as in the workers
    # (``_prepare_chunk``; docs/ingest.md, "Performance").
    with gc_paused():
        if n_workers <= 1:
            _init_worker(mapping.model, mapping.path, ctx)
            for end, batch in chunks():
                write(end, _prepare_chunk(batch))
        else:
            _pipeline(chunks(), write, mapping, ctx, n_workers)
    return done


def _complete_run(
    wconn: Connection,
    ctx: _Context,
    entity_type: str,
    full_snapshot: bool,
    totals: Counter[str],
    reasons: Counter[str],
) -> None:
    """Withdraw what a full snapshot no longer has and mark the run completed, durably."""
    with wconn.begin():
        repo.durable_commit(wconn)  # the run's end is not left to the async commit
        withdrawn = 0
        if full_snapshot:
            withdrawn = repo.withdraw_unseen(
                wconn, ctx.system_id, entity_type, ctx.run_id, ctx.now()
            )
        totals["withdrawn"] = withdrawn
        ingest_runs.complete(
            wconn,
            ctx.run_id,
            {
                **{k: totals.get(k, 0) for k in COUNT_KEYS},
                "rejected_by_reason": dict(reasons),
            },
            ctx.now(),
        )


def _write_report(engine: Engine, summary: IngestSummary, report_dir: Path) -> None:
    """summary.json and rejects.jsonl, written from the database so that a resumed run
    reports exactly what an uninterrupted one would."""
    report_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = f"{stamp}-{summary.source_system}-run{summary.run_id}"
    rejects_path = report_dir / f"{stem}.rejects.jsonl"
    with engine.connect() as conn, rejects_path.open("w", encoding="utf-8") as out:
        for location, key, reasons, raw in repo.iter_rejects(conn, summary.run_id):
            out.write(
                json.dumps(
                    {
                        "file": location.get("file"),
                        "line": location.get("line"),
                        "source_key": key,
                        "reasons": reasons,
                        "raw": raw,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    summary.rejects_file = str(rejects_path)
    summary_path = report_dir / f"{stem}.summary.json"
    summary.summary_file = str(summary_path)
    summary_path.write_text(
        json.dumps(summary.as_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


# ------------------------------------------------------- several files, one command


@dataclass(frozen=True, slots=True)
class PlannedRun:
    """A file's run in a command of several files (``mdm ingest --manifest``)."""

    run_id: int
    #: finished by the same command before it was interrupted: nothing to read again
    done: bool = False


def open_runs(
    engine: Engine,
    files: list[tuple[Mapping, Path, str]],
    *,
    full_snapshot: bool = False,
) -> list[PlannedRun]:
    """Open the runs of one command's files (mapping, path, source name) together.

    A single file resumes by its unfinished run. A command of several files killed
    *between* two files left no unfinished run behind, so run again it could not tell
    "resume" from "ingest again": it read the files already done a second time (a
    second run and second rejects for each, a summary of unchanged rows instead of
    the uninterrupted one). So every file's run is opened up front, in one
    transaction, and stays ``running`` until that file is done. Run again, the
    command finds unfinished runs among its files: it resumes those, and a file with
    none was finished by the interrupted command (its last completed run stands,
    :func:`completed_summary`). With no unfinished run among them, every file gets a
    new run: an ordinary re-ingest (unchanged rows).
    """
    keys: list[tuple[int, str, str, str]] = []
    with engine.begin() as conn:
        for mapping, path, source in files:
            system_id = repo.get_or_create_source_system(conn, source)
            keys.append((system_id, mapping.entity_type, file_sha256(path), _mapping_hash(mapping)))

        def latest(key: tuple[int, str, str, str], status: str) -> int | None:
            system_id, entity_type, sha, mapping_sha = key
            found = ingest_runs.latest(
                conn,
                system_id=system_id,
                entity_type=entity_type,
                sha=sha,
                mapping_sha=mapping_sha,
                full_snapshot=full_snapshot,
                status=status,
            )
            return None if found is None else int(found.id)

        def start(key: tuple[int, str, str, str], path: Path) -> PlannedRun:
            system_id, entity_type, sha, mapping_sha = key
            return PlannedRun(
                _insert_run(conn, system_id, entity_type, path, sha, mapping_sha, full_snapshot)
            )

        unfinished = [latest(k, "running") for k in keys]
        if not any(r is not None for r in unfinished):
            return [start(k, path) for k, (_m, path, _s) in zip(keys, files, strict=True)]
        planned = []
        for key, (_m, path, _s), running in zip(keys, files, unfinished, strict=True):
            if running is not None:
                planned.append(PlannedRun(running))
                continue
            completed = latest(key, "completed")
            planned.append(
                PlannedRun(completed, True) if completed is not None else start(key, path)
            )
        return planned


def completed_summary(
    engine: Engine,
    mapping: Mapping,
    path: Path,
    run_id: int,
    *,
    source_name: str,
    encoding: str | None = None,
    report_dir: Path | None = None,
) -> IngestSummary:
    """The summary of a completed run, from the database (a file that an interrupted
    command had finished: see :func:`open_runs`)."""
    with engine.connect() as conn:
        counts = ingest_runs.counts(conn, run_id)
    counts = counts if isinstance(counts, dict) else json.loads(counts or "{}")
    _header, rows, used_encoding = _open(mapping, path, encoding)
    close = getattr(rows, "close", None)
    if close is not None:
        close()
    summary = IngestSummary(
        file=str(path),
        source_system=source_name,
        entity_type=mapping.entity_type,
        run_id=run_id,
        rejected_by_reason=dict(counts.get("rejected_by_reason", {})),
        encoding=used_encoding,
        read=int(counts.get("read", 0)),
        new=int(counts.get("new", 0)),
        changed=int(counts.get("changed", 0)),
        unchanged=int(counts.get("unchanged", 0)),
        rejected=int(counts.get("rejected", 0)),
        withdrawn=int(counts.get("withdrawn", 0)),
    )
    if report_dir is not None:
        _write_report(engine, summary, report_dir)
    return summary


def abandon_run(engine: Engine, run_id: int, error: str) -> None:
    """Close a run opened by :func:`open_runs` whose file was refused before any row
    was read (so that the next command does not take it for an interrupted one)."""
    with engine.begin() as conn:
        ingest_runs.fail_unstarted(conn, run_id, error[:2000], datetime.now(UTC))
