"""The audit trail: rows for reads and writes, the hash chain, concurrent writers,
tamper detection and ``mdm audit verify``."""

from __future__ import annotations

import contextvars
import os
import subprocess
import sys
import threading
import time

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from mdm.services.audit import AuditEntry, AuditWriter, append, verify_chain
from mdm.store.db import make_engine
from mdm.store.models import ApiClient, AuditLog
from tests.api.conftest import Registry


def _rows_of(engine: Engine, client: str) -> list[AuditLog]:
    with Session(engine) as session:
        return list(
            session.execute(
                select(AuditLog).where(AuditLog.actor == client).order_by(AuditLog.id)
            ).scalars()
        )


def test_reads_and_writes_are_audited_with_purpose(registry: Registry) -> None:
    cid = registry.ids["citizen"][3]
    system, key, xcid = registry.xref
    loser, survivor = registry.merged
    with registry.client("all") as c:
        h = {"X-Purpose": "case 42/2026"}
        assert c.get(f"/v1/entities/{cid}", headers=h).status_code == 200
        assert c.get(f"/v1/entities/{loser}", headers=h).status_code == 200
        assert c.get(f"/v1/xrefs/{system}/{key}", headers=h).status_code == 200
        assert c.get(f"/v1/entities/{cid}/history", headers=h).status_code == 200
        batch = {"items": [{"id": cid}, {"id": loser}]}
        assert c.post("/v1/entities:batchGet", json=batch, headers=h).status_code == 200
        reg = c.post(
            "/v1/citizen/records",
            json={
                "source_system": "audit-test",
                "source_key": "a-1",
                "attributes": {"full_name": "Đỗ Văn Hùng", "date_of_birth": "1971-07-07"},
            },
        )
        assert reg.status_code == 200, reg.text
    rows = _rows_of(registry.engine, "test-all")[-6:]
    assert [r.action for r in rows] == [
        "entity.read",
        "entity.read",
        "xref.read",
        "entity.history",
        "entity.batch_get",
        "record.register",
    ]
    assert rows[0].entity_ids == [cid]
    assert set(rows[1].entity_ids) == {survivor, loser}
    assert rows[2].entity_ids == [xcid]
    assert set(rows[4].entity_ids) == {cid, survivor, loser}
    assert rows[5].entity_ids == [reg.json()["canonical_id"]]
    assert all(r.purpose == "case 42/2026" for r in rows[:5])
    with Session(registry.engine) as session:
        client_id = session.execute(
            select(ApiClient.id).where(ApiClient.name == "test-all")
        ).scalar_one()
    assert {r.client_id for r in rows} == {client_id}
    assert all(r.actor_type == "client" and r.at is not None for r in rows)
    with registry.engine.connect() as conn:
        report = verify_chain(conn)
    assert report.ok and report.rows >= 6, report


def test_masked_reads_need_no_purpose_and_are_audited_without(registry: Registry) -> None:
    cid = registry.ids["citizen"][4]
    with registry.client("reader") as c:
        assert c.get(f"/v1/entities/{cid}").status_code == 200
    last = _rows_of(registry.engine, "test-reader")[-1]
    assert last.action == "entity.read" and last.purpose is None and last.entity_ids == [cid]


def _entry(i: int) -> AuditEntry:
    return AuditEntry("system", f"writer-{i % 3}", "test.append", [f"X-{i}"], None, {"i": i})


def test_concurrent_writers_keep_one_chain(fresh_db_url: str) -> None:
    """Several independent writers (as several API processes would be) append at
    once; the chain stays linear: every row chains onto the one before it."""
    engines = [make_engine(fresh_db_url) for _ in range(3)]
    writers = [AuditWriter(e, max_batch=7) for e in engines]
    errors: list[BaseException] = []

    def work(w: AuditWriter, base: int) -> None:
        try:
            for i in range(40):
                w.write(_entry(base + i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(writers[t % 3], t * 1000)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with engines[0].connect() as conn:
        report = verify_chain(conn)
        count = conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
    assert count == 240 and report.ok and report.rows == 240, report
    for w in writers:
        w.close()
    for e in engines:
        e.dispose()


def test_tampering_is_found_by_verify(fresh_db_url: str, backend: str) -> None:
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        append(conn, [_entry(i) for i in range(5)])
    with engine.connect() as conn:
        assert verify_chain(conn).ok
        ids = [int(i) for i in conn.execute(text("SELECT id FROM audit_log ORDER BY id")).scalars()]
    # bypass the append-only triggers, as an attacker with DDL rights would
    with engine.begin() as conn:
        if backend == "postgres":
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER trg_audit_log_append_only_UPDATE"))
        conn.execute(
            text("UPDATE audit_log SET purpose = 'rewritten' WHERE id = :id"), {"id": ids[2]}
        )
    with engine.connect() as conn:
        report = verify_chain(conn)
    assert not report.ok and report.first_broken_id == ids[2]
    env = {**os.environ, "MDM_DATABASE_URL": fresh_db_url}
    done = subprocess.run(
        [sys.executable, "-m", "mdm", "audit", "verify"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr
    assert f'"first_broken_id": {ids[2]}' in done.stdout
    engine.dispose()


def test_audit_rows_cannot_be_updated(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        append(conn, [_entry(1)])
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_log SET purpose = 'x'"))
    except Exception as exc:
        assert "append-only" in str(exc)
    else:
        raise AssertionError("the append-only trigger did not fire")
    engine.dispose()


def test_announced_requests_share_one_commit_and_a_lone_one_waits_for_none(
    fresh_db_url: str,
) -> None:
    """Group commit with announcements: rows of announced requests wait for each
    other (one transaction); a write nobody announced, and a batch whose announced
    requests all ended, are committed at once, not after the gathering window."""
    engine = make_engine(fresh_db_url)
    writer = AuditWriter(engine, gather=60.0)  # a window no test run would sit out
    try:
        lone = threading.Thread(target=writer.write, args=(_entry(0),))
        lone.start()
        lone.join(timeout=20)
        assert not lone.is_alive() and writer.batches == 1

        # An announced request alone: its own row does not wait for itself.
        alone = contextvars.copy_context()
        alone.run(writer.announce)
        single = threading.Thread(target=alone.run, args=(writer.write, _entry(10)))
        single.start()
        single.join(timeout=20)
        assert not single.is_alive() and writer.batches == 2

        contexts = [contextvars.copy_context() for _ in range(3)]
        for ctx in contexts:
            ctx.run(writer.announce)
        threads = [
            threading.Thread(target=ctx.run, args=(writer.write, _entry(i + 1)))
            for i, ctx in enumerate(contexts)
        ]
        for t in threads:
            t.start()
            time.sleep(0.2)  # the writer holds the first rows while the others come
        for t in threads:
            t.join(timeout=20)
        assert not any(t.is_alive() for t in threads)
        assert writer.batches == 3  # three rows, one commit

        # An announced request that ends without a row (an error answer) releases
        # the batch waiting for it.
        ended = contextvars.copy_context()
        announcement = ended.run(writer.announce)
        waiting = threading.Thread(target=writer.write, args=(_entry(9),))
        waiting.start()
        time.sleep(0.2)
        assert waiting.is_alive()  # held for the announced request
        announcement.close()
        waiting.join(timeout=20)
        assert not waiting.is_alive() and writer.batches == 4
        with engine.connect() as conn:
            report = verify_chain(conn)
        assert report.ok and report.rows == 6, report
    finally:
        writer.close()
        engine.dispose()
