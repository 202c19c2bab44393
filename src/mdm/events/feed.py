"""The change feed: events in commit order, with a cursor that never skips one.

``outbox_events.position`` is taken when an event is *written*. On Postgres two
transactions can commit in the other order (A takes 10, B takes 11, B commits first),
so a reader paging by ``position`` would see 11, move its cursor past 10 and never see
10. The **sequencer** fixes this: :func:`sequence_events` gives every *committed*
event without one a dense ``feed_position`` (last + 1, last + 2, ...) in write order,
under a lock so only one sequencer runs at a time. A statement only sees committed
rows, and one sequencer's numbers become visible together when it commits, before
the next one can start: feed positions appear in order, without gaps, and a reader
paging by ``feed_position`` misses nothing. On SQLite (one writer) write order is
commit order already; the same code runs there.

Within one entity, feed order is ``sequence`` order: an entity's event ``n + 1`` is
written by a transaction that saw ``n`` committed.

The relay (``mdm relay``) runs the sequencer in every round; the feed does not move
while no relay runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from mdm.events.outbox import EVENT_TYPES
from mdm.exceptions import BadRequest
from mdm.store.db import Connection, Session
from mdm.store.models import utcnow
from mdm.store.repositories import events as repo

# Keys of an event's ``data`` that name another canonical ID (merges and unmerges).
RELATED_ID_KEYS: tuple[str, ...] = ("merged_into", "absorbed", "split_into", "split_from")
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Filters:
    """What a subscriber wants. Empty means everything. A watch-list entry matches
    an event of that entity and an event that names it (a merge into or out of it)."""

    entity_types: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    canonical_ids: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> Filters:
        value = value or {}
        event_types = tuple(str(t) for t in value.get("event_types") or ())
        unknown = sorted(set(event_types) - set(EVENT_TYPES))
        if unknown:
            raise BadRequest(f"unknown event types {unknown}; known: {list(EVENT_TYPES)}")
        return cls(
            entity_types=tuple(str(t) for t in value.get("entity_types") or ()),
            event_types=event_types,
            canonical_ids=frozenset(str(c) for c in value.get("canonical_ids") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "entity_types": list(self.entity_types),
            "event_types": list(self.event_types),
            "canonical_ids": sorted(self.canonical_ids),
        }

    def matches(self, ev: repo.FeedEvent) -> bool:
        if self.entity_types and ev.entity_type not in self.entity_types:
            return False
        if self.event_types and ev.event_type not in self.event_types:
            return False
        if not self.canonical_ids:
            return True
        return bool(self.canonical_ids.intersection(ids_named(ev)))


def ids_named(ev: repo.FeedEvent) -> set[str]:
    """The canonical IDs an event is about: its own and any it names in ``data``."""
    ids = {ev.canonical_id}
    data = ev.payload.get("data") or {}
    for key in RELATED_ID_KEYS:
        value = data.get(key)
        if isinstance(value, str):
            ids.add(value)
    return ids


def event_dict(ev: repo.FeedEvent) -> dict[str, Any]:
    """The published form of an event (webhook body, feed item, NATS message)."""
    return {**ev.payload, "sequence": ev.sequence, "position": ev.feed_position}


def event_body(ev: repo.FeedEvent) -> bytes:
    """The exact bytes sent (and signed): compact JSON, keys sorted, UTF-8."""
    return orjson.dumps(event_dict(ev), option=orjson.OPT_SORT_KEYS)


def sequence_events(conn: Connection, *, limit: int = 10_000, now: datetime | None = None) -> int:
    """Give committed events their feed positions; returns how many got one.

    Returns -1 without doing anything when another transaction is sequencing (the
    caller's transaction must commit for the numbers to become visible).
    """
    now = now or utcnow()
    last = repo.lock_cursor(conn, repo.SEQUENCER, now)
    if last is None:
        return -1
    positions = repo.unsequenced(conn, limit)
    if positions:
        repo.assign_feed_positions(conn, positions, last + 1)
        repo.set_cursor(conn, repo.SEQUENCER, last + len(positions), now)
    return len(positions)


@dataclass(frozen=True, slots=True)
class FeedPage:
    events: list[dict[str, Any]]
    # Pass as ``after`` for the next page: the last position *looked at*, which may
    # be past the last event returned when the filters skipped some.
    next_after: int


def events_after(
    session: Session, after: int, limit: int = 100, filters: Filters | None = None
) -> FeedPage:
    """One page of the feed after position ``after`` (0: from the beginning)."""
    if after < 0:
        raise BadRequest("after must be 0 or a position from the feed")
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE}")
    filters = filters or Filters()
    conn = session.connection()
    out: list[dict[str, Any]] = []
    cursor = after
    scan = max(limit, 200)
    for _ in range(20):  # bound the work of one page when the watch list is selective
        batch = repo.feed_events(
            conn,
            cursor,
            scan,
            entity_types=filters.entity_types,
            event_types=filters.event_types,
        )
        for ev in batch:
            cursor = ev.feed_position
            if filters.matches(ev):
                out.append(event_dict(ev))
                if len(out) == limit:
                    return FeedPage(out, cursor)
        if len(batch) < scan:
            break
    return FeedPage(out, cursor)


def sse_message(event: Mapping[str, Any]) -> str:
    data = orjson.dumps(event, option=orjson.OPT_SORT_KEYS).decode()
    return f"id: {event['position']}\nevent: {event['type']}\ndata: {data}\n\n"


async def event_stream(
    read_page: Callable[[int], FeedPage],
    after: int,
    *,
    poll_seconds: float = 0.5,
    heartbeat_seconds: float = 15.0,
    max_events: int | None = None,
    still_allowed: Callable[[], bool] | None = None,
    recheck_seconds: float = 30.0,
) -> AsyncIterator[str]:
    """Server-Sent Events: every event after ``after``, then new ones as they come.

    ``read_page(after)`` reads one page in its own short transaction (it runs in a
    worker thread, so the event loop never blocks on the database). Each message's
    ``id`` is the feed position: a client that reconnects with ``Last-Event-ID``
    resumes where it stopped. A comment line every ``heartbeat_seconds`` keeps
    proxies from closing an idle stream.

    ``still_allowed()`` (run in a worker thread at least every ``recheck_seconds``,
    busy or idle) says whether the caller may still read: when it answers no (its key
    was revoked), the stream sends a last comment and ends.
    """
    sent = 0
    idle = 0.0
    cursor = after
    checked = time.monotonic()
    while True:
        if still_allowed is not None and time.monotonic() - checked >= recheck_seconds:
            if not await asyncio.to_thread(still_allowed):
                yield ": access revoked\n\n"
                return
            checked = time.monotonic()
        page = await asyncio.to_thread(read_page, cursor)
        cursor = page.next_after
        for ev in page.events:
            yield sse_message(ev)
            sent += 1
            if max_events is not None and sent >= max_events:
                return
        if page.events:
            idle = 0.0
            continue
        await asyncio.sleep(
            poll_seconds
            if still_allowed is None
            else max(0.0, min(poll_seconds, checked + recheck_seconds - time.monotonic()))
        )
        idle += poll_seconds
        if idle >= heartbeat_seconds:
            idle = 0.0
            yield ": keep-alive\n\n"


def parse_filters(
    entity_types: Sequence[str] | None = None,
    event_types: Sequence[str] | None = None,
    canonical_ids: Sequence[str] | None = None,
) -> Filters:
    """Filters from query parameters (comma-separated or repeated)."""

    def split(values: Sequence[str] | None) -> list[str]:
        return [v.strip() for item in values or () for v in item.split(",") if v.strip()]

    return Filters.from_json(
        {
            "entity_types": split(entity_types),
            "event_types": split(event_types),
            "canonical_ids": split(canonical_ids),
        }
    )
