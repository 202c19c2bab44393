"""Merge, unmerge, overrides, events and as-of reads (both backends)."""

from __future__ import annotations

import io
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mdm.domain.canonical_id import new_canonical_id
from mdm.exceptions import AlreadyMerged, Conflict
from mdm.services.export import export_entities, export_xrefs
from mdm.services.history import get_entity, history
from mdm.services.identity import apply_partition
from mdm.services.merge import (
    clear_override,
    merge_entities,
    preview_merge,
    set_override,
    unmerge,
)
from mdm.services.resolve import rebuild
from mdm.store.models import Entity, EntityVersion, OutboxEvent, Redirect, utcnow
from mdm.store.repositories import lookup
from tests.services.conftest import MakeRecord, count


def _two_people(session: Session, make_record: MakeRecord) -> tuple[str, str, list[int], list[int]]:
    a = [
        make_record("hn", "1", trust=0.8, full_name="Nguyễn Văn An", date_of_birth="1990-05-12"),
        make_record("portal", "1", trust=0.9, full_name="Nguyễn Văn An", phone="+84912000001"),
    ]
    b = [make_record("nd", "7", trust=0.6, full_name="Nguyễn An", date_of_birth="1990")]
    apply_partition(session, "citizen", [a, b])
    ca = get_entity(session, _cid(session, a[0])).canonical_id
    cb = get_entity(session, _cid(session, b[0])).canonical_id
    return ca, cb, a, b


def _cid(session: Session, record_id: int) -> str:
    from mdm.store.models import Link

    return str(
        session.execute(
            select(Entity.canonical_id)
            .join(Link, Link.entity_id == Entity.id)
            .where(Link.source_record_id == record_id, Link.active.is_(True))
        ).scalar_one()
    )


def _events(session: Session, cid: str) -> list[tuple[str, int, dict]]:  # type: ignore[type-arg]
    rows = session.execute(
        select(OutboxEvent.event_type, OutboxEvent.sequence, OutboxEvent.payload)
        .where(OutboxEvent.canonical_id == cid)
        .order_by(OutboxEvent.position)
    )
    return [(t, s, p) for t, s, p in rows]


def test_merge_then_unmerge_restores_the_originals(
    session: Session, make_record: MakeRecord
) -> None:
    ca, cb, a, b = _two_people(session, make_record)
    before_a, before_b = get_entity(session, ca), get_entity(session, cb)
    preview = preview_merge(session, ca, cb)
    assert count(session, Redirect) == 0  # preview writes nothing

    result = merge_entities(session, ca, cb, actor="steward:lan", reason="same person")
    merged = get_entity(session, cb)
    assert merged.canonical_id == ca and merged.redirected_from == [cb]
    assert merged.attributes == preview.attributes
    assert merged.provenance["date_of_birth"]["rule"] == "most_complete"
    with pytest.raises(AlreadyMerged):
        merge_entities(session, ca, cb, actor="steward:lan", reason="again")

    restored = unmerge(session, ca, b, actor="steward:lan", reason="mistake")
    assert restored == cb  # the absorbed entity is revived, its ID valid again
    assert count(session, Redirect) == 0
    after_a, after_b = get_entity(session, ca), get_entity(session, cb)
    assert (after_a.attributes, after_a.provenance) == (before_a.attributes, before_a.provenance)
    assert (after_b.attributes, after_b.provenance) == (before_b.attributes, before_b.provenance)
    assert after_b.status == "active" and after_b.redirected_from == []

    ev_a = _events(session, ca)
    ev_b = _events(session, cb)
    assert [(t, s) for t, s, _ in ev_a] == [
        ("entity.created", 1),
        ("entity.merged", 2),
        ("entity.unmerged", 3),
    ]
    assert ev_a[1][2]["data"]["absorbed"] == cb
    assert [(t, s) for t, s, _ in ev_b] == [
        ("entity.created", 1),
        ("entity.merged", 2),
        ("entity.unmerged", 3),
    ]
    assert ev_b[1][2]["data"] == {"merged_into": ca}
    assert result.survivor_version == 2
    # events never carry attribute values (personal data)
    for _t, _s, payload in ev_a + ev_b:
        assert set(payload) == {
            "event_id",
            "type",
            "canonical_id",
            "entity_type",
            "version",
            "occurred_at",
            "data",
        }
        assert "Nguyễn" not in str(payload) and "1990" not in str(payload)
    # a later automatic run does not undo the unmerge (cannot-links recorded)
    apply_partition(session, "citizen", [a + b])
    assert _cid(session, b[0]) == cb and _cid(session, a[0]) == ca
    assert rebuild(session, "citizen").ok


