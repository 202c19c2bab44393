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

import asyncio
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from mdm.domain.canonical_json import canonical_json
from mdm.exceptions import MDMError
from mdm.store.db import Connection, Engine
from mdm.store.models import utcnow
from mdm.store.repositories import audit_log as repo

log = logging.getLogger(__name__)

GENESIS: Final = "0" * 64
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
    return repo.append_sqlite(conn, len(entries), _chain(entries))


def _chained_rows(
    prev: str, ids: Sequence[int], entries: Sequence[AuditEntry]
) -> list[dict[str, Any]]:
    """The rows of ``entries`` with ``ids``, chained onto the row hash ``prev``."""
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
    return rows


def _chain(entries: Sequence[AuditEntry]) -> repo.Chain:
    """The rows of ``entries`` chained onto the head the store reads under the lock."""
    return lambda prev, ids: _chained_rows(prev or GENESIS, ids, entries)


def _append_pg(
    conn: Connection, entries: Sequence[AuditEntry], *, commit: bool = False
) -> list[int]:
    """Postgres: lock, head, rows in two round trips (:func:`repo.append_pg`); with
    ``commit``, the group commit's own transaction commits with the rows."""
    return repo.append_pg(conn, len(entries), _chain(entries), commit=commit)


@dataclass
class ChainReport:
    rows: int
    ok: bool
    first_broken_id: int | None = None
    reason: str | None = None


def iter_rows(conn: Connection, batch: int = 5000) -> Iterator[Any]:
    """Every row in id order, in pages (a forged row with an id at or below zero
    included)."""
    return repo.iter_rows(conn, batch)


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


class Announcement:
    """A request that will hand the writer one row soon (see :meth:`AuditWriter.announce`).

    With ``defer``, :meth:`AuditWriter.write` in the request's context does not wait
    for the commit: it leaves the row's future here, and the request awaits
    :meth:`committed` before it answers (an event-loop wait instead of a blocked
    thread, measured cheaper under load)."""

    __slots__ = ("defer", "future", "open", "writer")

    def __init__(self, writer: AuditWriter, defer: bool) -> None:
        self.writer = writer
        self.open = True
        self.defer = defer
        self.future: Future[None] | None = None

    async def committed(self) -> None:
        """Return once the row written in this request's context (if any) is
        committed; raise :class:`AuditUnavailable` if it was not."""
        if self.future is None:
            return
        try:
            await asyncio.wait_for(asyncio.wrap_future(self.future), self.writer.timeout)
        except Exception as exc:
            log.error("audit write failed: %s", type(exc).__name__)
            raise AuditUnavailable() from exc

    def close(self) -> None:
        """The request is done: its row was handed over, or none will come (an
        error answer); the writer then stops waiting for it at once."""
        if self.open:
            self.writer._settle(self, wake=True)


#: Queued to make the writer look again at what it waits for (nothing to write).
_WAKE: Final = object()

#: The announcement of the request running in this context, if any.
_announced: ContextVar[Announcement | None] = ContextVar("mdm_audit_announced", default=None)


class AuditWriter:
    """One background thread that commits audit rows in batches (group commit).

    A batch is committed as soon as the queue is empty, unless requests that were
    *announced* (:meth:`announce`: the API's fast reads do it before their lookup)
    have not handed over their row yet: then the writer waits for them, at most
    ``gather`` seconds after the batch's first row. Under load the rows of all the
    requests in flight go in one transaction instead of several; a lone request is
    not delayed (nothing else is announced). Every batch costs a round trip, a lock
    and an fsync whatever its size (about 0.7 ms of CPU, measured), which at a few
    rows per batch was half the CPU of a lookup.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 1000,
        timeout: float = 10.0,
        gather: float = 0.003,
    ) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.timeout = timeout
        self.gather = gather
        self._queue: queue.Queue[tuple[AuditEntry, Future[None]] | object | None] = queue.Queue()
        self._conn: Connection | None = None
        self._used = 0.0  # time.monotonic() of the kept connection's last batch
        #: Batches committed (observability and tests).
        self.batches = 0
        self._pending = 0  # announced requests whose row has not arrived yet
        self._pending_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="mdm-audit-writer", daemon=True)
        self._thread.start()

    def announce(self, *, defer: bool = False) -> Announcement:
        """Say that the request running in this context will write one row soon; close
        the returned announcement when the request ends (rows written through
        :meth:`write` in this context settle it themselves). With ``defer`` the
        request must await :meth:`Announcement.committed` before it answers."""
        found = Announcement(self, defer)
        with self._pending_lock:
            self._pending += 1
        _announced.set(found)
        return found

    def _settle(self, announcement: Announcement, *, wake: bool) -> None:
        with self._pending_lock:
            if not announcement.open:
                return
            announcement.open = False
            self._pending -= 1
        if wake:
            self._queue.put(_WAKE)

    def write(self, entry: AuditEntry) -> None:
        """Return once ``entry`` is committed; raise :class:`AuditUnavailable` if not."""
        fut: Future[None] = Future()
        announcement = _announced.get()
        if announcement is not None and announcement.writer is self:
            # Settled before the row is queued: a writer that takes the row must not
            # then wait for the announcement it fulfils.
            self._settle(announcement, wake=False)
            self._queue.put((entry, fut))
            if announcement.defer and announcement.future is None:
                announcement.future = fut
                return
        else:
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
            if item is _WAKE:
                continue
            batch: list[tuple[AuditEntry, Future[None]]] = [item]  # type: ignore[list-item]
            stop = False
            deadline = 0.0
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    if self._pending <= 0:
                        break
                    now = time.monotonic()
                    if not deadline:
                        deadline = now + self.gather
                    if now >= deadline:
                        break
                    try:
                        more = self._queue.get(timeout=deadline - now)
                    except queue.Empty:
                        break
                if more is None:
                    stop = True
                    break
                if more is _WAKE:
                    continue
                batch.append(more)  # type: ignore[arg-type]
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
                if self._conn.dialect.name == "postgresql":
                    _append_pg(self._conn, [e for e, _f in batch], commit=True)
                else:
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
                self.batches += 1
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
