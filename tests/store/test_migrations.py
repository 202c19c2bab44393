"""One migration chain for both databases: up, down, up again, and no drift."""

from __future__ import annotations

import json

from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from mdm.services.clients import list_clients
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


def test_0015_binds_existing_clients_to_the_source_systems_they_wrote(
    fresh_db_url: str,
) -> None:
    """Clients existing before 0015 may write the source systems their committed
    registrations (``record.register`` audit rows) named, and nothing else: a reader,
    a writer that never wrote, another client's system, a system only read (an
    ``xref.read`` row) and a registration without a client give no binding."""
    migrate.downgrade(fresh_db_url, "0014")  # the template database is at head
    engine = make_engine(fresh_db_url)
    at = "2026-12-01 10:00:00"
    clients = {1: "writer", 2: "other-writer", 3: "never-wrote", 4: "reader"}
    systems = {1: "hn-legacy", 2: "national-portal", 3: "hcm-legacy", 4: "dn-legacy"}
    audit = [
        # (client_id, action, source system named in details)
        (1, "record.register", "hn-legacy"),
        (1, "record.register", "hn-legacy"),  # twice: one binding
        (1, "record.register", "national-portal"),
        (1, "xref.read", "hcm-legacy"),  # read, not written
        (2, "record.register", "hcm-legacy"),
        (4, "entity.read", None),
        (None, "record.register", "dn-legacy"),  # no client (the CLI)
    ]
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO api_clients (id, name, key_prefix, key_hash, scopes, "
                    "rate_limit_per_minute, created_at) VALUES (:i, :n, :p, 'sha256:x', "
                    "'[\"citizen:write\"]', 60, :at)"
                ),
                [{"i": i, "n": n, "p": f"{i:08x}", "at": at} for i, n in clients.items()],
            )
            conn.execute(
                text(
                    "INSERT INTO source_systems (id, name, trust, created_at) "
                    "VALUES (:i, :n, '{}', :at)"
                ),
                [{"i": i, "n": n, "at": at} for i, n in systems.items()],
            )
            conn.execute(
                text(
                    "INSERT INTO audit_log (at, actor_type, actor, action, entity_ids, "
                    "details, client_id, prev_hash, row_hash) VALUES (:at, 'client', 'a', "
                    ":action, '[]', :details, :client, :h, :h)"
                ),
                [
                    {
                        "at": at,
                        "action": action,
                        "details": json.dumps({} if s is None else {"source_system": s}),
                        "client": client,
                        "h": f"{n:064x}",
                    }
                    for n, (client, action, s) in enumerate(audit)
                ],
            )
        migrate.upgrade(fresh_db_url)
        with engine.connect() as conn:
            bound = set(
                conn.execute(
                    text(
                        "SELECT c.name, s.name FROM api_client_source_systems b "
                        "JOIN api_clients c ON c.id = b.client_id "
                        "JOIN source_systems s ON s.id = b.source_system_id"
                    )
                ).all()
            )
        assert bound == {
            ("writer", "hn-legacy"),
            ("writer", "national-portal"),
            ("other-writer", "hcm-legacy"),
        }
        with Session(engine) as session:
            by_name = {c.name: c.source_systems for c in list_clients(session)}
        assert by_name["never-wrote"] == frozenset() and by_name["reader"] == frozenset()
        migrate.downgrade(fresh_db_url, "0014")
        assert "api_client_source_systems" not in _tables(fresh_db_url)
        migrate.upgrade(fresh_db_url)  # and again, from the same trail
        with Session(engine) as session:
            by_name = {c.name: c.source_systems for c in list_clients(session)}
        assert by_name["writer"] == {"hn-legacy", "national-portal"}
    finally:
        engine.dispose()
