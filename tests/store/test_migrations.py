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


def test_0011_converts_text_blocking_keys_to_the_hash_the_code_computes(
    fresh_db_url: str,
) -> None:
    """Keys stored as text under 0010 become the hash that the writers and the
    candidate query compute (Postgres in SQL, SQLite in Python: the same values), a
    record's keys that collide on one hash become one row, and the feature rows
    stay."""
    from mdm.store.models.match import blocking_key_hash

    migrate.downgrade(fresh_db_url, "0010")  # the template database is at head
    engine = make_engine(fresh_db_url)
    keys = [
        ("citizen", "name_dob:nguyen van an|1990-05-01", 1),
        ("citizen", "pid:001090012345", 1),
        ("citizen", "name_dob:nguyen van an|1990-05-01", 2),
        ("organization", "tax:0101234567", 3),
        ("citizen", "addr:Đặng|phường Bến Nghé", 4),
    ]
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO blocking_keys (entity_type, blocking_key, source_record_id) "
                    "VALUES (:t, :k, :r)"
                ),
                [{"t": t, "k": k, "r": r} for t, k, r in keys],
            )
        migrate.upgrade(fresh_db_url)
        with engine.connect() as conn:
            stored = set(
                conn.execute(
                    text("SELECT entity_type, key_hash, source_record_id FROM blocking_keys")
                ).all()
            )
        assert stored == {(t, blocking_key_hash(t, k), r) for t, k, r in keys}
        # the same key of two records is one hash; different types hash apart
        assert blocking_key_hash("citizen", "x") != blocking_key_hash("organization", "x")
    finally:
        engine.dispose()
