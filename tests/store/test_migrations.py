"""One migration chain for both databases: up, down, up again, and no drift."""

from __future__ import annotations

from sqlalchemy import inspect, text

from mdm.store import migrate
from mdm.store.db import make_engine
from mdm.store.models import Base


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_round_trip_and_no_drift(fresh_db_url: str) -> None:
    assert migrate.current(fresh_db_url) is not None
    assert _tables(fresh_db_url) == set(Base.metadata.tables)
    ok, message = migrate.check(fresh_db_url)
    assert ok, message

    migrate.downgrade(fresh_db_url, "base")
    assert migrate.current(fresh_db_url) is None
    assert _tables(fresh_db_url) == set()

    migrate.upgrade(fresh_db_url)
    assert _tables(fresh_db_url) == set(Base.metadata.tables)
    ok, message = migrate.check(fresh_db_url)
    assert ok, message


def test_check_reports_drift(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_entities_entity_type_status"))
    engine.dispose()
    ok, message = migrate.check(fresh_db_url)
    assert not ok
    assert "ix_entities_entity_type_status" in message
