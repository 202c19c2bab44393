"""The change feed: commit-ordered cursor, pull pages, filters, merges, SSE."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Engine, select, text

from mdm.events.feed import (
    FeedPage,
    Filters,
    event_stream,
    events_after,
    parse_filters,
    sequence_events,
)
from mdm.events.outbox import PendingEvent, write_events
from mdm.events.relay import fan_out
from mdm.exceptions import BadRequest
from mdm.services import subscriptions as subs
from mdm.services.merge import merge_entities, unmerge
from mdm.store.db import unit_of_work
from mdm.store.models import Delivery, Entity, Link, OutboxEvent, Redirect, utcnow
from tests.events.conftest import LOOPBACK, add_client, factory, make_entities, update_entity


def _sequence(engine: Engine) -> int:
    with engine.begin() as conn:
        return sequence_events(conn)


def _page(engine: Engine, after: int, limit: int = 100, filters: Filters | None = None) -> FeedPage:
    with unit_of_work(factory(engine)) as s:
        return events_after(s, after, limit, filters)


def _entity_id(engine: Engine, cid: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(Entity.id).where(Entity.canonical_id == cid)).scalar_one())


def test_commit_order_cursor_does_not_skip_a_late_commit(db: Engine, backend: str) -> None:
    """Two transactions write events; the one with the smaller position commits last.
    A reader paging by write position would skip it; the feed does not."""
    a_cid, b_cid = make_entities(db, 2)
    a_id, b_id = _entity_id(db, a_cid), _entity_id(db, b_cid)
    _sequence(db)
    start = _page(db, 0, 1000).next_after

    def event(eid: int, cid: str) -> list[PendingEvent]:
        return [PendingEvent(eid, cid, "citizen", "entity.updated", 2, {"changed": []})]

    slow = db.connect()
    slow_tx = slow.begin()
    write_events(slow, event(a_id, a_cid), utcnow())  # takes the smaller position
    if backend == "sqlite":
        # one writer at a time: the second writer cannot commit first, so write order
        # is commit order there; commit A first
        slow_tx.commit()
    with db.begin() as fast:
        write_events(fast, event(b_id, b_cid), utcnow())
    # (A's own connection sees A's uncommitted event and B's committed one)
    positions = dict(
        slow.execute(
            select(OutboxEvent.canonical_id, OutboxEvent.position).where(
                OutboxEvent.canonical_id.in_([a_cid, b_cid]), OutboxEvent.sequence == 2
            )
        ).all()
    )
    assert positions[a_cid] < positions[b_cid]

    assert _sequence(db) == (1 if backend == "postgres" else 2)
    first = _page(db, start)
    if backend == "postgres":
        # a naive reader by write position now stands past A's position
        assert [e["canonical_id"] for e in first.events] == [b_cid]
        slow_tx.commit()
        assert _sequence(db) == 1
        second = _page(db, first.next_after)
        assert [e["canonical_id"] for e in second.events] == [a_cid]
        assert second.events[0]["position"] == first.events[0]["position"] + 1
    else:
        assert [e["canonical_id"] for e in first.events] == [a_cid, b_cid]
    slow.close()


def test_sequencer_is_dense_and_one_at_a_time(db: Engine, backend: str) -> None:
    make_entities(db, 3)
    if backend == "postgres":
        with db.begin() as holder:
            assert sequence_events(holder) == 3
            # a second sequencer skips while the first one's transaction is open
            with db.begin() as other:
                assert sequence_events(other) == -1
    else:
        assert _sequence(db) == 3
    page = _page(db, 0)
    assert [e["position"] for e in page.events] == [1, 2, 3]
    assert page.next_after == 3
    assert _sequence(db) == 0


def test_pull_pages_and_filters(db: Engine) -> None:
    ids = make_entities(db, 3)
    update_entity(db, ids[0], 1)
    update_entity(db, ids[1], 2)
    _sequence(db)
    everything = _page(db, 0).events
    assert [e["type"] for e in everything] == ["entity.created"] * 3 + ["entity.updated"] * 2
    assert all(
        e.keys() >= {"event_id", "sequence", "position", "canonical_id", "data"} for e in everything
    )
    # paging with a cursor gives the same events
    collected, after = [], 0
    while True:
        page = _page(db, after, 2)
        if not page.events:
            break
        collected += page.events
        after = page.next_after
    assert collected == everything
    updated = _page(db, 0, filters=parse_filters(event_types=["entity.updated"])).events
    assert [e["canonical_id"] for e in updated] == [ids[0], ids[1]]
    watched = _page(db, 0, filters=Filters(canonical_ids=frozenset({ids[1]}))).events
    assert [(e["canonical_id"], e["sequence"]) for e in watched] == [(ids[1], 1), (ids[1], 2)]
    assert _page(db, 0, filters=parse_filters(entity_types=["organization"])).events == []
    with pytest.raises(BadRequest):
        parse_filters(event_types=["entity.exploded"])
    with pytest.raises(BadRequest):
        _page(db, -1)


def test_watch_list_on_the_loser_gets_the_merge_and_follows_the_survivor(db: Engine) -> None:
    survivor, loser, other = make_entities(db, 3)
    _sequence(db)  # a subscription starts at the feed's tip: after the creations
    client = add_client(db)
    with unit_of_work(factory(db)) as s:
        view, _secret = subs.create_subscription(
            s, client, "http://127.0.0.1:9/hook", {"canonical_ids": [loser]}, policy=LOOPBACK
        )
    with unit_of_work(factory(db)) as s:
        merge_entities(s, survivor, loser, actor="steward:test", reason="same person")
    update_entity(db, survivor, 1)
    update_entity(db, other, 2)
    with db.begin() as conn:
        sequence_events(conn)
        fan_out(conn)
    with db.connect() as conn:
        got = conn.execute(
            select(OutboxEvent.canonical_id, OutboxEvent.event_type, OutboxEvent.payload)
            .join(Delivery, Delivery.event_position == OutboxEvent.position)
            .where(Delivery.subscription_id == view.id)
            .order_by(Delivery.feed_position)
        ).all()
    # the loser's own merged event (merged_into), the survivor's (absorbed: the loser),
    # then the survivor's later change: the watch list followed the merge
    merged = {c: p["data"] for c, t, p in got[:2] if t == "entity.merged"}
    assert merged[loser]["merged_into"] == survivor
    assert merged[survivor]["absorbed"] == loser
    assert [(c, t) for c, t, _ in got[2:]] == [(survivor, "entity.updated")]
    with unit_of_work(factory(db)) as s:
        assert set(subs.get_subscription(s, view.id).filters["canonical_ids"]) == {
            loser,
            survivor,
        }


def test_replay_from_zero_rebuilds_ids_and_redirects(db: Engine) -> None:
    """Acceptance 3: a consumer replaying the feed from position 0 ends with exactly
    the registry's active canonical IDs and redirects."""
    a, b, c, d = make_entities(db, 4)
    with unit_of_work(factory(db)) as s:
        merge_entities(s, a, b, actor="steward:test", reason="same")
    with unit_of_work(factory(db)) as s:
        merge_entities(s, c, d, actor="steward:test", reason="same")
    with db.connect() as conn:
        moved = (
            conn.execute(
                select(Link.source_record_id)
                .join(Entity, Entity.id == Link.entity_id)
                .where(Entity.canonical_id == c, Link.active.is_(True))
                .order_by(Link.source_record_id.desc())
            )
            .scalars()
            .first()
        )
    with unit_of_work(factory(db)) as s:
        unmerge(s, c, [int(moved)], actor="steward:test", reason="different")  # revives d
    update_entity(db, a, 1)
    _sequence(db)

    active: set[str] = set()
    redirects: dict[str, str] = {}
    after = 0
    while page := _page(db, after, 3):
        if not page.events:
            break
        after = page.next_after
        for e in page.events:
            cid, data = e["canonical_id"], e["data"]
            if e["type"] == "entity.created":
                active.add(cid)
            elif e["type"] == "entity.merged" and "merged_into" in data:
                active.discard(cid)
                redirects[cid] = data["merged_into"]
            elif e["type"] == "entity.unmerged" and data.get("restored"):
                active.add(cid)
                redirects.pop(cid, None)
            elif e["type"] == "entity.retired":
                active.discard(cid)
    with db.connect() as conn:
        want_active = set(
            conn.execute(select(Entity.canonical_id).where(Entity.status == "active")).scalars()
        )
        src, dst = Entity.__table__.alias(), Entity.__table__.alias()
        want_redirects = {
            f: t
            for f, t in conn.execute(
                select(src.c.canonical_id, dst.c.canonical_id)
                .select_from(Redirect)
                .join(src, src.c.id == Redirect.from_entity_id)
                .join(dst, dst.c.id == Redirect.to_entity_id)
            )
        }
    assert active == want_active
    assert redirects == want_redirects == {b: a}


def test_server_sent_events_resume_from_the_cursor(db: Engine) -> None:
    make_entities(db, 2)
    _sequence(db)

    async def collect(after: int, n: int) -> list[str]:
        out = []
        async for msg in event_stream(
            lambda a: _page(db, a), after, poll_seconds=0.01, max_events=n
        ):
            out.append(msg)
        return out

    messages = asyncio.run(collect(0, 2))
    assert messages[0].startswith("id: 1\nevent: entity.created\ndata: {")
    assert messages[1].startswith("id: 2\n")

    async def live() -> list[str]:
        task = asyncio.create_task(collect(2, 1))
        await asyncio.sleep(0.1)
        await asyncio.to_thread(make_entities, db, 1)
        await asyncio.to_thread(_sequence, db)
        return await asyncio.wait_for(task, 5)

    (msg,) = asyncio.run(live())
    assert msg.startswith("id: 3\n")


def test_sequencer_state_matches_the_feed(db: Engine) -> None:
    make_entities(db, 2)
    _sequence(db)
    with db.connect() as conn:
        tip = conn.execute(text("SELECT position FROM event_cursors WHERE name = 'sequencer'"))
        assert tip.scalar_one() == 2
