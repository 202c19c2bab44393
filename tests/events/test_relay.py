"""Webhook delivery against a real HTTP receiver on loopback (both backends)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from sqlalchemy import Engine, func, select, update

from mdm.events.relay import RelayConfig, WebhookRelay, backoff_seconds
from mdm.services import subscriptions as subs
from mdm.store.db import unit_of_work
from mdm.store.models import Delivery, utcnow
from mdm.store.repositories import events as repo
from tests.events.conftest import (
    FAST,
    LOOPBACK,
    Receiver,
    add_client,
    all_events,
    check_order,
    factory,
    make_entities,
    update_entity,
    wait_for,
)


@contextmanager
def running(engine: Engine, config: RelayConfig = FAST, n: int = 1) -> Iterator[list[WebhookRelay]]:
    stop = threading.Event()
    relays = [WebhookRelay(engine, config, policy=LOOPBACK) for _ in range(n)]
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in relays]
    for t in threads:
        t.start()
    try:
        yield relays
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        for r in relays:
            r.close()


def subscribe(engine: Engine, receiver: Receiver, filters: dict | None = None) -> int:  # type: ignore[type-arg]
    client = add_client(engine)
    with unit_of_work(factory(engine)) as s:
        view, secret = subs.create_subscription(s, client, receiver.url, filters, policy=LOOPBACK)
    receiver.secret = secret
    return view.id


def statuses(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
        return {str(k): int(v) for k, v in rows}


def test_backoff_is_exponential_with_full_jitter() -> None:
    assert backoff_seconds(1, 1.0, 60, rng=lambda: 1.0) == 1.0
    assert backoff_seconds(4, 1.0, 60, rng=lambda: 1.0) == 8.0
    assert backoff_seconds(30, 1.0, 60, rng=lambda: 1.0) == 60.0
    assert backoff_seconds(4, 1.0, 60, rng=lambda: 0.0) == 0.0
    assert backoff_seconds(10_000, 1.0, 60, rng=lambda: 0.5) == 30.0


def test_chaos_down_errors_slow_then_recovered(db: Engine, receiver: Receiver) -> None:
    """Acceptance 1: the receiver is down, then answers 500s, then is slow (past the
    client timeout every other request), then recovers: every event arrives, in order
    per entity; repeats only carry event IDs already seen."""
    subscribe(db, receiver)  # the port is closed: nothing listens yet
    ids = make_entities(db, 6)
    with running(db) as (relay,):
        for i in range(24):
            update_entity(db, ids[i % len(ids)], i)
        # down: connections refused, retried
        wait_for(lambda: relay.stats["failed"] >= 6, 10, "refused attempts")
        assert receiver.log == []
        receiver.mode = "error"
        receiver.start()
        wait_for(lambda: len(receiver.log) >= 6, 10, "500s")
        assert not receiver.accepted()
        receiver.mode = "slow"
        seen = len(receiver.log)
        # slow: every other request outlives the relay's timeout (then answers 200)
        wait_for(lambda: len(receiver.log) >= seen + 8, 15, "slow answers")
        receiver.mode = "ok"
        expected = all_events(db)
        wait_for(lambda: statuses(db) == {"delivered": 30}, 30, "delivery")
    assert len(expected) == 30
    check_order(receiver.accepted(), expected)
    # the slow phase made the relay send some events twice: same IDs, no harm
    assert len(receiver.accepted()) > len(receiver.accepted_ids())
    assert relay.stats["dead"] == 0


def test_dead_letter_unblocks_the_entity_and_can_be_redelivered(
    db: Engine, receiver: Receiver
) -> None:
    sub_id = subscribe(db, receiver)
    receiver.start()
    (cid,) = make_entities(db, 1)
    update_entity(db, cid, 1)
    update_entity(db, cid, 2)
    created, first, second = all_events(db)
    receiver.fail_ids = {first[0]}
    config = replace(FAST, max_attempts=3)
    with running(db, config):
        wait_for(lambda: second[0] in receiver.accepted_ids(), 15, "the event after the dead one")
        with unit_of_work(factory(db)) as s:
            dead = subs.dead_letters(s, sub_id)
        assert [d["event_id"] for d in dead] == [first[0]]
        assert dead[0]["attempts"] == 3 and dead[0]["last_status_code"] == 500
        # the dead letter did not hold the entity back
        assert [r.event_id for r in receiver.accepted()] == [created[0], second[0]]
        receiver.fail_ids = set()
        with unit_of_work(factory(db)) as s:
            assert subs.redeliver(s, sub_id) == 1
        wait_for(lambda: first[0] in receiver.accepted_ids(), 15, "the redelivered dead letter")
    with unit_of_work(factory(db)) as s:
        assert subs.dead_letters(s, sub_id) == []


def test_paused_subscription_queues_and_resume_delivers_in_order(
    db: Engine, receiver: Receiver
) -> None:
    sub_id = subscribe(db, receiver)
    receiver.start()
    with unit_of_work(factory(db)) as s:
        subs.pause(s, sub_id)
    ids = make_entities(db, 2)
    update_entity(db, ids[0], 1)
    with running(db):
        time.sleep(0.5)
        assert receiver.log == []
        with unit_of_work(factory(db)) as s:
            subs.resume(s, sub_id)
        expected = all_events(db)
        wait_for(lambda: len(receiver.accepted_ids()) == len(expected), 10, "delivery")
    check_order(receiver.accepted(), expected)


def test_two_relays_in_one_database_keep_order_per_entity(db: Engine, receiver: Receiver) -> None:
    subscribe(db, receiver)
    receiver.start()
    receiver.delay = 0.02
    # One relay holds at most `capacity` deliveries (8 here) and each entity has one
    # claimable head, so with 16 entities the other relay always finds heads to take:
    # both relays work, whichever thread the scheduler favours.
    config = replace(FAST, concurrency=2, batch_size=4)
    ids = make_entities(db, 16)
    with running(db, config, n=2) as relays:
        for i in range(48):
            update_entity(db, ids[i % 16], i)
        expected = all_events(db)
        wait_for(lambda: len(receiver.accepted_ids()) == len(expected), 20, "delivery")
    check_order(receiver.accepted(), expected)
    assert all(r.stats["delivered"] > 0 for r in relays), [r.stats for r in relays]


def test_prune_deletes_only_old_delivered_deliveries(db: Engine, receiver: Receiver) -> None:
    subscribe(db, receiver)
    receiver.start()
    make_entities(db, 3)
    with running(db):
        wait_for(lambda: statuses(db) == {"delivered": 3}, 10, "delivery")
    keep, drop = WebhookRelay(db, FAST), WebhookRelay(db, replace(FAST, keep_delivered_days=-1))
    try:
        assert keep.prune() == 0  # delivered just now: kept
        assert drop.prune() == 3
    finally:
        keep.close()
        drop.close()
    assert statuses(db) == {}


def test_a_claim_takes_one_head_per_entity_and_a_lost_lease_is_not_recorded(
    db: Engine, receiver: Receiver
) -> None:
    subscribe(db, receiver)  # never started: nothing is sent here
    ids = make_entities(db, 3)
    for i, cid in enumerate(ids):
        update_entity(db, cid, i)
    a, b = WebhookRelay(db, FAST), WebhookRelay(db, FAST)
    try:
        while a.tick() > 0:
            pass
        first = a.claim(100)
        assert sorted(str(d.payload["canonical_id"]) for d in first) == sorted(ids)
        assert b.claim(100) == []  # the heads are leased; their successors wait
        # b took over the first one (as after a's lease ran out)
        with db.begin() as conn:
            conn.execute(
                update(Delivery).where(Delivery.id == first[0].id).values(lease_owner=b.owner)
            )
        outcomes = [repo.Outcome(d.id, "delivered", d.attempts + 1, status_code=200) for d in first]
        with db.begin() as conn:
            kept = repo.complete_many(conn, outcomes, a.owner, utcnow())
        assert kept == {d.id for d in first[1:]}
        second = a.claim(100)
        assert sorted(str(d.payload["canonical_id"]) for d in second) == sorted(
            str(d.payload["canonical_id"]) for d in first[1:]
        )
        before = {str(d.payload["canonical_id"]): d.feed_position for d in first}
        assert all(d.feed_position > before[str(d.payload["canonical_id"])] for d in second)
    finally:
        a.close()
        b.close()
