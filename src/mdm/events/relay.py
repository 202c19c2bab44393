"""The webhook relay: at-least-once delivery, in order per entity, signed.

One round of a relay process:

1. **Sequence and fan out** (one transaction, one relay at a time: the sequencer's
   lock). Committed events get their feed positions (:mod:`mdm.events.feed`); then
   every subscription's new events that pass its filters become ``deliveries`` rows
   (``pending``), and the subscription's ``feed_cursor`` moves past them. The
   delivery rows are each subscription's own queue: the outbox is read once.
2. **Claim** (one short transaction, one statement). Lease a batch of due deliveries
   that are the *head* of their (subscription, entity): no earlier pending delivery
   of that pair exists.
   ``FOR UPDATE SKIP LOCKED`` on Postgres lets relays claim side by side without
   waiting for each other; the lease (``lease_until``) keeps a claimed delivery out of
   every other relay's hands until it is completed or the lease runs out, which is
   how the work of a relay killed with ``kill -9`` is taken over.
3. **Deliver** (outside any transaction). Pool threads POST the claimed events
   concurrently over one keep-alive connection pool; the loop records the finished
   attempts of each round in one transaction, each only if this relay still holds
   its lease. 2xx: ``delivered``, and the entity's next event becomes the head.
   Anything else (status, timeout, refused connection): another attempt after an
   exponential backoff with full jitter, or, after ``max_attempts``, a dead letter.

Why order per entity holds with several relays: only a head can be claimed, a head
stays pending (so its successors are not heads) until an attempt is recorded, and a
lease is longer than the HTTP timeout, and a relay does not start a request unless
its lease will outlast it, so a request from a relay that lost its lease cannot still
be in flight when another relay delivers the next event.

Where a webhook may point is checked again on every connection
(:mod:`mdm.events.destinations`): the relay resolves the host itself, checks every
address and connects to a checked one. A refused destination is a failed attempt
like any other (retried, then a dead letter) whose recorded error says only
"destination refused"; no other failure records more than its kind either (a status
code, "timed out", "could not connect"), so a subscriber cannot use the relay to
learn about hosts and ports.

A dead letter does not hold the entity back: it stops blocking, the entity's later
events go on, and the dead letter waits to be redelivered (then out of order; each
event carries its per-entity ``sequence`` so a receiver can tell).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import orjson

from mdm.config import Settings, get_settings
from mdm.domain.canonical_id import TYPE_PREFIX
from mdm.domain.clock import utcnow
from mdm.domain.scopes import has_scope
from mdm.events.destinations import DestinationPolicy, DestinationRefused
from mdm.events.feed import Filters, sequence_events
from mdm.events.pinned_http import pinned_client
from mdm.events.signing import signature
from mdm.store.db import Connection, Engine
from mdm.store.repositories import events as repo

log = logging.getLogger(__name__)

USER_AGENT = "mdm-relay/1"
#: a fan-out this large refreshes the queue's planner statistics (see fan_out)
ANALYZE_AFTER = 1000


@dataclass(frozen=True, slots=True)
class RelayConfig:
    max_attempts: int = 15
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 3600.0
    http_timeout_seconds: float = 10.0
    lease_seconds: float = 30.0
    batch_size: int = 200
    concurrency: int = 16
    poll_seconds: float = 0.2
    fanout_batch: int = 5000
    keep_delivered_days: float = 7.0
    prune_every_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.lease_seconds <= self.http_timeout_seconds + 1:
            raise ValueError("the lease must outlast the HTTP timeout by more than a second")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> RelayConfig:
        s = settings or get_settings()
        return cls(
            max_attempts=s.relay_max_attempts,
            backoff_base_seconds=s.relay_backoff_base_seconds,
            backoff_max_seconds=s.relay_backoff_max_seconds,
            http_timeout_seconds=s.relay_http_timeout_seconds,
            lease_seconds=s.relay_lease_seconds,
            batch_size=s.relay_batch_size,
            concurrency=s.relay_concurrency,
            poll_seconds=s.relay_poll_seconds,
            keep_delivered_days=s.relay_keep_delivered_days,
        )


def backoff_seconds(
    attempts: int, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempts - 1))].

    Spreads the retries of many failing deliveries instead of sending them in waves
    at a receiver that is coming back up.
    """
    ceiling = min(cap, base * 2.0 ** min(attempts - 1, 62))
    return rng() * ceiling


