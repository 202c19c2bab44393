"""apply_partition: stable IDs, links, redirects, steward decisions (both backends)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mdm.domain.canonical_id import new_canonical_id
from mdm.services.history import get_entity
from mdm.services.identity import apply_partition
from mdm.services.merge import unmerge
from mdm.services.resolve import rebuild
from mdm.store.models import Entity, Link, OutboxEvent, Redirect, SourceRecord, StewardDecision
from tests.services.conftest import MakeRecord, count


def xref(session: Session) -> dict[int, str]:
    rows = session.execute(
        select(Link.source_record_id, Entity.canonical_id)
        .join(Entity, Entity.id == Link.entity_id)
        .where(Link.active.is_(True))
    )
    return {int(r): c for r, c in rows}


def people(make_record: MakeRecord, n: int = 6) -> list[int]:
    return [
        make_record(f"sys{i % 3}", f"k{i}", full_name=f"Person {i // 2}", date_of_birth="1990")
        for i in range(n)
    ]


def test_invariant_1_one_active_link_per_record(session: Session, make_record: MakeRecord) -> None:
    r = people(make_record)
    apply_partition(session, "citizen", [[r[0], r[1]], [r[2], r[3]], [r[4]], [r[5]]])
    apply_partition(session, "citizen", [[r[0], r[1], r[2], r[3]], [r[4], r[5]]])  # merges
    apply_partition(session, "citizen", [[r[0]], [r[1], r[2]], [r[3], r[4], r[5]]])  # moves
    for rid in r:
        active = session.execute(
            select(Entity.status)
            .join(Link, Link.entity_id == Entity.id)
            .where(Link.source_record_id == rid, Link.active.is_(True))
        ).all()
        assert [s for (s,) in active] == ["active"]
    # and the database itself refuses a second active link
    some_entity = session.execute(select(Entity.id)).scalars().first()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(
            Link(source_record_id=r[0], entity_id=some_entity, method="rule", created_by="t")
        )
        session.flush()


def test_rerun_keeps_every_id_and_writes_nothing(session: Session, make_record: MakeRecord) -> None:
    r = people(make_record)
    groups = [[r[0], r[1]], [r[2], r[3]], [r[4], r[5]]]
    first = apply_partition(session, "citizen", groups)
    assert first.entities_created == 3
    before = xref(session)
    events = count(session, OutboxEvent)
    again = apply_partition(session, "citizen", list(reversed(groups)))
    assert xref(session) == before
    assert again.entities_created == again.entities_merged == again.versions == 0
    assert count(session, OutboxEvent) == events


def test_new_ids_are_seeded_by_the_founding_record(
    session: Session, make_record: MakeRecord
) -> None:
    a = make_record("zeta", "9", full_name="A")
    b = make_record("alpha", "5", full_name="A")
    apply_partition(session, "citizen", [[a, b]])
    assert xref(session)[a] == new_canonical_id("citizen", seed=b"citizen:alpha/5")


def test_grown_data_inherits_by_overlap_and_merges_leave_redirects(
    session: Session, make_record: MakeRecord
) -> None:
    r = people(make_record)
    apply_partition(session, "citizen", [[r[0], r[1]], [r[2]], [r[3], r[4]], [r[5]]])
    ids = xref(session)
    new = make_record("sys9", "new", full_name="Person 9")
    # {0,1,2} overlaps entity(0,1) by 2 and entity(2) by 1: entity(0,1) survives.
    s = apply_partition(session, "citizen", [[r[0], r[1], r[2]], [r[3], r[4]], [r[5]], [new]])
    now = xref(session)
    assert now[r[2]] == ids[r[0]]
    assert now[r[3]] == ids[r[3]] and now[r[5]] == ids[r[5]]
    assert s.entities_created == 1 and s.entities_merged == 1
    loser = get_entity(session, ids[r[2]])
    assert loser.canonical_id == ids[r[0]] and loser.redirected_from == [ids[r[2]]]


def test_tie_break_older_entity_keeps_its_id(session: Session, make_record: MakeRecord) -> None:
    r = people(make_record, 4)
    apply_partition(session, "citizen", [[r[0], r[1]], [r[2], r[3]]])
    ids = xref(session)
    older = min(
        (ids[r[0]], ids[r[2]]),
        key=lambda c: session.execute(
            select(Entity.id).where(Entity.canonical_id == c)
        ).scalar_one(),
    )
    apply_partition(session, "citizen", [r])
    assert set(xref(session).values()) == {older}


def test_invariant_3_every_issued_id_resolves(session: Session, make_record: MakeRecord) -> None:
    r = people(make_record, 6)
    apply_partition(session, "citizen", [[x] for x in r])
    issued = set(xref(session).values())
    apply_partition(session, "citizen", [[r[0], r[1]], [r[2], r[3]], [r[4], r[5]]])
    apply_partition(session, "citizen", [[r[0], r[1], r[2], r[3]], [r[4], r[5]]])
    apply_partition(session, "citizen", [r])  # everything into one: redirects stay flat
    issued |= set(xref(session).values())
    final = set(xref(session).values())
    assert len(final) == 1
    for cid in issued:
        assert get_entity(session, cid).canonical_id in final
    # flat: no redirect points at a redirected entity
    targets = set(session.execute(select(Redirect.to_entity_id)).scalars())
    sources = set(session.execute(select(Redirect.from_entity_id)).scalars())
    assert not targets & sources
    # withdrawn records retire their entity, whose ID still resolves
    session.execute(update(SourceRecord).where(SourceRecord.id.in_(r)).values(status="withdrawn"))
    summary = apply_partition(session, "citizen", [])
    assert summary.entities_retired == 1
    for cid in issued:
        assert get_entity(session, cid).status == "retired"


def test_invariant_4_steward_decisions_survive_automatic_runs(
    session: Session, make_record: MakeRecord
) -> None:
    r = people(make_record, 4)
    apply_partition(session, "citizen", [r])
    cid = xref(session)[r[0]]
    split_id = unmerge(session, cid, [r[2], r[3]], actor="steward:lan", reason="two people")
    assert count(session, StewardDecision, StewardDecision.kind == "cannot_link") == 4
    # the matcher clusters them together again: the decision wins
    s = apply_partition(session, "citizen", [r])
    assert s.groups_split == 1
    now = xref(session)
    assert now[r[0]] == now[r[1]] == cid
    assert now[r[2]] == now[r[3]] == split_id
    # a must-link unites groups the matcher kept apart
    session.add(
        StewardDecision(
            kind="must_link", left_record_id=r[0], right_record_id=r[1], decided_by="steward:lan"
        )
    )
    apply_partition(session, "citizen", [[r[0]], [r[1]], [r[2], r[3]]])
    now = xref(session)
    assert now[r[0]] == now[r[1]] == cid


def test_invariant_6_rebuild_reproduces_every_golden_record(
    session: Session, make_record: MakeRecord
) -> None:
    r = [
        make_record("a", "1", trust=0.9, full_name="Trần Thị Bình", date_of_birth="1985-02-03"),
        make_record("b", "1", trust=0.4, full_name="Tran Thi Binh", date_of_birth="1985"),
        make_record("c", "1", trust=0.6, full_name="Trần Bình", date_of_birth="1985-03-02"),
        make_record("a", "2", full_name="Lê Văn Cường", phone="+84912345678"),
    ]
    apply_partition(session, "citizen", [[r[0], r[1]], [r[2]], [r[3]]])
    apply_partition(session, "citizen", [[r[0], r[1], r[2]], [r[3]]])
    report = rebuild(session, "citizen")
    assert report.ok and report.entities == 2 and report.identical == 2
    golden = get_entity(session, xref(session)[r[0]])
    assert golden.provenance["date_of_birth"]["conflict"] is True  # 02-03 vs 03-02
    # tampering with a stored golden record is detected
    session.execute(
        update(Entity).where(Entity.canonical_id == golden.canonical_id).values(attributes={})
    )
    bad = rebuild(session, "citizen")
    assert not bad.ok and bad.differing[0]["canonical_id"] == golden.canonical_id
