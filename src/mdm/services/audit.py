"""The audit trail: who read or changed what, when and why, as a hash chain.

Every row carries ``prev_hash`` (the previous row's ``row_hash``; 64 zeros for the
first row) and ``row_hash = sha256(canonical JSON of the row's content and
prev_hash)``. The table is append-only (database triggers refuse UPDATE and DELETE),
and the chain makes a rewrite that bypasses the triggers detectable:
:func:`verify_chain` recomputes it and names the first row that does not fit.

Chain order is ``id`` order. Appending must read the last hash and insert under one
lock, or two writers would both chain onto the same row: on Postgres
``pg_advisory_xact_lock`` (held until commit), on SQLite the database's single write
lock, taken *before* the read (a no-op write statement starts the write transaction).

:class:`AuditWriter` is the API's group commit: request threads hand it their row
and wait until the batch holding it is committed, so under load one transaction
(one lock, one fsync) carries many requests' rows, and no request is answered before
its row is durable (if the write fails, the request fails: nothing is served
unaudited).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, cast

from sqlalchemy import Connection, Engine, Table, insert, select, text

from mdm.domain.canonical_json import canonical_json
from mdm.exceptions import MDMError
from mdm.store.models import AuditLog, utcnow
from mdm.store.repositories.entities import allocate_ids, encode_json

log = logging.getLogger(__name__)

audit = cast(Table, AuditLog.__table__)

GENESIS: Final = "0" * 64
#: Advisory-lock key of the chain (any constant; "audit" in ASCII).
_LOCK_KEY: Final = 0x6175646974
#: Seconds after which the group-commit writer's idle connection is pinged (by the
#: pool) before its next batch.
_IDLE_PING: Final = 1.0


class AuditUnavailable(MDMError):
    """The audit trail cannot be written; nothing is served unaudited. Retry later."""

    status_code = 503
    code = "audit_unavailable"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    actor_type: str  # client | steward | system
    actor: str
    action: str
    entity_ids: list[str] = field(default_factory=list)
    purpose: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    client_id: int | None = None
    at: datetime = field(default_factory=utcnow)


def row_hash(prev_hash: str, at: datetime, row: dict[str, Any]) -> str:
    content = {
        "prev_hash": prev_hash,
        "at": at.astimezone(UTC).isoformat(),
        "actor_type": row["actor_type"],
        "actor": row["actor"],
        "action": row["action"],
        "entity_ids": list(row["entity_ids"] or []),
        "purpose": row["purpose"],
        "details": row["details"] or {},
        "client_id": row["client_id"],
    }
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def append(conn: Connection, entries: Sequence[AuditEntry]) -> list[int]:
    """Append ``entries`` to the chain inside the caller's transaction; returns ids.

    Holds the chain lock until the caller's transaction ends, so call it late in a
    write transaction.
    """
    if not entries:
        return []
    if conn.dialect.name == "postgresql":
        return _append_pg(conn, entries)
    # SQLite: start the write transaction (matches no row, so the append-only trigger
    # never fires): no other writer can slip in between the read and the insert.
    conn.execute(text("DELETE FROM audit_log WHERE 0"))
    prev = conn.execute(select(audit.c.row_hash).order_by(audit.c.id.desc()).limit(1)).scalar()
    prev = prev or GENESIS
    ids = allocate_ids(conn, audit, len(entries))
    rows: list[dict[str, Any]] = []
    for new_id, entry in zip(ids, entries, strict=True):
        row: dict[str, Any] = {
            "id": new_id,
            "at": entry.at,
            "actor_type": entry.actor_type,
            "actor": entry.actor,
            "action": entry.action,
            "entity_ids": list(entry.entity_ids),
            "purpose": entry.purpose,
            "details": dict(entry.details),
            "client_id": entry.client_id,
            "prev_hash": prev,
        }
        row["row_hash"] = prev = row_hash(prev, entry.at, row)
        rows.append(row)
    conn.execute(insert(audit), rows)
    return ids


_PG_INSERT = (
    "INSERT INTO audit_log (id, at, actor_type, actor, action, entity_ids, purpose, details, "
    "client_id, prev_hash, row_hash) "
    "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s::jsonb, %s, %s, %s)"
)


def _append_pg(conn: Connection, entries: Sequence[AuditEntry]) -> list[int]:
    """Postgres, on the driver connection (the API's hot path: SQLAlchemy's statement
    machinery cost more CPU than the work): lock; the last hash and new ids in one
    round trip; one pipelined executemany. The lock and the read are separate
    statements on purpose: under READ COMMITTED a statement's snapshot is taken when
    it starts, so a read in the locking statement could miss a row committed while
    it waited for the lock."""
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    with dbapi.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        cur.execute(
            "SELECT (SELECT row_hash FROM audit_log ORDER BY id DESC LIMIT 1), "
            "ARRAY(SELECT nextval(pg_get_serial_sequence('audit_log', 'id')) "
            "FROM generate_series(1, %s))",
            (len(entries),),
        )
        head = cur.fetchone()
        assert head is not None
        prev = head[0] or GENESIS
        ids = [int(i) for i in head[1]]
        params = []
        for new_id, entry in zip(ids, entries, strict=True):
            row: dict[str, Any] = {
                "actor_type": entry.actor_type,
                "actor": entry.actor,
                "action": entry.action,
                "entity_ids": list(entry.entity_ids),
                "purpose": entry.purpose,
                "details": dict(entry.details),
                "client_id": entry.client_id,
            }
            digest = row_hash(prev, entry.at, row)
            params.append(
                (
                    new_id,
                    entry.at,
                    entry.actor_type,
                    entry.actor,
                    entry.action,
                    encode_json(row["entity_ids"]),
                    entry.purpose,
                    encode_json(row["details"]),
                    entry.client_id,
                    prev,
                    digest,
                )
            )
            prev = digest
        cur.executemany(_PG_INSERT, params)
    return ids


@dataclass
class ChainReport:
    rows: int
    ok: bool
    first_broken_id: int | None = None
    reason: str | None = None


def iter_rows(conn: Connection, batch: int = 5000) -> Iterator[Any]:
    """Every row in id order, in pages. The first page has no lower bound: a row
    forged with an id at or below zero must be checked like any other."""
    last: int | None = None
    while True:
        stmt = select(audit).order_by(audit.c.id).limit(batch)
        if last is not None:
            stmt = stmt.where(audit.c.id > last)
        rows = conn.execute(stmt).all()
        if not rows:
            return
        yield from rows
        last = int(rows[-1].id)


def verify_chain(conn: Connection) -> ChainReport:
    """Recompute the chain in id order; the first row that does not fit breaks it."""
    prev = GENESIS
    n = 0
    for row in iter_rows(conn):
        n += 1
        if row.prev_hash != prev:
            return ChainReport(
                n, False, int(row.id), "prev_hash is not the previous row's hash (row missing?)"
            )
        expected = row_hash(prev, row.at, row._mapping)
        if row.row_hash != expected:
            return ChainReport(n, False, int(row.id), "row_hash does not match its content")
        prev = row.row_hash
    return ChainReport(n, True)


# ------------------------------------------------------------------ group commit


class AuditWriter:
    """One background thread that commits audit rows in batches (group commit)."""

    def __init__(self, engine: Engine, *, max_batch: int = 1000, timeout: float = 10.0) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.timeout = timeout
        self._queue: queue.Queue[tuple[AuditEntry, Future[None]] | None] = queue.Queue()
        self._conn: Connection | None = None
        self._used = 0.0  # time.monotonic() of the kept connection's last batch
        self._thread = threading.Thread(target=self._run, name="mdm-audit-writer", daemon=True)
        self._thread.start()

    def write(self, entry: AuditEntry) -> None:
        """Return once ``entry`` is committed; raise :class:`AuditUnavailable` if not."""
        fut: Future[None] = Future()
        self._queue.put((entry, fut))
        try:
            fut.result(timeout=self.timeout)
        except Exception as exc:
            log.error("audit write failed: %s", type(exc).__name__)
            raise AuditUnavailable() from exc

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=self.timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._drop_connection()
                return
            batch = [item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            try:
                # One connection kept by the thread: no pool checkout (and its ping)
                # per batch; a failed batch drops it and the next one reconnects. A
                # connection idle for a while goes back to the pool and is checked
                # out again (pre-ping): the database may have restarted meanwhile,
                # and the first batch after an outage must not fail on a dead socket.
                if self._conn is not None and time.monotonic() - self._used > _IDLE_PING:
                    self._drop_connection()
                if self._conn is None:
                    self._conn = self.engine.connect()
                with self._conn.begin():
                    append(self._conn, [e for e, _f in batch])
                self._used = time.monotonic()
            except Exception as exc:
                # The thread lives on; the batch's requests answer 503
                # audit_unavailable and are not served (nothing unaudited).
                self._drop_connection()
                for _e, f in batch:
                    f.set_exception(exc)
            else:
                for _e, f in batch:
                    f.set_result(None)
            if stop:
                self._drop_connection()
                return

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                log.warning("closing the audit connection failed", exc_info=True)
            self._conn = None


_writers: dict[tuple[int, int], AuditWriter] = {}
_writers_lock = threading.Lock()


def writer_for(engine: Engine) -> AuditWriter:
    """The process's writer for ``engine`` (a forked worker starts its own thread)."""
    key = (os.getpid(), id(engine))
    found = _writers.get(key)
    if found is not None:
        return found
    with _writers_lock:
        found = _writers.get(key)
        if found is None:
            found = _writers[key] = AuditWriter(engine)
        return found


def close_writers() -> None:
    with _writers_lock:
        for key, w in list(_writers.items()):
            if key[0] == os.getpid():
                w.close()
            del _writers[key]
