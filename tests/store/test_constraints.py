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
    Link,
    Redirect,
    SourceRecord,
    SourceRecordVersion,
    SourceSystem,
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
