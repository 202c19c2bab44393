"""The match run log after a crash (found by scripts/crash_jobs.py): a ``mdm match
run`` killed with ``kill -9`` left its ``match_runs`` row ``running`` for ever; the
next run of the same entity type and kind now marks it failed (interrupted), and on
Postgres a second run cannot start while one is alive (so that row is certainly dead).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mdm.exceptions import Conflict
from mdm.store.db import make_engine
from mdm.store.models import MatchRun
from mdm.store.repositories import matching as match_repo


def _crash(run_id: int) -> None:
    """What kill -9 does to a run: it never finishes, its session (and lock) ends."""
    held = match_repo._run_locks.pop(run_id, None)
    if held is not None:
        held[0].invalidate()
        held[0].close()


def test_a_run_killed_midway_is_marked_failed_by_the_next(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    try:
        dead = match_repo.start_run(engine, "citizen", "run", "duckdb")
        _crash(dead)
        other_kind = match_repo.start_run(engine, "citizen", "train", "duckdb")
        other_type = match_repo.start_run(engine, "dossier", "run", "duckdb")
        alive = match_repo.start_run(engine, "citizen", "run", "duckdb")
        match_repo.finish_run(engine, alive, "completed")
        with engine.connect() as conn:
            rows = {
                r.id: r for r in conn.execute(select(MatchRun.id, MatchRun.status, MatchRun.error))
            }
        assert rows[dead].status == "failed"
        assert "interrupted" in (rows[dead].error or "")
        assert rows[alive].status == "completed"
        # other kinds and entity types are not touched
        assert rows[other_kind].status == "running"
        assert rows[other_type].status == "running"
        match_repo.finish_run(engine, other_kind, "completed")
        match_repo.finish_run(engine, other_type, "completed")
    finally:
        engine.dispose()


def test_postgres_refuses_a_second_run_while_one_is_alive(backend: str, fresh_db_url: str) -> None:
    if backend != "postgres":
        pytest.skip("SQLite has no run lock (one writer; documented)")
    engine = make_engine(fresh_db_url)
    try:
        first = match_repo.start_run(engine, "citizen", "run", "duckdb")
        with pytest.raises(Conflict, match="another match run"):
            match_repo.start_run(engine, "citizen", "run", "duckdb")
        match_repo.finish_run(engine, first, "completed")
        second = match_repo.start_run(engine, "citizen", "run", "duckdb")
        match_repo.finish_run(engine, second, "completed")
        with engine.connect() as conn:
            statuses = conn.execute(
                select(MatchRun.status).where(MatchRun.id.in_([first, second]))
            ).scalars()
            assert sorted(statuses) == ["completed", "completed"]
    finally:
        engine.dispose()
