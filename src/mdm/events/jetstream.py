"""The broker relay: the feed, published to a NATS JetStream stream.

Subjects are ``<prefix>.<entity_type>.<verb>`` (``mdm.citizen.created``,
``mdm.organization.merged``): NATS splits subjects on dots, so the event type's
``entity.`` is dropped and a consumer can subscribe to ``mdm.citizen.>`` or
``mdm.*.merged``. The body is the same JSON as a webhook's.

Exactly-once into the stream, in feed order:

* messages are published one after another in feed order, each awaited until the
  stream acknowledges it (PubAck);
* each carries ``Nats-Msg-Id: <event_id>``: the stream drops a message whose ID it has
  seen within its duplicate window, so republishing after a crash adds nothing;
* the publisher's cursor (``event_cursors`` row ``nats:<stream>``) moves only after
  the acknowledgements, in the database; a crash between the two republishes the
  batch, which the duplicate window absorbs;
* one publisher per stream at a time holds the cursor's lease; another takes over
  when the lease of a dead one runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from mdm.domain.clock import utcnow
from mdm.events.feed import event_body, sequence_events
from mdm.events.relay import new_owner
from mdm.store.db import Engine
from mdm.store.repositories import events as repo

log = logging.getLogger(__name__)

DEFAULT_STREAM = "MDM_EVENTS"
DEFAULT_PREFIX = "mdm"
DUPLICATE_WINDOW_SECONDS = 600.0


def subject_for(prefix: str, entity_type: str, event_type: str) -> str:
    return f"{prefix}.{entity_type}.{event_type.removeprefix('entity.')}"


def cursor_name(stream: str) -> str:
    return f"nats:{stream}"


class NatsRelay:
    def __init__(
        self,
        engine: Engine,
        *,
        stream: str = DEFAULT_STREAM,
        subject_prefix: str = DEFAULT_PREFIX,
        batch_size: int = 500,
        lease_seconds: float = 30.0,
        poll_seconds: float = 0.2,
        owner: str | None = None,
    ) -> None:
        self.engine = engine
        self.stream = stream
        self.prefix = subject_prefix
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.owner = owner or new_owner()
        self.published = 0
        self.duplicates = 0

    async def ensure_stream(self, js: JetStreamContext) -> None:
        """Create the stream if it is missing (an existing one is left as it is)."""
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=[f"{self.prefix}.>"],
                    storage=StorageType.FILE,
                    duplicate_window=DUPLICATE_WINDOW_SECONDS,
                )
            )

    def _lease(self) -> int | None:
        now = utcnow()
        with self.engine.begin() as conn:
            repo.ensure_cursor(conn, cursor_name(self.stream), 0, now)
            return repo.lease_cursor(
                conn,
                cursor_name(self.stream),
                self.owner,
                now,
                now + timedelta(seconds=self.lease_seconds),
            )

    def _sequence(self) -> None:
        with self.engine.begin() as conn:
            sequence_events(conn)

    def _events(self, after: int) -> list[repo.FeedEvent]:
        with self.engine.connect() as conn:
            return repo.feed_events(conn, after, self.batch_size)

    def _advance(self, position: int) -> bool:
        with self.engine.begin() as conn:
            return repo.advance_leased_cursor(
                conn, cursor_name(self.stream), self.owner, position, utcnow()
            )

    async def publish_once(self, js: JetStreamContext, *, advance: bool = True) -> int:
        """Publish one batch after the cursor; returns how many were published (0 when
        idle or while another publisher holds the lease). ``advance=False`` leaves the
        cursor where it was (a crash before the cursor update, for tests)."""
        await asyncio.to_thread(self._sequence)
        after = await asyncio.to_thread(self._lease)
        if after is None:
            return 0
        events = await asyncio.to_thread(self._events, after)
        for ev in events:
            ack = await js.publish(
                subject_for(self.prefix, ev.entity_type, ev.event_type),
                event_body(ev),
                stream=self.stream,
                headers={"Nats-Msg-Id": str(ev.payload["event_id"])},
            )
            self.published += 1
            if ack.duplicate:
                self.duplicates += 1
        if (
            events
            and advance
            and not await asyncio.to_thread(self._advance, events[-1].feed_position)
        ):
            log.warning("lost the lease on %s; another publisher goes on", self.stream)
        return len(events)

    async def run(self, url: str, stop: asyncio.Event) -> None:
        nc = NATS()
        await nc.connect(servers=[url], name=f"mdm-relay {self.owner}", max_reconnect_attempts=-1)
        try:
            js = nc.jetstream()
            await self.ensure_stream(js)
            while not stop.is_set():
                try:
                    n = await self.publish_once(js)
                except Exception:  # broker or database away: retry, the cursor is safe
                    log.exception("NATS relay round failed")
                    n = 0
                if n == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll_seconds)
        finally:
            await nc.drain()