def new_owner() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def fan_out(conn: Connection, *, limit: int = 5000) -> int:
    """Queue deliveries of new feed events for every subscription; returns how many.

    Must run under the sequencer's lock (see :func:`WebhookRelay.tick`), so that one
    relay at a time moves the subscriptions' cursors. Paused subscriptions queue too
    (resuming delivers what happened meanwhile). A watch list follows merges: when a
    watched entity is merged into another, the survivor is watched from then on.
    """
    subs = repo.subscription_states(conn)
    if not subs:
        return 0
    tip = repo.cursor_position(conn, repo.SEQUENCER) or 0
    low = min(s.feed_cursor for s in subs)
    if low >= tip:
        return 0
    events = repo.feed_events(conn, low, limit, upto=tip)
    if not events:
        return 0
    last = events[-1].feed_position
    rows: list[dict[str, Any]] = []
    now = utcnow()
    for sub in subs:
        if sub.feed_cursor >= last:
            continue
        filters = Filters.from_json(sub.filters)
        # A webhook is a read by its client: only the entity types its key may read
        # (none once the key is revoked), whatever the subscription's filters say.
        readable = {t for t in TYPE_PREFIX if has_scope(sub.client_scopes, t, "read")}
        followed = False
        for ev in events:
            if ev.feed_position <= sub.feed_cursor or ev.entity_type not in readable:
                continue
            if not filters.matches(ev):
                continue
            rows.append(
                {
                    "subscription_id": sub.id,
                    "event_position": ev.position,
                    "feed_position": ev.feed_position,
                    "entity_id": ev.entity_id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
            survivor = (ev.payload.get("data") or {}).get("merged_into")
            if (
                filters.canonical_ids
                and ev.event_type == "entity.merged"
                and isinstance(survivor, str)
                and survivor not in filters.canonical_ids
            ):
                filters = Filters(
                    filters.entity_types, filters.event_types, filters.canonical_ids | {survivor}
                )
                followed = True
        new_filters = {**sub.filters, **filters.to_json()} if followed else None
        repo.set_subscription_cursor(conn, sub.id, last, new_filters)
    repo.insert_deliveries(conn, rows)
    if len(rows) >= ANALYZE_AFTER:
        repo.analyze_deliveries(conn)
    return len(rows)


def _body(d: repo.ClaimedDelivery) -> bytes:
    return orjson.dumps(
        {**d.payload, "sequence": d.sequence, "position": d.feed_position},
        option=orjson.OPT_SORT_KEYS,
    )


def _failure(exc: Exception) -> str:
    """What a delivery records of a failed request: its kind only (the subscriber
    reads it; the address, port or the exception's text would tell them more than
    their own receiver's state)."""
    if isinstance(exc, DestinationRefused):
        return exc.delivery_error
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.TransportError):
        return "connection failed"
    return "request failed"


class WebhookRelay:
    """One relay process's worker. Thread-safe: attempts run in a thread pool."""

    def __init__(
        self,
        engine: Engine,
        config: RelayConfig | None = None,
        *,
        owner: str | None = None,
        client: httpx.Client | None = None,
        policy: DestinationPolicy | None = None,
    ) -> None:
        """``policy``: where webhooks may point (default: from the settings), checked
        on every connection; a ``client`` given instead does no such check."""
        self.engine = engine
        self.config = config or RelayConfig.from_settings()
        self.owner = owner or new_owner()
        self.policy = policy or DestinationPolicy.from_settings()
        self.client = client or pinned_client(
            self.policy,
            timeout=self.config.http_timeout_seconds,
            headers={"User-Agent": USER_AGENT},
            # every pool thread keeps its connection alive between requests
            keepalive=max(20, self.config.concurrency),
        )
        self.stats = {"delivered": 0, "failed": 0, "dead": 0, "lost_lease": 0}
        self._lock = threading.Lock()
        self._busy = False  # the last claim found work: claim again without looking

    def close(self) -> None:
        self.client.close()

    # --- the three steps ---------------------------------------------------------

    def tick(self) -> int:
        """Sequence committed events and fan them out; -1 if another relay is at it."""
        with self.engine.connect() as conn:
            if not repo.needs_tick(conn):
                return 0
        with self.engine.begin() as conn:
            n = sequence_events(conn)
            if n < 0:
                return -1
            return fan_out(conn, limit=self.config.fanout_batch)

    def claim(self, limit: int) -> list[repo.ClaimedDelivery]:
        if limit <= 0:
            return []
        now = utcnow()
        until = now + timedelta(seconds=self.config.lease_seconds)
        if not self._busy:  # idle: look before taking the write lock (SQLite)
            with self.engine.connect() as conn:
                if not repo.any_claimable(conn, now):
                    return []
        with self.engine.begin() as conn:
            ids = repo.claim_heads(conn, self.owner, now, until, limit)
            found = repo.claimed(conn, ids)
        self._busy = bool(found)
        return found

    def send(self, d: repo.ClaimedDelivery, claimed_at: float | None = None) -> repo.Outcome | None:
        """POST one claimed delivery (no database work: runs in the pool); the outcome
        to record, or ``None`` if the lease would not outlast the request (then
        nothing was sent and the lease is to be given back)."""
        cfg = self.config
        if (
            claimed_at is not None
            and time.monotonic() - claimed_at > cfg.lease_seconds - cfg.http_timeout_seconds - 0.5
        ):
            return None
        body = _body(d)
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-MDM-Event-Id": d.event_id,
            "X-MDM-Timestamp": ts,
            "X-MDM-Signature": signature(d.secret, ts, body),
            "X-MDM-Delivery-Attempt": str(d.attempts + 1),
        }
        status_code: int | None = None
        error: str | None = None
        try:
            response = self.client.post(d.url, content=body, headers=headers)
            status_code = response.status_code
            ok = 200 <= status_code < 300
            if not ok:
                error = f"HTTP {status_code} {httpx.codes.get_reason_phrase(status_code)}".strip()
        except Exception as exc:  # refused, timeout, bad URL...: a failed attempt
            ok = False
            error = _failure(exc)
            log.debug("delivery %s failed: %s: %s", d.id, type(exc).__name__, exc)
        attempts = d.attempts + 1
        if ok:
            return repo.Outcome(d.id, "delivered", attempts, status_code=status_code)
        if attempts >= cfg.max_attempts:
            return repo.Outcome(d.id, "dead", attempts, status_code=status_code, error=error)
        retry_at = utcnow() + timedelta(
            seconds=backoff_seconds(attempts, cfg.backoff_base_seconds, cfg.backoff_max_seconds)
        )
        return repo.Outcome(d.id, "pending", attempts, retry_at, status_code, error)

    def record(
        self,
        done: list[tuple[repo.ClaimedDelivery, repo.Outcome | None]],
    ) -> None:
        """Record a batch of attempts in one transaction (and give back the leases of
        the deliveries not sent)."""
        if not done:
            return
        outcomes = [o for _, o in done if o is not None]
        unsent = [d.id for d, o in done if o is None]
        with self.engine.begin() as conn:
            if unsent:
                repo.release(conn, unsent, self.owner)
            kept = repo.complete_many(conn, outcomes, self.owner, utcnow())
        for _ in unsent:
            self._count("lost")
        by_id = {d.id: d for d, _ in done}
        for o in outcomes:
            if o.delivery_id not in kept:
                self._count("lost")
                continue
            if o.status == "dead":
                d = by_id[o.delivery_id]
                log.warning(
                    "delivery %s of event %s to subscription %s is a dead letter "
                    "after %d attempts: %s",
                    d.id,
                    d.event_id,
                    d.subscription_id,
                    o.attempts,
                    o.error,
                )
            self._count({"delivered": "delivered", "pending": "failed", "dead": "dead"}[o.status])

    def _count(self, outcome: str) -> str:
        key = "lost_lease" if outcome == "lost" else outcome
        with self._lock:
            self.stats[key] += 1
        return outcome

    def prune(self) -> int:
        """Delete delivered deliveries older than ``keep_delivered_days`` (the events
        stay in the feed; pending and dead ones are kept)."""
        before = utcnow() - timedelta(days=self.config.keep_delivered_days)
        with self.engine.begin() as conn:
            return repo.prune_delivered(conn, before)

    # --- the loop ----------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set; then finish the requests in flight.

        The pool threads only POST (over the client's keep-alive connections); this
        thread claims in batches, keeping up to two batches queued so one claim
        statement feeds many requests, and records the finished attempts of each
        round in one transaction. A queued delivery whose lease has run too short by
        the time a worker reaches it is released, not sent.
        """
        cfg = self.config
        # claim statements cost about the same for 20 rows or 200: claim full batches
        capacity = max(cfg.concurrency * 4, cfg.batch_size * 2)
        refill = max(cfg.concurrency, cfg.batch_size // 2)
        inflight: dict[Future[repo.Outcome | None], repo.ClaimedDelivery] = {}
        next_prune = time.monotonic() + cfg.prune_every_seconds
        with ThreadPoolExecutor(cfg.concurrency, thread_name_prefix="relay") as pool:
            while True:
                stopping = stop.is_set()
                if stopping and not inflight:
                    break
                if not stopping and time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + cfg.prune_every_seconds
                    try:
                        self.prune()
                    except Exception:
                        log.exception("pruning delivered deliveries failed")
                batch: list[repo.ClaimedDelivery] = []
                room = capacity - len(inflight)
                if not stopping and (room >= refill or not inflight):
                    try:
                        self.tick()
                        batch = self.claim(min(cfg.batch_size, room))
                    except Exception:  # database down: keep trying, leases protect us
                        log.exception("relay round failed")
                        stop.wait(max(cfg.poll_seconds, 1.0))
                        continue
                claimed_at = time.monotonic()
                for d in batch:
                    inflight[pool.submit(self.send, d, claimed_at)] = d
                if not inflight:
                    stop.wait(cfg.poll_seconds)
                    continue
                finished, _ = wait(
                    list(inflight),
                    timeout=0 if len(batch) >= cfg.concurrency else cfg.poll_seconds,
                    return_when=FIRST_COMPLETED,
                )
                done: list[tuple[repo.ClaimedDelivery, repo.Outcome | None]] = []
                for f in finished:
                    d = inflight.pop(f)
                    exc = f.exception()
                    if exc is not None:  # a bug, not a failed request: give the lease back
                        log.error("delivery attempt failed", exc_info=exc)
                        done.append((d, None))
                    else:
                        done.append((d, f.result()))
                try:
                    self.record(done)
                except Exception:  # database down: the leases run out, others retry
                    log.exception("recording %d attempts failed", len(done))
                    stop.wait(max(cfg.poll_seconds, 1.0))
