"""The database itself refuses what would break the registry's invariants."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError, IntegrityError
from sqlalchemy.orm import Session

from mdm.domain.canonical_id import new_canonical_id
from mdm.store.models import (
    AuditLog,
    Entity,
    IngestRun,
    Link,
    Redirect,
    SourceRecord,
    SourceRecordVersion,
    SourceSystem,
    utcnow,
)


def _source_record(session: Session, key: str = "K1") -> SourceRecord:
    system = SourceSystem(name=f"hn-legacy-{key}", trust={})
    session.add(system)
    session.flush()
    record = SourceRecord(source_system_id=system.id, source_key=key, entity_type="citizen")
    session.add(record)
    session.flush()
    return record


def _entity(session: Session) -> Entity:
    entity = Entity(canonical_id=new_canonical_id("citizen"), entity_type="citizen")
    session.add(entity)
    session.flush()
    return entity


def test_second_active_link_for_one_source_record_is_refused(session: Session) -> None:
    record = _source_record(session)
    first, second = _entity(session), _entity(session)
    session.add(Link(source_record_id=record.id, entity_id=first.id, method="new", created_by="t"))
    session.flush()
    session.add(
        Link(source_record_id=record.id, entity_id=second.id, method="model", created_by="t")
    )
    with pytest.raises(IntegrityError):
        session.flush()


def test_inactive_links_are_kept_as_history(session: Session) -> None:
    record = _source_record(session)
    first, second = _entity(session), _entity(session)
    session.add(
        Link(
            source_record_id=record.id,
            entity_id=first.id,
            method="new",
            created_by="t",
            active=False,
        )
    )
    session.add(
        Link(source_record_id=record.id, entity_id=second.id, method="model", created_by="t")
    )
    session.flush()
    count = session.execute(
        text("SELECT count(*) FROM links WHERE source_record_id = :r"), {"r": record.id}
    ).scalar_one()
    assert count == 2


def test_duplicate_source_record_version_is_refused(session: Session) -> None:
    record = _source_record(session)
    for _ in range(2):
        session.add(
            SourceRecordVersion(
                source_record_id=record.id, version=1, raw={}, standardized={}, content_hash="h"
            )
        )
    with pytest.raises(IntegrityError):
        session.flush()


def test_duplicate_source_key_in_one_system_is_refused(session: Session) -> None:
    record = _source_record(session)
    session.add(
        SourceRecord(
            source_system_id=record.source_system_id, source_key="K1", entity_type="citizen"
        )
    )
    with pytest.raises(IntegrityError):
        session.flush()


def test_link_to_missing_entity_is_refused(session: Session) -> None:
    record = _source_record(session)
    session.add(Link(source_record_id=record.id, entity_id=987654321, method="new", created_by="t"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_redirect_cycle_is_refused(session: Session) -> None:
    a, b = _entity(session), _entity(session)
    session.add(Redirect(from_entity_id=a.id, to_entity_id=b.id, reason="merge", created_by="t"))
    session.flush()
    session.add(Redirect(from_entity_id=b.id, to_entity_id=a.id, reason="merge", created_by="t"))
    with pytest.raises(DatabaseError, match="redirect_cycle"):
        session.flush()


def test_longer_redirect_cycle_is_refused(session: Session) -> None:
    a, b, c = _entity(session), _entity(session), _entity(session)
    session.add(Redirect(from_entity_id=a.id, to_entity_id=b.id, reason="merge", created_by="t"))
    session.flush()
    # c -> a would chain c -> a -> b; b -> c would close a -> b -> c -> ...
    session.add(Redirect(from_entity_id=b.id, to_entity_id=c.id, reason="merge", created_by="t"))
    with pytest.raises(DatabaseError, match="redirect_cycle"):
        session.flush()


def test_self_redirect_is_refused(session: Session) -> None:
    a = _entity(session)
    session.add(Redirect(from_entity_id=a.id, to_entity_id=a.id, reason="merge", created_by="t"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_flat_redirects_are_accepted_after_repointing(session: Session) -> None:
    """The merge path: a -> b exists; b merges into c: re-point a -> c, then b -> c."""
    a, b, c = _entity(session), _entity(session), _entity(session)
    session.add(Redirect(from_entity_id=a.id, to_entity_id=b.id, reason="merge", created_by="t"))
    session.flush()
    session.execute(
        text("UPDATE redirects SET to_entity_id = :c WHERE to_entity_id = :b"),
        {"b": b.id, "c": c.id},
    )
    session.add(Redirect(from_entity_id=b.id, to_entity_id=c.id, reason="merge", created_by="t"))
    session.flush()
    targets = session.execute(text("SELECT DISTINCT to_entity_id FROM redirects")).scalars().all()
    assert targets == [c.id]


def test_audit_log_is_append_only(session: Session) -> None:
    session.add(
        AuditLog(
            actor_type="system", actor="t", action="test", prev_hash="0" * 64, row_hash="1" * 64
        )
    )
    session.flush()
    for statement in ("UPDATE audit_log SET action = 'edited'", "DELETE FROM audit_log"):
        with pytest.raises(DatabaseError, match="append-only"), session.begin_nested():
            session.execute(text(statement))


def test_entity_status_is_checked(session: Session) -> None:
    session.add(
        Entity(canonical_id=new_canonical_id("citizen"), entity_type="citizen", status="gone")
    )
    with pytest.raises(IntegrityError):
        session.flush()


def _run(session: Session, system_id: int) -> IngestRun:
    run = IngestRun(
        source_system_id=system_id,
        entity_type="citizen",
        file_name="f.csv",
        file_sha256="0" * 64,
        mapping_sha256="0" * 64,
    )
    session.add(run)
    session.flush()
    return run


def _refused(session: Session, statement: str, **params: object) -> None:
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(text(statement), params)


def test_the_source_stores_references_are_enforced(session: Session) -> None:
    """Each reference of a source record and its versions is refused when it points
    nowhere, and its target cannot go while it is referenced (Postgres checks these
    per statement since migration 0012, SQLite with its declared foreign keys)."""
    record = _source_record(session)
    run = _run(session, record.source_system_id)
    session.execute(
        text(
            "INSERT INTO source_record_versions (source_record_id, version, raw, standardized,"
            " issues, content_hash, ingest_run_id, received_at) VALUES (:r, 1, '{}', '{}',"
            " '[]', 'h', :run, CURRENT_TIMESTAMP)"
        ),
        {"r": record.id, "run": run.id},
    )
    version = (
        "INSERT INTO source_record_versions (source_record_id, version, raw, standardized, "
        "issues, content_hash, ingest_run_id, received_at) VALUES (:r, :v, '{}', '{}', '[]', "
        "'h', :run, CURRENT_TIMESTAMP)"
    )
    _refused(session, version, r=987654321, v=1, run=run.id)
    _refused(session, version, r=record.id, v=2, run=987654321)
    with session.begin_nested():  # a null run (a registration through the API) is fine
        session.execute(text(version), {"r": record.id, "v": 2, "run": None})
    _refused(
        session,
        "INSERT INTO source_records (source_system_id, source_key, entity_type, "
        "current_version, status, first_seen_at, updated_at) VALUES (987654321, 'K2', "
        "'citizen', 1, 'active', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    )
    _refused(session, "UPDATE source_records SET last_ingest_run_id = 987654321")
    _refused(session, "UPDATE source_records SET source_system_id = 987654321")
    _refused(session, "DELETE FROM source_records WHERE id = :r", r=record.id)
    _refused(session, "DELETE FROM ingest_runs WHERE id = :run", run=run.id)
    _refused(session, "UPDATE source_records SET id = id + 1000")
    if session.get_bind().dialect.name == "postgresql":
        _refused(session, "TRUNCATE ingest_runs CASCADE")  # versions keep their run
        _refused(session, "UPDATE ingest_runs SET id = id + 1000")
        with session.begin_nested():  # emptied together, nothing dangles
            session.execute(text("TRUNCATE source_records, source_record_versions CASCADE"))
    counts = session.execute(
        text("SELECT count(*), count(ingest_run_id) FROM source_record_versions")
    ).one()
    if session.get_bind().dialect.name != "postgresql":
        assert tuple(counts) == (2, 1)


def test_a_batch_with_a_dangling_version_is_refused_as_a_whole(session: Session) -> None:
    """The bulk path of ingest (COPY on Postgres, executemany on SQLite): one version
    pointing nowhere refuses the whole batch (on Postgres naming the missing key), and
    none of its good rows is kept."""
    import psycopg

    from mdm.store.repositories import source_records as repo

    postgres = session.get_bind().dialect.name == "postgresql"
    record = _source_record(session)
    run = _run(session, record.source_system_id)
    conn = session.connection()
    payload = repo.version_payload(b"{}", b"{}", b"[]", "h", copy_format=postgres)
    with (
        pytest.raises((IntegrityError, psycopg.IntegrityError)) as refused,
        conn.begin_nested(),
    ):
        repo.insert_versions(
            conn,
            [(record.id, 1, payload, "h"), (987654321, 1, payload, "h")],
            run.id,
            utcnow(),
            copy_format=postgres,
        )
    if postgres:
        assert "(source_record_id)=(987654321)" in str(refused.value)
    assert session.execute(text("SELECT count(*) FROM source_record_versions")).scalar() == 0
    repo.insert_versions(
        conn, [(record.id, 1, payload, "h")], run.id, utcnow(), copy_format=postgres
    )
    assert session.execute(text("SELECT count(*) FROM source_record_versions")).scalar() == 1


def test_the_identity_and_audit_references_are_enforced(session: Session) -> None:
    """The references the identity step writes with COPY (an entity's versions, links
    and events) and the audit trail's client: each refused when it points nowhere,
    and a referenced entity or record cannot go."""
    record = _source_record(session)
    entity = _entity(session)
    session.add(Link(source_record_id=record.id, entity_id=entity.id, method="new", created_by="t"))
    session.flush()
    missing = 987654321
    _refused(
        session,
        "INSERT INTO links (source_record_id, entity_id, method, created_by, active, "
        "created_at) VALUES (:r, :e, 'new', 't', false, CURRENT_TIMESTAMP)",
        r=missing,
        e=entity.id,
    )
    _refused(
        session,
        "INSERT INTO entity_versions (entity_id, version, status, attributes, provenance, "
        "change, changed_by, valid_from) VALUES (:e, 1, 'active', '{}', '{}', 'created', "
        "'t', CURRENT_TIMESTAMP)",
        e=missing,
    )
    _refused(
        session,
        "INSERT INTO outbox_events (event_id, entity_id, canonical_id, entity_type, "
        "event_type, sequence, payload, created_at) VALUES ('e-1', :e, 'X', 'citizen', "
        "'entity.created', 1, '{}', CURRENT_TIMESTAMP)",
        e=missing,
    )
    _refused(
        session,
        "INSERT INTO audit_log (at, actor_type, actor, action, entity_ids, details, "
        "client_id, prev_hash, row_hash) VALUES (CURRENT_TIMESTAMP, 'client', 'c', 'read', "
        "'[]', '{}', :c, :h, :h)",
        c=missing,
        h="0" * 64,
    )
    _refused(session, "UPDATE links SET entity_id = :e", e=missing)
    _refused(session, "DELETE FROM entities WHERE id = :e", e=entity.id)
    _refused(session, "DELETE FROM source_records WHERE id = :r", r=record.id)
    # what the references allow still goes through
    with session.begin_nested():
        session.execute(
            text(
                "INSERT INTO entity_versions (entity_id, version, status, attributes, "
                "provenance, change, changed_by, valid_from) VALUES (:e, 1, 'active', '{}', "
                "'{}', 'created', 't', CURRENT_TIMESTAMP)"
            ),
            {"e": entity.id},
        )
    assert session.execute(text("SELECT count(*) FROM entity_versions")).scalar() == 1
