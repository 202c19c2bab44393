"""Ingest runs (``ingest_runs``): one row per file read, its progress and counts;
and the session settings of the connection a run writes through."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, update

from mdm.store.tables import ingest_runs


def latest(
    conn: Connection,
    *,
    system_id: int,
    entity_type: str,
    sha: str,
    mapping_sha: str,
    full_snapshot: bool,
    status: str,
) -> Any:
    """(id, rows committed, counts) of the newest run of this file and mapping in
    ``status``, or ``None``."""
    return conn.execute(
        select(ingest_runs.c.id, ingest_runs.c.rows_committed, ingest_runs.c.counts)
        .where(
            ingest_runs.c.source_system_id == system_id,
            ingest_runs.c.entity_type == entity_type,
            ingest_runs.c.file_sha256 == sha,
            ingest_runs.c.mapping_sha256 == mapping_sha,
            ingest_runs.c.full_snapshot == full_snapshot,
            ingest_runs.c.status == status,
        )
        .order_by(ingest_runs.c.id.desc())
        .limit(1)
    ).first()


def start(
    conn: Connection,
    *,
    system_id: int,
    entity_type: str,
    path: Path,
    sha: str,
    mapping_sha: str,
    full_snapshot: bool,
    now: datetime,
) -> int:
    """A new ``running`` run of one file; its id."""
    run_id = conn.execute(
        insert(ingest_runs)
        .values(
            source_system_id=system_id,
            entity_type=entity_type,
            file_name=str(path),
            file_sha256=sha,
            mapping_sha256=mapping_sha,
            full_snapshot=full_snapshot,
            status="running",
            rows_committed=0,
            counts={},
            started_at=now,
        )
        .returning(ingest_runs.c.id)
    ).scalar_one()
    return int(run_id)


def record_progress(
    conn: Connection, run_id: int, rows_committed: int, counts: dict[str, Any]
) -> None:
    conn.execute(
        update(ingest_runs)
        .where(ingest_runs.c.id == run_id)
        .values(rows_committed=rows_committed, counts=counts)
    )


def complete(conn: Connection, run_id: int, counts: dict[str, Any], now: datetime) -> None:
    conn.execute(
        update(ingest_runs)
        .where(ingest_runs.c.id == run_id)
        .values(status="completed", finished_at=now, counts=counts)
    )


def counts(conn: Connection, run_id: int) -> Any:
    """The run's ``counts`` as stored (a dict, or JSON text on some drivers)."""
    return conn.execute(select(ingest_runs.c.counts).where(ingest_runs.c.id == run_id)).scalar_one()


def fail_unstarted(conn: Connection, run_id: int, error: str, now: datetime) -> None:
    """Mark a run ``failed`` if it is still ``running`` with no row committed."""
    conn.execute(
        update(ingest_runs)
        .where(
            ingest_runs.c.id == run_id,
            ingest_runs.c.status == "running",
            ingest_runs.c.rows_committed == 0,
        )
        .values(status="failed", finished_at=now, counts={"error": error})
    )


def tune_bulk_writer(conn: Connection) -> None:
    """Postgres: session settings of a bulk-load connection (commits that don't wait
    for the WAL flush, 64 MB ``work_mem``); committed. Undo with
    :func:`reset_bulk_writer` before the connection goes back to the pool."""
    conn.exec_driver_sql("SET synchronous_commit = off")
    conn.exec_driver_sql("SET work_mem = '64MB'")
    conn.commit()


def reset_bulk_writer(conn: Connection) -> None:
    conn.exec_driver_sql("RESET synchronous_commit")
    conn.exec_driver_sql("RESET work_mem")
    conn.commit()
