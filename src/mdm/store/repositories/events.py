"""SQL of event delivery: the sequencer, the feed, deliveries and event cursors.

Everything runs in the caller's transaction. Two habits keep several relay processes
safe on both backends:

* a statement that takes a lock is the *first* of its transaction and is a write
  (``UPDATE ... RETURNING``): on SQLite that takes the single writer lock up front,
  waiting with the busy timeout, instead of failing when a read transaction later
  tries to write; on Postgres the row lock comes from ``FOR UPDATE SKIP LOCKED`` in
  the same statement, so a second relay skips the work instead of waiting for it;
* claims are leases with an expiry, so the work of a relay that died (``kill -9``) is
  taken over once its leases run out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Connection,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from mdm.store.models import Delivery, Subscription
from mdm.store.tables import clients, cursors, deliveries, outbox, subscriptions

SEQUENCER = "sequencer"


@dataclass(frozen=True, slots=True)
class FeedEvent:
    feed_position: int
    position: int
    entity_id: int
    canonical_id: str
    entity_type: str
    event_type: str
    sequence: int
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    id: int
    filters: Mapping[str, Any]
    feed_cursor: int
    #: the owning client's scopes; empty when its key is revoked (it reads nothing)
    client_scopes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    subscription_id: int
    url: str
    secret: str
    attempts: int
    feed_position: int
    event_id: str
    sequence: int
    payload: Mapping[str, Any]


# --- cursors and the sequencer -------------------------------------------------------


def lock_cursor(conn: Connection, name: str, now: datetime) -> int | None:
    """Lock the cursor row ``name`` for this transaction; its position, or ``None`` when
    another transaction holds it (Postgres: skipped, not awaited) or it is missing."""
    locked = select(cursors.c.name).where(cursors.c.name == name).with_for_update(skip_locked=True)
    stmt = (
        update(cursors)
        .where(cursors.c.name == locked.scalar_subquery())
        .values(updated_at=now)
        .returning(cursors.c.position)
    )
    found = conn.execute(stmt).scalar()
    return None if found is None else int(found)


def set_cursor(conn: Connection, name: str, position: int, now: datetime) -> None:
    conn.execute(
        update(cursors).where(cursors.c.name == name).values(position=position, updated_at=now)
    )


def ensure_cursor(conn: Connection, name: str, position: int, now: datetime) -> None:
    conn.execute(
        text(
            "INSERT INTO event_cursors (name, position, updated_at) "
            "VALUES (:name, :position, :now) ON CONFLICT (name) DO NOTHING"
        ).bindparams(bindparam("now", type_=cursors.c.updated_at.type)),
        {"name": name, "position": position, "now": now},
    )


def lease_cursor(
    conn: Connection, name: str, owner: str, now: datetime, until: datetime
) -> int | None:
    """Take or renew the lease on cursor ``name``; its position, or ``None`` while
    another owner's lease runs."""
    stmt = (
        update(cursors)
        .where(
            cursors.c.name == name,
            or_(
                cursors.c.lease_owner.is_(None),
                cursors.c.lease_owner == owner,
                cursors.c.lease_until < now,
            ),
        )
        .values(lease_owner=owner, lease_until=until, updated_at=now)
        .returning(cursors.c.position)
    )
    found = conn.execute(stmt).scalar()
    return None if found is None else int(found)


def advance_leased_cursor(
    conn: Connection, name: str, owner: str, position: int, now: datetime
) -> bool:
    """Move a leased cursor forward; ``False`` if the lease was lost meanwhile."""
    result = conn.execute(
        update(cursors)
        .where(cursors.c.name == name, cursors.c.lease_owner == owner)
        .values(position=position, updated_at=now)
    )
    return bool(result.rowcount)


def cursor_position(conn: Connection, name: str) -> int | None:
    found = conn.execute(select(cursors.c.position).where(cursors.c.name == name)).scalar()
    return None if found is None else int(found)


def unsequenced(conn: Connection, limit: int) -> list[int]:
    """Positions of committed events without a feed position, in write order."""
    stmt = (
        select(outbox.c.position)
        .where(outbox.c.feed_position.is_(None))
        .order_by(outbox.c.position)
        .limit(limit)
    )
    return [int(p) for p in conn.execute(stmt).scalars()]