def test_unmerge_of_records_never_merged_creates_a_new_entity(
    session: Session, make_record: MakeRecord
) -> None:
    ca, _cb, a, _b = _two_people(session, make_record)
    new_id = unmerge(session, ca, [a[1]], actor="steward:lan", reason="different person")
    assert new_id != ca and _cid(session, a[1]) == new_id
    assert [t for t, _s, _p in _events(session, new_id)] == ["entity.created"]
    with pytest.raises(Conflict):  # the cannot-link forbids merging them back
        merge_entities(session, ca, new_id, actor="steward:lan", reason="oops")


def test_override_wins_and_is_versioned(session: Session, make_record: MakeRecord) -> None:
    ca, _cb, _a, _b = _two_people(session, make_record)
    v = set_override(session, ca, "full_name", "Nguyễn Văn Ân", actor="steward:lan", reason="CCCD")
    e = get_entity(session, ca)
    assert v == 2 and e.attributes["full_name"] == "Nguyễn Văn Ân"
    assert e.provenance["full_name"]["rule"] == "steward_override"
    assert _events(session, ca)[-1][2]["data"] == {"changed": ["full_name"]}
    assert rebuild(session, "citizen").ok  # overrides are an input of the pure function
    clear_override(session, ca, "full_name", actor="steward:lan", reason="undo")
    assert get_entity(session, ca).attributes["full_name"] == "Nguyễn Văn An"


def test_as_of_reads_at_five_moments(session: Session, make_record: MakeRecord) -> None:
    moments = []

    def tick() -> None:
        time.sleep(0.002)
        moments.append(utcnow())
        time.sleep(0.002)

    tick()  # t0: nothing exists yet
    ca, cb, _a, b = _two_people(session, make_record)
    tick()  # t1: created
    set_override(session, ca, "email", "an@example.vn", actor="steward:lan", reason="asked")
    tick()  # t2: override
    merge_entities(session, ca, cb, actor="steward:lan", reason="same person")
    tick()  # t3: merged
    unmerge(session, ca, b, actor="steward:lan", reason="mistake")
    tick()  # t4: unmerged

    from mdm.exceptions import EntityNotFound

    with pytest.raises(EntityNotFound):
        get_entity(session, ca, as_of=moments[0])
    t1 = get_entity(session, ca, as_of=moments[1])
    assert t1.version == 1 and "email" not in t1.attributes
    t2 = get_entity(session, ca, as_of=moments[2])
    assert t2.version == 2 and t2.attributes["email"] == "an@example.vn"
    t3 = get_entity(session, cb, as_of=moments[3])  # the loser, read while merged
    assert t3.canonical_id == ca and t3.redirected_from == [cb] and t3.version == 3
    assert t3.attributes["date_of_birth"] == "1990-05-12"
    t4 = get_entity(session, cb, as_of=moments[4])
    assert t4.canonical_id == cb and t4.version == 3 and t4.status == "active"
    assert [h["change"] for h in history(session, ca)] == [
        "created",
        "override",
        "absorbed",
        "unmerged",
    ]
    assert count(session, EntityVersion) == 4 + 3


def test_exports(session: Session, make_record: MakeRecord) -> None:
    ca, cb, _a, _b = _two_people(session, make_record)
    out = io.StringIO()
    assert export_xrefs(session, "citizen", out) == 3
    assert out.getvalue().splitlines() == [
        "source_system,source_key,canonical_id",
        f"hn,1,{ca}",
        f"nd,7,{cb}",
        f"portal,1,{ca}",
    ]
    docs = io.StringIO()
    assert export_entities(session, "citizen", docs) == 2
    assert '"provenance"' in docs.getvalue()


def test_the_redirect_follower_resolves_a_chain_of_merges_and_skips_missing_ids(
    session: Session, make_record: MakeRecord
) -> None:
    people = [
        [make_record("hn", "1", trust=0.8, full_name="Nguyễn Văn An", date_of_birth="1990")],
        [make_record("nd", "7", trust=0.6, full_name="Lê Thị Hoa", date_of_birth="1975")],
        [make_record("hn", "9", trust=0.8, full_name="Trần Thị Bình", date_of_birth="1985")],
    ]
    apply_partition(session, "citizen", people)
    ca, cb, cc = (_cid(session, group[0]) for group in people)
    assert len({ca, cb, cc}) == 3
    merge_entities(session, cb, ca, actor="steward:lan", reason="same person")  # a -> b
    merge_entities(session, cc, cb, actor="steward:lan", reason="same person")  # b -> c
    session.flush()
    missing = new_canonical_id("citizen", b"never-issued")
    conn = session.connection()

    found = lookup.resolve_canonical_ids(conn, [ca, cb, cc, missing])
    assert {cid: e.canonical_id for cid, e in found.items()} == {ca: cc, cb: cc, cc: cc}
    assert found[ca].status == "active" and found[ca].id == found[cc].id
    assert lookup.resolve_canonical_id(conn, missing) is None
    assert lookup.current_entities(conn, [ca])[ca].status == "merged"  # not followed there
    view = get_entity(session, ca)
    assert (view.canonical_id, view.redirected_from) == (cc, [ca])
