"""Write units of work on SQLite take the write lock up front."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from mdm.store import migrate
from mdm.store.db import make_engine, unit_of_work
from mdm.store.models import SourceSystem


def _read_then_write_while_another_commits(url: str, *, write: bool) -> int:
    """Read, let another connection insert and commit, then write; returns the rows."""
    engine = make_engine(url)
    factory = sessionmaker(engine)
    other_done = threading.Event()

    def other() -> None:
        with engine.begin() as conn:
            conn.execute(SourceSystem.__table__.insert().values(name="other", trust={}))
        other_done.set()

    try:
        with unit_of_work(factory, write=write) as session:
            session.execute(select(func.count()).select_from(SourceSystem)).scalar_one()
            thread = threading.Thread(target=other)
            thread.start()
            # A deferred transaction lets the other writer commit now; an immediate one
            # makes it wait for this unit of work.
            other_done.wait(timeout=2)
            session.add(SourceSystem(name="mine", trust={}))
            session.flush()
        thread.join(timeout=30)
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(SourceSystem)).scalar_one())
    finally:
        engine.dispose()


def test_write_unit_of_work_survives_a_commit_in_between(fresh_db_url: str, backend: str) -> None:
    migrate.upgrade(fresh_db_url)
    assert _read_then_write_while_another_commits(fresh_db_url, write=True) == 2


def test_deferred_read_then_write_fails_on_sqlite(tmp_path: Path) -> None:
    """Why ``write=True`` exists: without it SQLite refuses the late write at once
    (SQLite only: Postgres has no such failure)."""
    url = f"sqlite:///{tmp_path / 'deferred.db'}"
    migrate.upgrade(url)
    with pytest.raises(OperationalError, match="locked"):
        _read_then_write_while_another_commits(url, write=False)