def assign_feed_positions(conn: Connection, positions: Sequence[int], first: int) -> None:
    if not positions:
        return
    fps = list(range(first, first + len(positions)))
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                "UPDATE outbox_events AS o SET feed_position = v.fp "
                "FROM unnest(:positions, :fps) AS v(p, fp) WHERE o.position = v.p"
            ).bindparams(
                bindparam("positions", type_=ARRAY(BigInteger())),
                bindparam("fps", type_=ARRAY(BigInteger())),
            ),
            {"positions": list(positions), "fps": fps},
        )
        return
    conn.execute(
        update(outbox)
        .where(outbox.c.position == bindparam("p"))
        .values(feed_position=bindparam("fp")),
        [{"p": p, "fp": fp} for p, fp in zip(positions, fps, strict=True)],
    )


# --- the feed ------------------------------------------------------------------------


def feed_events(
    conn: Connection,
    after: int,
    limit: int,
    *,
    upto: int | None = None,
    entity_types: Sequence[str] = (),
    event_types: Sequence[str] = (),
) -> list[FeedEvent]:
    stmt = select(
        outbox.c.feed_position,
        outbox.c.position,
        outbox.c.entity_id,
        outbox.c.canonical_id,
        outbox.c.entity_type,
        outbox.c.event_type,
        outbox.c.sequence,
        outbox.c.payload,
    ).where(outbox.c.feed_position > after)
    if upto is not None:
        stmt = stmt.where(outbox.c.feed_position <= upto)
    if entity_types:
        stmt = stmt.where(outbox.c.entity_type.in_(list(entity_types)))
    if event_types:
        stmt = stmt.where(outbox.c.event_type.in_(list(event_types)))
    stmt = stmt.order_by(outbox.c.feed_position).limit(limit)
    return [FeedEvent(*row) for row in conn.execute(stmt)]


def feed_tip(conn: Connection) -> int:
    """The largest feed position handed out (0 on an empty feed)."""
    return int(
        conn.execute(select(func.coalesce(func.max(outbox.c.feed_position), 0))).scalar_one()
    )


# --- subscriptions and fan-out -------------------------------------------------------


def subscription_states(conn: Connection) -> list[SubscriptionState]:
    stmt = select(
        subscriptions.c.id,
        subscriptions.c.filters,
        subscriptions.c.feed_cursor,
        clients.c.scopes,
        clients.c.revoked_at,
    ).join(clients, clients.c.id == subscriptions.c.client_id)
    return [
        SubscriptionState(
            int(i), f or {}, int(c), frozenset(scopes or ()) if revoked is None else frozenset()
        )
        for i, f, c, scopes, revoked in conn.execute(stmt.order_by(subscriptions.c.id))
    ]


def set_subscription_cursor(
    conn: Connection, subscription_id: int, cursor: int, filters: Mapping[str, Any] | None = None
) -> None:
    values: dict[str, Any] = {"feed_cursor": cursor}
    if filters is not None:
        values["filters"] = dict(filters)
    conn.execute(update(subscriptions).where(subscriptions.c.id == subscription_id).values(values))


