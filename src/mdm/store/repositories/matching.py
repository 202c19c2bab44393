"""SQL of matching besides the candidate index and the review queue: the run log
(``match_runs``, one run per entity type and kind at a time on Postgres), and what
matching reads of stewards' decisions and of records' entities.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, or_, select, true, update
from sqlalchemy.orm import Session

from mdm.exceptions import Conflict
from mdm.store.repositories import locks, lookup
from mdm.store.tables import decisions, entities, links, match_runs, records

_IN_BATCH = 900  # bound-parameter lists stay far below SQLite's limit


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(items: Sequence[Any], size: int = _IN_BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ------------------------------------------------------------------ the run log


_run_locks: dict[int, tuple[Connection, str]] = {}


def start_run(engine: Engine, entity_type: str, kind: str, backend: str) -> int:
    """Log a new run. A run that a crash (``kill -9``, a power cut) left ``running``
    can never finish: the next run of the same entity type and kind marks it
    ``failed`` (interrupted), so the log never shows a dead run as running.

    On Postgres one run per (entity type, kind) at a time (a session advisory lock,
    released by :func:`finish_run`; the server drops it with a dead client's
    session), so a ``running`` row found here is certainly dead. SQLite has no such
    lock: do not start two runs of one entity type at once.
    """
    lock = None
    name = f"mdm-match:{kind}:{entity_type}"
    if engine.dialect.name == "postgresql":
        lock = locks.try_session_lock(engine, name)
        if lock is None:
            raise Conflict(f"another match {kind} of {entity_type!r} is running; try again later")
    try:
        with engine.begin() as conn:
            conn.execute(
                update(match_runs)
                .where(
                    match_runs.c.entity_type == entity_type,
                    match_runs.c.kind == kind,
                    match_runs.c.status == "running",
                )
                .values(
                    status="failed",
                    finished_at=_now(),
                    error="interrupted (found unfinished when the next run started)",
                )
            )
            run_id = int(
                conn.execute(
                    insert(match_runs)
                    .values(
                        entity_type=entity_type,
                        kind=kind,
                        backend=backend,
                        status="running",
                        started_at=_now(),
                        counts={},
                    )
                    .returning(match_runs.c.id)
                ).scalar_one()
            )
    except BaseException:
        if lock is not None:
            locks.release_session_lock(lock, name)
        raise
    if lock is not None:
        _run_locks[run_id] = (lock, name)
    return run_id


def finish_run(engine: Engine, run_id: int, status: str, **values: Any) -> None:
    try:
        with engine.begin() as conn:
            conn.execute(
                update(match_runs)
                .where(match_runs.c.id == run_id)
                .values(status=status, finished_at=_now(), **values)
            )
    finally:
        held = _run_locks.pop(run_id, None)
        if held is not None:
            # given back explicitly: closing the session alone releases it only when
            # the server gets round to ending that backend
            locks.release_session_lock(*held)


_LATEST_TF_HASH = (
    select(match_runs.c.tf_hash)
    .where(
        match_runs.c.entity_type == bindparam("entity_type"),
        match_runs.c.kind == "run",
        match_runs.c.status == "completed",
    )
    .order_by(match_runs.c.id.desc())
    .limit(1)
)


def latest_tf_hash(db: Session | Connection, entity_type: str) -> str | None:
    """The term frequencies' hash of the last completed batch run. On a bare
    connection (the API's search) one prebuilt statement on the driver, in
    autocommit when no transaction is open: the check runs on every search, and
    through the ORM it cost a transaction (BEGIN, the query, ROLLBACK)."""
    params = {"entity_type": entity_type}
    if isinstance(db, Connection):
        row = lookup.first_row(db, _LATEST_TF_HASH, params)
        return row[0] if row is not None else None
    return db.execute(_LATEST_TF_HASH, params).scalar()


# ------------------------------------------------- stewards' decisions, entities


def steward_pairs(conn: Connection, entity_type: str) -> tuple[list[tuple[int, int]], ...]:
    """Active must-link and cannot-link pairs whose two records are both active."""
    left = records.alias("l")
    right = records.alias("r")
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


def steward_partners(session: Session, record_id: int) -> tuple[set[int], set[int]]:
    """The records an active steward decision must-links and cannot-links to this one."""
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


def entities_of(session: Session, record_ids: Iterable[int]) -> dict[int, tuple[int, str]]:
    """Per record with an active link: its entity's id and canonical ID."""
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
