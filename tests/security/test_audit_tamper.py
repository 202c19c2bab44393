"""The audit trail is append-only and tamper-evident, on both databases.

The database refuses UPDATE, DELETE and (Postgres, migration 0008) TRUNCATE of
``audit_log``: rewriting the trail needs DDL (disabling or dropping the triggers),
which the application's role should not have. These tests play that attacker, so
they disable the triggers first; ``mdm audit verify`` must then name the first row
that no longer fits the hash chain, whether a row was edited, deleted or inserted.

Limits (the chain has no secret): whoever holds DDL rights and knows the algorithm
can delete the newest rows or append well-formed forged ones without breaking the
chain. Shipping the chain head elsewhere (a log sink) closes that; not done here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text

from mdm.services.audit import AuditEntry, append, verify_chain
from mdm.store.db import make_engine


def _entry(i: int) -> AuditEntry:
    return AuditEntry(
        actor_type="client",
        actor="tamper-test",
        action="entity.read",
        entity_ids=[f"P-{i}"],
        purpose=f"purpose {i}",
        details={"i": i},
    )


@pytest.fixture
def chain(fresh_db_url: str) -> Iterator[tuple[Engine, list[int]]]:
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        append(conn, [_entry(i) for i in range(6)])
    with engine.connect() as conn:
        assert verify_chain(conn).ok
        ids = [int(i) for i in conn.execute(text("SELECT id FROM audit_log ORDER BY id")).scalars()]
    yield engine, ids
    engine.dispose()


def _disable_guards(conn: Connection, backend: str) -> None:
    """What an attacker with DDL rights would do first."""
    if backend == "postgres":
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
    else:
        conn.execute(text("DROP TRIGGER trg_audit_log_append_only_UPDATE"))
        conn.execute(text("DROP TRIGGER trg_audit_log_append_only_DELETE"))


def _verify_cli(url: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "mdm", "audit", "verify"],
        env={**os.environ, "MDM_DATABASE_URL": url},
        capture_output=True,
        text=True,
    )
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET purpose = 'rewritten'",
        "DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
)
def test_the_database_refuses_rewriting_the_trail(
    chain: tuple[Engine, list[int]], backend: str, statement: str
) -> None:
    engine, ids = chain
    if statement.startswith("TRUNCATE") and backend == "sqlite":
        pytest.skip("SQLite has no TRUNCATE (DELETE is covered)")
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
    with engine.connect() as conn:
        report = verify_chain(conn)
        assert report.ok and report.rows == len(ids)


def test_an_edited_row_is_found(chain: tuple[Engine, list[int]], backend: str) -> None:
    engine, ids = chain
    with engine.begin() as conn:
        _disable_guards(conn, backend)
        conn.execute(
            text("UPDATE audit_log SET entity_ids = :v WHERE id = :id"),
            {"v": json.dumps(["P-someone-else"]), "id": ids[3]},
        )
    code, report = _verify_cli(str(engine.url.render_as_string(hide_password=False)))
    assert code == 1 and report["first_broken_id"] == ids[3], report


def test_a_deleted_row_is_found(chain: tuple[Engine, list[int]], backend: str) -> None:
    engine, ids = chain
    with engine.begin() as conn:
        _disable_guards(conn, backend)
        conn.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": ids[2]})
    code, report = _verify_cli(str(engine.url.render_as_string(hide_password=False)))
    # the row after the gap no longer points at its predecessor
    assert code == 1 and report["first_broken_id"] == ids[3], report


_COPY = (
    "INSERT INTO audit_log (id, at, actor_type, actor, action, entity_ids, purpose, "
    "details, client_id, prev_hash, row_hash) SELECT :new, at, actor_type, actor, "
    "action, entity_ids, 'forged', details, client_id, prev_hash, row_hash "
    "FROM audit_log WHERE id = :src"
)


def test_an_appended_forged_row_is_found(chain: tuple[Engine, list[int]]) -> None:
    engine, ids = chain
    # INSERT is what the trail allows: no trigger to disable. A row copying a real
    # row's hashes with other content, appended at the end:
    with engine.begin() as conn:
        conn.execute(text(_COPY), {"new": ids[-1] + 1, "src": ids[2]})
    code, report = _verify_cli(str(engine.url.render_as_string(hide_password=False)))
    assert code == 1 and report["first_broken_id"] == ids[-1] + 1, report


def test_a_row_inserted_before_the_first_is_found(chain: tuple[Engine, list[int]]) -> None:
    engine, ids = chain
    with engine.begin() as conn:
        conn.execute(text(_COPY), {"new": ids[0] - 1, "src": ids[0]})
    code, report = _verify_cli(str(engine.url.render_as_string(hide_password=False)))
    assert code == 1 and report["first_broken_id"] == ids[0] - 1, report