def insert_deliveries(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        conn.execute(insert(deliveries), list(rows))


def analyze_deliveries(conn: Connection) -> None:
    """Refresh the planner's statistics of the delivery queue (Postgres) after it grew
    by much at once: planned with the statistics of a near-empty queue, the claim
    statement ran for minutes over 20,000 new deliveries (found by
    scripts/crash_jobs.py: a subscription with a backlog)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("ANALYZE deliveries"))


# --- claiming and completing ---------------------------------------------------------


def _heads(now: datetime) -> Select[tuple[int]]:
    """Due, unleased deliveries of active subscriptions that are the head of their
    (subscription, entity): the earliest pending delivery of the pair.

    The heads come from one aggregate over the pending deliveries, not from a
    correlated ``NOT EXISTS`` per candidate: with stale planner statistics (a queue
    that grew since the last ``ANALYZE``) Postgres ran that anti-join through the
    wrong index, scanning every earlier delivery of the subscription for each
    candidate (seconds per claim at 20,000 pending). The aggregate costs one pass over
    the pending rows whatever the plan.
    """
    pending = (
        select(
            deliveries.c.subscription_id.label("sid"),
            deliveries.c.entity_id.label("eid"),
            func.min(deliveries.c.feed_position).label("fp"),
        )
        .where(deliveries.c.status == "pending")
        .group_by(deliveries.c.subscription_id, deliveries.c.entity_id)
        .subquery("heads")
    )
    return (
        select(deliveries.c.id)
        .join(
            pending,
            and_(
                pending.c.sid == deliveries.c.subscription_id,
                pending.c.eid == deliveries.c.entity_id,
                pending.c.fp == deliveries.c.feed_position,
            ),
        )
        .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
        .where(
            deliveries.c.status == "pending",
            deliveries.c.next_attempt_at <= now,
            or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
            subscriptions.c.status == "active",
        )
        .order_by(deliveries.c.next_attempt_at, deliveries.c.feed_position)
    )


def any_claimable(conn: Connection, now: datetime) -> bool:
    """Read-only: is any delivery ready to be claimed? Lets an idle relay skip the
    claiming write (on SQLite every write transaction takes the one writer lock)."""
    return conn.execute(_heads(now).limit(1)).first() is not None


def needs_tick(conn: Connection) -> bool:
    """Read-only: are there events to sequence, or subscriptions behind the tip?"""
    if conn.execute(
        select(outbox.c.position).where(outbox.c.feed_position.is_(None)).limit(1)
    ).first():
        return True
    tip = cursor_position(conn, SEQUENCER) or 0
    behind = select(subscriptions.c.id).where(subscriptions.c.feed_cursor < tip).limit(1)
    return conn.execute(behind).first() is not None


def claim_heads(
    conn: Connection, owner: str, now: datetime, until: datetime, limit: int
) -> list[int]:
    """Lease up to ``limit`` due deliveries that are the head of their (subscription,
    entity): no earlier pending delivery of the same pair exists. Returns their ids."""
    heads = _heads(now).limit(limit).with_for_update(skip_locked=True, of=deliveries)
    stmt = (
        update(deliveries)
        .where(deliveries.c.id.in_(heads.scalar_subquery()))
        .values(lease_owner=owner, lease_until=until)
        .returning(deliveries.c.id)
    )
    return sorted(int(i) for i in conn.execute(stmt).scalars())


def claimed(conn: Connection, ids: Sequence[int]) -> list[ClaimedDelivery]:
    if not ids:
        return []
    stmt = (
        select(
            deliveries.c.id,
            deliveries.c.subscription_id,
            subscriptions.c.url,
            subscriptions.c.secret,
            deliveries.c.attempts,
            deliveries.c.feed_position,
            outbox.c.event_id,
            outbox.c.sequence,
            outbox.c.payload,
        )
        .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
        .join(outbox, outbox.c.position == deliveries.c.event_position)
        .where(deliveries.c.id.in_(list(ids)))
        .order_by(deliveries.c.feed_position)
    )
    return [ClaimedDelivery(*row) for row in conn.execute(stmt)]


def complete(
    conn: Connection,
    delivery_id: int,
    owner: str,
    *,
    status: str,
    attempts: int,
    now: datetime,
    next_attempt_at: datetime | None = None,
    status_code: int | None = None,
    error: str | None = None,
) -> bool:
    """Record the outcome of an attempt; ``False`` if this relay's lease was lost (the
    delivery was taken over, and the other relay's outcome stands)."""
    values: dict[str, Any] = {
        "status": status,
        "attempts": attempts,
        "lease_owner": None,
        "lease_until": None,
        "last_status_code": status_code,
        "last_error": error,
    }
    if status == "delivered":
        values["delivered_at"] = now
    elif status == "dead":
        values["dead_at"] = now
    else:
        values["next_attempt_at"] = next_attempt_at or now
    result = conn.execute(
        update(deliveries)
        .where(
            deliveries.c.id == delivery_id,
            deliveries.c.lease_owner == owner,
            deliveries.c.status == "pending",
        )
        .values(values)
    )
    return bool(result.rowcount)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt, to record with :func:`complete_many`."""

    delivery_id: int
    status: str  # delivered, pending (a retry) or dead
    attempts: int
    next_attempt_at: datetime | None = None
    status_code: int | None = None
    error: str | None = None


def complete_many(
    conn: Connection, outcomes: Sequence[Outcome], owner: str, now: datetime
) -> set[int]:
    """Record many outcomes in the caller's transaction; returns the ids recorded
    (the others' leases were lost: taken over, and the other relay's outcome stands).

    Successes that share a status code are one set-based statement; retries and dead
    letters (rare) one statement each.
    """
    kept: set[int] = set()
    delivered: dict[tuple[int, int | None], list[int]] = {}
    for o in outcomes:
        if o.status == "delivered":
            delivered.setdefault((o.attempts, o.status_code), []).append(o.delivery_id)
            continue
        if complete(
            conn,
            o.delivery_id,
            owner,
            status=o.status,
            attempts=o.attempts,
            now=now,
            next_attempt_at=o.next_attempt_at,
            status_code=o.status_code,
            error=o.error,
        ):
            kept.add(o.delivery_id)
    for (attempts, status_code), ids in delivered.items():
        result = conn.execute(
            update(deliveries)
            .where(
                deliveries.c.id.in_(ids),
                deliveries.c.lease_owner == owner,
                deliveries.c.status == "pending",
            )
            .values(
                status="delivered",
                attempts=attempts,
                lease_owner=None,
                lease_until=None,
                last_status_code=status_code,
                last_error=None,
                delivered_at=now,
            )
            .returning(deliveries.c.id)
        )
        kept.update(int(i) for i in result.scalars())
    return kept


def release(conn: Connection, ids: Iterable[int], owner: str) -> None:
    """Give leases back without an attempt (a relay stopping)."""
    ids = list(ids)
    if ids:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(ids), deliveries.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )


def redeliver(
    conn: Connection, subscription_id: int, ids: Sequence[int] | None, now: datetime
) -> int:
    stmt = update(deliveries).where(
        deliveries.c.subscription_id == subscription_id, deliveries.c.status == "dead"
    )
    if ids is not None:
        stmt = stmt.where(deliveries.c.id.in_(list(ids)))
    result = conn.execute(
        stmt.values(
            status="pending",
            attempts=0,
            next_attempt_at=now,
            dead_at=None,
            lease_owner=None,
            lease_until=None,
        )
    )
    return int(result.rowcount)


def delivery_rows(
    conn: Connection,
    subscription_id: int,
    *,
    status: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    stmt = (
        select(
            deliveries.c.id,
            deliveries.c.status,
            deliveries.c.attempts,
            deliveries.c.feed_position,
            deliveries.c.next_attempt_at,
            deliveries.c.last_status_code,
            deliveries.c.last_error,
            deliveries.c.created_at,
            deliveries.c.delivered_at,
            deliveries.c.dead_at,
            outbox.c.event_id,
            outbox.c.event_type,
            outbox.c.canonical_id,
        )
        .join(outbox, outbox.c.position == deliveries.c.event_position)
        .where(and_(deliveries.c.subscription_id == subscription_id, deliveries.c.id > after_id))
        .order_by(deliveries.c.id)
        .limit(limit)
    )
    if status is not None:
        stmt = stmt.where(deliveries.c.status == status)
    return [dict(row._mapping) for row in conn.execute(stmt)]


def prune_delivered(conn: Connection, before: datetime, limit: int = 10_000) -> int:
    """Delete up to ``limit`` delivered deliveries older than ``before``; how many."""
    old = (
        select(deliveries.c.id)
        .where(deliveries.c.status == "delivered", deliveries.c.delivered_at < before)
        .limit(limit)
    )
    result = conn.execute(deliveries.delete().where(deliveries.c.id.in_(old.scalar_subquery())))
    return int(result.rowcount)


# --- subscriptions as ORM objects (the subscription service edits them in place) -----


def subscription_objects(session: Session, client_id: int | None = None) -> list[Subscription]:
    """Every subscription (or one client's), by id."""
    stmt = select(Subscription).order_by(Subscription.id)
    if client_id is not None:
        stmt = stmt.where(Subscription.client_id == client_id)
    return list(session.scalars(stmt))


def delete_subscription(session: Session, sub: Subscription) -> None:
    """Delete a subscription and its deliveries (pending ones included)."""
    session.execute(delete(Delivery).where(Delivery.subscription_id == sub.id))
    session.delete(sub)
