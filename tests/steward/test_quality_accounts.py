"""Source quality aggregates, accounts, sessions and throttling (both backends)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from mdm.config import Settings
from mdm.exceptions import BadRequest, Conflict
from mdm.services import accounts
from mdm.services.quality import source_quality
from mdm.store import tables
from mdm.store.models import Reject, SourceSystem, StewardSession, utcnow
from tests.steward.seed import PASSWORD, Seeded, add_record


def test_quality_counts_per_source(session: Session, seeded: Seeded) -> None:
    sid = session.execute(
        SourceSystem.__table__.select().where(SourceSystem.name == "ha-nam-hotich")  # type: ignore[attr-defined]
    ).first()
    assert sid is not None
    for reasons in (
        [{"code": "name_empty"}, {"code": "date_impossible"}],
        [{"code": "name_empty"}],
    ):
        session.execute(
            insert(Reject).values(
                source_system_id=sid.id,
                location={"line": 1},
                reasons=reasons,
                raw_content="x",
                created_at=utcnow(),
            )
        )
    for key, address in (
        ("amb1", {"commune_name": "Xã A", "ambiguous": True}),
        ("amb2", {"commune_name": "Xã B", "ambiguous": False}),
    ):
        add_record(session, sid.id, key, {"full_name": "Đỗ Văn Em", "current_address": address})
    report = source_quality(session)
    by = {q.source_system: q for q in report.sources}
    ha = by["ha-nam-hotich"]
    assert ha.ambiguous_addresses == 1 and by["national-portal"].ambiguous_addresses == 0
    assert ha.records == {"citizen": 7}
    assert ha.rejects == 2 and ha.rejects_by_reason == {"name_empty": 2, "date_impossible": 1}
    # m1 (ha-nam) + m2 (portal) share an entity: a duplicate across sources;
    # a2 (ha-nam) + b2 (portal) as well.
    assert ha.duplicates_across == 2 and ha.duplicates_within == 0
    assert by["national-portal"].duplicates_across == 2
    assert report.entities_multi_record_many_sources == 2
    assert report.entities_multi_record_one_source == 0
    assert ha.pending_review == 4 and by["national-portal"].pending_review == 4


def test_passwords_are_argon2_and_usernames_unique(session: Session, seeded: Seeded) -> None:
    cfg = Settings(steward_login_per_ip_per_minute=1000)
    found = accounts.authenticate(session, "lan", PASSWORD, address="t1", settings=cfg)
    assert found is not None and found.role == "senior" and found.can("reviewer")
    assert not found.can("admin")
    assert (
        accounts.authenticate(session, "lan", "wrong password", address="t1", settings=cfg) is None
    )
    assert accounts.authenticate(session, "nobody", PASSWORD, address="t1", settings=cfg) is None
    stored = session.execute(
        tables.stewards.select().where(tables.stewards.c.username == "lan")
    ).one()
    assert stored.password_hash.startswith("$argon2id$")
    with pytest.raises(Conflict):
        accounts.create_steward(session, "lan", "reviewer", "another long one")
    with pytest.raises(BadRequest):
        accounts.create_steward(session, "new", "boss", "another long one")


def test_login_throttling_locks_the_account(session: Session, seeded: Seeded) -> None:
    cfg = Settings(
        steward_login_max_failures=3,
        steward_login_lock_minutes=5,
        steward_login_per_ip_per_minute=1000,
    )
    for _ in range(3):
        assert accounts.authenticate(session, "minh", "nope", address="t2", settings=cfg) is None
    with pytest.raises(accounts.LoginThrottled):  # even the right password waits
        accounts.authenticate(session, "minh", PASSWORD, address="t2", settings=cfg)
    per_ip = Settings(steward_login_per_ip_per_minute=2)
    address = uuid.uuid4().hex  # the window is per process: an address of this test's own
    accounts.authenticate(session, "root", "x", address=address, settings=per_ip)
    accounts.authenticate(session, "root", "x", address=address, settings=per_ip)
    with pytest.raises(accounts.LoginThrottled):
        accounts.authenticate(session, "root", PASSWORD, address=address, settings=per_ip)


def test_sessions_expire_idle_and_absolute(session: Session, seeded: Seeded) -> None:
    cfg = Settings(steward_session_idle_minutes=30, steward_session_absolute_hours=8)
    lan = accounts.authenticate(session, "lan", PASSWORD, address="t4", settings=Settings())
    assert lan is not None
    token, csrf = accounts.start_session(session, lan)
    live = accounts.load_session(session, token, cfg)
    assert live is not None and live.csrf_token == csrf and live.steward.username == "lan"
    assert accounts.load_session(session, token + "x", cfg) is None
    table = StewardSession.__table__
    now = utcnow()
    session.execute(update(table).values(last_seen_at=now - timedelta(minutes=31)))
    assert accounts.load_session(session, token, cfg) is None  # idle
    session.execute(
        update(table).values(last_seen_at=now, created_at=now - timedelta(hours=8, minutes=1))
    )
    assert accounts.load_session(session, token, cfg) is None  # absolute
    session.execute(update(table).values(created_at=now))
    assert accounts.load_session(session, token, cfg) is not None
    accounts.end_session(session, live.token_hash)
    assert accounts.load_session(session, token, cfg) is None  # logged out
