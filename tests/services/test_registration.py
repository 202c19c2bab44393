"""Real-time registration of one source record, on SQLite and Postgres.

A small citizen model is trained once (on the matching tests' synthetic data) into a
temporary rules directory; every test registers into a fresh database of its own
through :func:`register_with_retry` (its own transactions, as the API does), so that
commits, rejects kept after a rollback and concurrent writers are real.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from mdm.exceptions import (
    IdempotencyKeyReused,
    MatchingUnavailable,
    RecordRejected,
    SourceKeyTypeMismatch,
    UnknownEntityType,
    UnknownSourceSystem,
)
from mdm.services import matching as matching_svc
from mdm.services.registration import (
    RegistrationResult,
    purge_idempotency_keys,
    register_record,
    register_with_retry,
)
from mdm.services.resolve import rebuild
from mdm.store.db import make_engine, unit_of_work
from mdm.store.models import (
    Entity,
    EntityVersion,
    IdempotencyKey,
    Link,
    MatchCandidate,
    MatchFeatures,
    OutboxEvent,
    Reject,
    SourceRecord,
    SourceRecordVersion,
    SourceSystem,
    utcnow,
)
from tests.matching.synthetic import trained_citizen_rules

AN = {
    "full_name": "Nguyễn Văn An",
    "date_of_birth": "1985-03-12",
    "sex": "nam",
    "personal_id": "001085012345",
    "phone": "0912345678",
    "permanent_address": "12 Hàng Bạc, phường Hoàn Kiếm, Hà Nội",
}
# The same name at the same address, no birth date and no ID: could be An, his
# father or his son (the rules never auto-link a pair without a birth year on both
# sides), so a steward decides.
AN_MAYBE = {
    "full_name": "Nguyễn Văn An",
    "sex": "nam",
    "permanent_address": "12 Hàng Bạc, phường Hoàn Kiếm, Hà Nội",
}
BINH = {
    "full_name": "Trần Thị Bình",
    "date_of_birth": "1972-11-30",
    "sex": "nữ",
    "personal_id": "079172654321",
    "phone": "0987654321",
}


@pytest.fixture(scope="session")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The shipped citizen rules (smaller training samples) and a model trained on
    synthetic standardized citizens, as ``mdm match train`` would save it."""
    tmp = tmp_path_factory.mktemp("registration-rules")
    yield trained_citizen_rules(tmp)
    matching_svc.clear_cache()


@pytest.fixture
def db(fresh_db_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_db_url, pool_size=24, max_overflow=8)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(db: Engine) -> sessionmaker[Session]:
    return sessionmaker(db, expire_on_commit=False)


def _register(
    factory: sessionmaker[Session],
    rules_dir: Path,
    system: str,
    key: str,
    attributes: dict[str, Any],
    **options: Any,
) -> RegistrationResult:
    return register_with_retry(
        factory, "citizen", system, key, attributes, rules_dir=rules_dir, **options
    )


def _count(engine: Engine, model: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def _events(engine: Engine, canonical_id: str) -> list[tuple[str, int, dict[str, Any]]]:
    with engine.connect() as conn:
        return [
            (str(t), int(s), dict(p))
            for t, s, p in conn.execute(
                select(OutboxEvent.event_type, OutboxEvent.sequence, OutboxEvent.payload)
                .where(OutboxEvent.canonical_id == canonical_id)
                .order_by(OutboxEvent.position)
            )
        ]


def _entity(engine: Engine, canonical_id: str) -> tuple[int, int, dict[str, Any]]:
    with engine.connect() as conn:
        eid, version, attributes = conn.execute(
            select(Entity.id, Entity.version, Entity.attributes).where(
                Entity.canonical_id == canonical_id
            )
        ).one()
    return int(eid), int(version), dict(attributes)


def _assert_one_active_link_each(engine: Engine) -> None:
    """Invariant 1: every active source record has exactly one active link, to an
    active entity."""
    with engine.connect() as conn:
        records = {
            int(r)
            for r in conn.execute(
                select(SourceRecord.id).where(SourceRecord.status == "active")
            ).scalars()
        }
        linked = conn.execute(
            select(Link.source_record_id, Entity.status)
            .join(Entity, Entity.id == Link.entity_id)
            .where(Link.active.is_(True))
        ).all()
    ids = [int(r) for r, _ in linked]
    assert sorted(ids) == sorted(records)
    assert {s for _, s in linked} <= {"active"}
    with Session(engine) as session:  # invariant 6: golden records rebuild the same
        report = rebuild(session, "citizen")
    assert report.ok, report.as_dict()


# ------------------------------------------------------------------ one record


def test_a_new_record_creates_an_entity_and_its_event(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    result = _register(factory, rules_dir, "hn-portal", "A-1", AN)
    assert result.decision == "created"
    assert (result.changed, result.replayed, result.record_version) == (True, False, 1)
    assert result.canonical_id.startswith("P-")
    _eid, version, attributes = _entity(db, result.canonical_id)
    assert version == 1 and attributes["personal_id"] == "001085012345"
    assert [(t, s) for t, s, _ in _events(db, result.canonical_id)] == [("entity.created", 1)]
    assert _count(db, SourceRecordVersion) == 1
    assert _count(db, MatchFeatures, MatchFeatures.source_record_id == result.source_record_id)
    with db.connect() as conn:
        system = conn.execute(select(SourceSystem.trust).where(SourceSystem.name == "hn-portal"))
        assert system.scalar_one() == {}  # created on first use, default trust
    _assert_one_active_link_each(db)


def test_the_same_payload_again_changes_nothing(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    first = _register(factory, rules_dir, "hn-portal", "A-1", AN)
    again = _register(factory, rules_dir, "hn-portal", "A-1", dict(AN))
    assert again.canonical_id == first.canonical_id
    assert (again.decision, again.changed, again.record_version) == ("linked", False, 1)
    assert _count(db, SourceRecordVersion) == 1
    assert _entity(db, first.canonical_id)[1] == 1
    assert len(_events(db, first.canonical_id)) == 1


def test_a_changed_payload_is_a_new_version_and_an_update_event(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    first = _register(factory, rules_dir, "hn-portal", "A-1", AN)
    moved = _register(factory, rules_dir, "hn-portal", "A-1", {**AN, "phone": "0933111222"})
    assert moved.canonical_id == first.canonical_id
    assert (moved.decision, moved.changed, moved.record_version) == ("linked", True, 2)
    assert _count(db, SourceRecordVersion) == 2
    _eid, version, attributes = _entity(db, first.canonical_id)
    assert version == 2 and attributes["phone"] == "+84933111222"
    events = _events(db, first.canonical_id)
    assert [(t, s) for t, s, _ in events] == [("entity.created", 1), ("entity.updated", 2)]
    assert "phone" in events[-1][2]["data"]["changed"]
    with db.connect() as conn:
        current = conn.execute(select(SourceRecord.current_version)).scalar_one()
        feature_version = conn.execute(select(MatchFeatures.record_version)).scalar_one()
    assert current == feature_version == 2
    _assert_one_active_link_each(db)


def test_a_second_source_with_the_same_person_links_to_the_same_id(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    first = _register(factory, rules_dir, "hn-portal", "A-1", AN)
    # another system: same personal ID and birth date, name without diacritics, no phone
    other = {
        "full_name": "Nguyen Van An",
        "date_of_birth": "12/03/1985",
        "sex": "Nam",
        "personal_id": "001085012345",
    }
    second = _register(factory, rules_dir, "bhxh", "998877", other)
    assert second.decision == "linked"
    assert second.canonical_id == first.canonical_id
    assert second.candidates and second.candidates[0].canonical_id == first.canonical_id
    assert second.candidates[0].weights["personal_id"] > 0
    eid, version, _ = _entity(db, first.canonical_id)
    assert _count(db, Link, Link.entity_id == eid, Link.active.is_(True)) == 2
    assert _count(db, Entity) == 1
    assert version == 2
    assert [t for t, _, _ in _events(db, first.canonical_id)] == [
        "entity.created",
        "entity.updated",
    ]
    with db.connect() as conn:
        method = conn.execute(
            select(Link.method).where(Link.source_record_id == second.source_record_id)
        ).scalar_one()
    assert method in ("rule", "model")
    _assert_one_active_link_each(db)


def test_a_review_band_record_gets_an_entity_and_pending_candidates(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    first = _register(factory, rules_dir, "hn-portal", "A-1", AN)
    maybe = _register(factory, rules_dir, "nd-legacy", "ND-77", AN_MAYBE)
    assert maybe.decision == "review"
    assert maybe.canonical_id != first.canonical_id  # an entity of its own meanwhile
    assert maybe.reason
    (cand,) = maybe.candidates
    assert cand.canonical_id == first.canonical_id and cand.decision == "review"
    assert cand.match_probability is not None and cand.match_probability > 0.5
    assert cand.weights["name"] > 0
    with db.connect() as conn:
        pending = conn.execute(
            select(
                MatchCandidate.left_record_id,
                MatchCandidate.right_record_id,
                MatchCandidate.status,
                MatchCandidate.weights,
            )
        ).all()
    assert [(a, b, s) for a, b, s, _ in pending] == [
        (first.source_record_id, maybe.source_record_id, "pending")
    ]
    assert pending[0][3]["name"] == pytest.approx(cand.weights["name"])
    assert [t for t, _, _ in _events(db, maybe.canonical_id)] == ["entity.created"]
    assert _count(db, Entity) == 2
    _assert_one_active_link_each(db)


def test_an_updated_record_that_now_matches_elsewhere_keeps_its_entity(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    an = _register(factory, rules_dir, "hn-portal", "A-1", AN)
    binh = _register(factory, rules_dir, "nd-legacy", "B-1", BINH)
    assert binh.decision == "created"
    # the legacy system now sends An's data under Binh's key: a steward must decide
    turned = _register(factory, rules_dir, "nd-legacy", "B-1", {**AN, "phone": None})
    assert turned.decision == "review"
    assert turned.canonical_id == binh.canonical_id
    assert turned.record_version == 2
    assert any(c.canonical_id == an.canonical_id for c in turned.candidates)
    with db.connect() as conn:
        status = conn.execute(
            select(MatchCandidate.status).where(
                MatchCandidate.left_record_id == an.source_record_id,
                MatchCandidate.right_record_id == binh.source_record_id,
            )
        ).scalar_one()
        entity_of = conn.execute(
            select(Entity.canonical_id)
            .join(Link, Link.entity_id == Entity.id)
            .where(Link.source_record_id == binh.source_record_id, Link.active.is_(True))
        ).scalar_one()
    assert status == "pending"
    assert entity_of == binh.canonical_id
    _assert_one_active_link_each(db)


def test_a_pending_pair_the_new_version_no_longer_supports_is_superseded(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    _register(factory, rules_dir, "hn-portal", "A-1", AN)
    maybe = _register(factory, rules_dir, "nd-legacy", "ND-77", AN_MAYBE)
    assert maybe.decision == "review"
    clarified = _register(factory, rules_dir, "nd-legacy", "ND-77", BINH)
    assert clarified.decision == "linked" and clarified.canonical_id == maybe.canonical_id
    with db.connect() as conn:
        assert conn.execute(select(MatchCandidate.status)).scalars().all() == ["superseded"]


def test_a_decided_candidate_is_not_reopened(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    _register(factory, rules_dir, "hn-portal", "A-1", AN)
    _register(factory, rules_dir, "nd-legacy", "ND-77", AN_MAYBE)
    with db.begin() as conn:
        conn.execute(update(MatchCandidate).values(status="rejected", decided_by="steward:t"))
    again = _register(factory, rules_dir, "nd-legacy", "ND-77", {**AN_MAYBE, "sex": "Nam "})
    assert again.changed and again.record_version == 2
    assert _count(db, MatchCandidate, MatchCandidate.status == "pending") == 0


def test_a_batch_run_after_registrations_keeps_their_ids(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    an = _register(factory, rules_dir, "hn-portal", "A-1", AN)
    _register(factory, rules_dir, "bhxh", "998877", {**AN, "phone": None})
    binh = _register(factory, rules_dir, "nd-legacy", "B-1", BINH)
    summary = matching_svc.run_batch(db, "citizen", rules_dir=rules_dir, threads=1)
    assert summary.identity["entities_created"] == 0
    assert summary.identity["entities_merged"] == 0
    assert _count(db, Entity) == 2
    assert _entity(db, an.canonical_id)[1] == 2  # nothing to change
    assert _entity(db, binh.canonical_id)[1] == 1
    _assert_one_active_link_each(db)


# ------------------------------------------------------------------ idempotency


def test_an_idempotency_key_replays_the_first_answer(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    first = _register(factory, rules_dir, "hn-portal", "A-1", AN, idempotency_key="req-1")
    versions, events = _count(db, EntityVersion), _count(db, OutboxEvent)
    replay = _register(factory, rules_dir, "hn-portal", "A-1", dict(AN), idempotency_key="req-1")
    assert replay.replayed and not first.replayed
    assert replay.as_dict() == {**first.as_dict(), "replayed": True}
    assert (_count(db, EntityVersion), _count(db, OutboxEvent)) == (versions, events)
    assert _count(db, IdempotencyKey) == 1


def test_an_idempotency_key_reused_for_another_request_is_a_conflict(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    _register(factory, rules_dir, "hn-portal", "A-1", AN, idempotency_key="req-1")
    with pytest.raises(IdempotencyKeyReused) as info:
        _register(
            factory, rules_dir, "hn-portal", "A-1", {**AN, "phone": None}, idempotency_key="req-1"
        )
    assert info.value.status_code == 409 and info.value.code == "idempotency_key_reused"
    assert _count(db, SourceRecordVersion) == 1
    # once expired, the key may be used again; purge removes expired keys
    with db.begin() as conn:
        conn.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(days=2)))
    later = _register(
        factory, rules_dir, "hn-portal", "A-1", {**AN, "phone": None}, idempotency_key="req-1"
    )
    assert later.record_version == 2 and not later.replayed
    with db.begin() as conn:
        conn.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(days=2)))
    with unit_of_work(factory) as session:
        assert purge_idempotency_keys(session) == 1
    assert _count(db, IdempotencyKey) == 0


def test_on_result_runs_in_the_registration_transaction(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    seen: list[str] = []

    def fail(session: Session, result: RegistrationResult) -> None:
        seen.append(result.canonical_id)
        raise RuntimeError("audit failed")

    with pytest.raises(RuntimeError):
        _register(factory, rules_dir, "hn-portal", "A-1", AN, on_result=fail)
    assert len(seen) == 1
    assert _count(db, SourceRecord) == 0 and _count(db, OutboxEvent) == 0


def test_register_record_only_flushes_in_the_callers_transaction(
    session: Session, rules_dir: Path
) -> None:
    result = register_record(session, "citizen", "hn-portal", "A-1", AN, rules_dir=rules_dir)
    assert result.decision == "created"
    found = session.execute(
        select(Entity.canonical_id).where(Entity.canonical_id == result.canonical_id)
    ).scalar_one()
    assert found == result.canonical_id  # visible in the transaction, rolled back after


# ------------------------------------------------------------------ refusals


def test_a_rejected_record_names_its_fields_and_is_kept_as_a_reject(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    bad = {"full_name": "12345", "date_of_birth": "31/02/1990", "phone": "0912345678"}
    with pytest.raises(RecordRejected) as info:
        _register(factory, rules_dir, "hn-portal", "A-9", bad)
    err = info.value
    assert err.status_code == 422 and err.code == "record_rejected"
    errors = {(i["field"], i["pointer"]) for i in err.detail["issues"] if i["severity"] == "error"}
    assert ("date_of_birth", "/attributes/date_of_birth") in errors
    assert ("full_name", "/attributes/full_name") in errors
    assert _count(db, SourceRecord) == 0 and _count(db, Entity) == 0
    with db.connect() as conn:
        row = conn.execute(
            select(Reject.source_key, Reject.reasons, Reject.location, Reject.source_system_id)
        ).one()
    assert row.source_key == "A-9" and row.location["channel"] == "api"
    assert {r["field"] for r in row.reasons if r["severity"] == "error"} >= {
        "date_of_birth",
        "full_name",
    }
    assert row.source_system_id is not None


def test_unknown_entity_type_source_system_and_key_type(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    with pytest.raises(UnknownEntityType):
        register_with_retry(factory, "planet", "hn-portal", "A-1", AN, rules_dir=rules_dir)
    with pytest.raises(UnknownSourceSystem):
        _register(factory, rules_dir, "nobody", "A-1", AN, create_source_system=False)
    _register(factory, rules_dir, "hn-portal", "A-1", AN)
    with db.begin() as conn:
        conn.execute(update(SourceRecord).values(entity_type="dossier"))
    with pytest.raises(SourceKeyTypeMismatch):
        _register(factory, rules_dir, "hn-portal", "A-1", AN)


def test_an_entity_type_without_a_model_is_refused_clearly(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    org = {"name": "Công ty TNHH Sao Mai", "tax_code": "0100109106"}
    with pytest.raises(MatchingUnavailable) as info:
        register_with_retry(factory, "organization", "dkkd", "0100109106", org, rules_dir=rules_dir)
    assert info.value.status_code == 503 and "mdm match train" in str(info.value.detail)
    assert _count(db, SourceRecord) == 0


def test_a_blank_source_key_is_rejected(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    with pytest.raises(RecordRejected) as info:
        _register(factory, rules_dir, "hn-portal", "  ", AN)
    assert info.value.detail["issues"][0]["pointer"] == "/source_key"
    assert _count(db, Reject) == 1


# ------------------------------------------------------------------ concurrency


def _run_threads(n: int, work: Any) -> list[Any]:
    """``work(i)`` in ``n`` threads released together; every result, or raise the
    first exception."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[i] = work(i)
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    if errors:
        raise errors[0]
    return results


def test_twenty_clients_registering_the_same_new_person_make_one_entity(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    # warm the model cache first: the race is about the store, not about loading
    with factory() as session:
        matching_svc.loaded_model(session, "citizen", rules_dir)
    results = _run_threads(
        20, lambda i: _register(factory, rules_dir, f"agency-{i:02d}", f"K{i}", AN)
    )
    assert len({r.canonical_id for r in results}) == 1
    assert sorted(r.decision for r in results) == ["created"] + ["linked"] * 19
    assert _count(db, Entity) == 1
    assert _count(db, Link, Link.active.is_(True)) == 20
    cid = results[0].canonical_id
    events = _events(db, cid)
    assert [s for _, s, _ in events] == list(range(1, 21))
    assert _entity(db, cid)[1] == 20
    _assert_one_active_link_each(db)


def test_twenty_clients_and_several_people_make_one_entity_each(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    people = [
        {
            "full_name": name,
            "date_of_birth": f"19{60 + i}-0{i + 1}-1{i}",
            "sex": sex,
            "personal_id": f"0010{60 + i}0000{i}{i}" if sex == "nam" else f"0011{60 + i}0000{i}{i}",
            "phone": f"09{i}{i}00{i}{i}11{i}",
        }
        for i, (name, sex) in enumerate(
            [
                ("Lê Văn Cường", "nam"),
                ("Phạm Thị Dung", "nữ"),
                ("Hoàng Minh Đức", "nam"),
                ("Võ Thị Hạnh", "nữ"),
                ("Đặng Quang Huy", "nam"),
            ]
        )
    ]

    def work(i: int) -> list[tuple[int, str]]:
        order = list(range(len(people)))
        random.Random(i).shuffle(order)
        return [
            (p, _register(factory, rules_dir, f"agency-{i:02d}", f"P{p}", people[p]).canonical_id)
            for p in order
        ]

    results = _run_threads(20, work)
    ids: dict[int, set[str]] = {}
    for per_thread in results:
        for p, cid in per_thread:
            ids.setdefault(p, set()).add(cid)
    assert all(len(v) == 1 for v in ids.values())
    assert len({next(iter(v)) for v in ids.values()}) == len(people)
    assert _count(db, Entity) == len(people)
    assert _count(db, Link, Link.active.is_(True)) == 20 * len(people)
    _assert_one_active_link_each(db)


def test_twenty_clients_sending_the_same_key_make_one_record(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    results = _run_threads(20, lambda i: _register(factory, rules_dir, "hn-portal", "A-1", AN))
    assert len({r.canonical_id for r in results}) == 1
    assert sum(r.changed for r in results) == 1
    assert _count(db, SourceRecord) == 1 and _count(db, SourceRecordVersion) == 1
    assert _count(db, Entity) == 1 and _count(db, OutboxEvent) == 1


def test_concurrent_idempotent_retries_register_once(
    db: Engine, factory: sessionmaker[Session], rules_dir: Path
) -> None:
    results = _run_threads(
        10,
        lambda i: _register(factory, rules_dir, "hn-portal", "A-1", AN, idempotency_key="same"),
    )
    assert sum(not r.replayed for r in results) == 1
    assert len({r.canonical_id for r in results}) == 1
    assert _count(db, IdempotencyKey) == 1 and _count(db, OutboxEvent) == 1
