"""Benchmark: commit-to-delivery lag of events, for webhooks and for NATS JetStream.

A scratch Postgres database (or ``--database-url``) gets ``--entities`` citizen
entities; then a writer commits ``--rate`` changes a second for ``--seconds``: each
change is an ``entity.updated`` outbox event of an existing entity, written with
``write_events`` in a transaction of its own tick (10 ms of changes per commit), as
the services write them. Meanwhile ``--relays`` ``mdm relay`` processes deliver to a
webhook receiver on loopback (a threaded HTTP server in this process) and one
``mdm relay --nats`` publishes to a stream of its own that this process consumes.

Lag = first arrival at the receiver (or the NATS consumer) minus the moment the
writer's commit returned. Prints p50/p95/p99/max per channel, the events not arrived
after the drain, and whether every entity's events arrived in order. The target of
issue 8: p95 <= 1 s at 500 changes/s for 60 s.

    .venv/bin/python scripts/bench_events.py                         # 500/s for 60 s
    .venv/bin/python scripts/bench_events.py --rate 200 --seconds 10  # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import orjson
from _common import machine, scratch_postgres
from nats.aio.client import Client as NATS
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from mdm.events.destinations import DestinationPolicy, parse_networks
from mdm.events.feed import sequence_events
from mdm.events.outbox import PendingEvent, write_events
from mdm.services.identity import apply_partition
from mdm.services.subscriptions import create_subscription
from mdm.store import migrate
from mdm.store.db import make_engine
from mdm.store.models import (
    ApiClient,
    Entity,
    OutboxEvent,
    SourceRecord,
    SourceRecordVersion,
    SourceSystem,
    utcnow,
)

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 7, 1, tzinfo=UTC)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)

    def p(q: float) -> float:
        return round(v[min(len(v) - 1, int(q * len(v)))], 4)

    return {"p50": p(0.50), "p95": p(0.95), "p99": p(0.99), "max": round(v[-1], 4)}


def make_entities(engine: Engine, n: int) -> list[tuple[int, str]]:
    with Session(engine) as s, s.begin():
        conn = s.connection()
        sid = conn.execute(
            insert(SourceSystem)
            .values(name="bench", trust={"citizen": {"default": 0.5}}, created_at=T0)
            .returning(SourceSystem.id)
        ).scalar_one()
        rids = [
            int(r)
            for r in conn.execute(
                insert(SourceRecord).returning(SourceRecord.id),
                [
                    {
                        "source_system_id": sid,
                        "source_key": str(i),
                        "entity_type": "citizen",
                        "current_version": 1,
                        "status": "active",
                        "first_seen_at": T0,
                        "updated_at": T0,
                    }
                    for i in range(n)
                ],
            ).scalars()
        ]
        conn.execute(
            insert(SourceRecordVersion),
            [
                {
                    "source_record_id": r,
                    "version": 1,
                    "raw": {},
                    "standardized": {"full_name": f"Nguyễn Văn {r}"},
                    "issues": [],
                    "content_hash": f"bench/{r}",
                    "received_at": T0,
                }
                for r in rids
            ],
        )
        apply_partition(s, "citizen", [[r] for r in rids])
    with engine.connect() as conn:
        return [(int(i), str(c)) for i, c in conn.execute(select(Entity.id, Entity.canonical_id))]


class Arrivals:
    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.order: list[tuple[str, int]] = []  # (canonical_id, sequence) by arrival
        self.lock = threading.Lock()

    def add(self, body: bytes) -> None:
        now = time.time()
        ev = orjson.loads(body)
        with self.lock:
            if ev["event_id"] not in self.first:
                self.first[ev["event_id"]] = now
                self.order.append((ev["canonical_id"], ev["sequence"]))


@contextmanager
def receiver(arrivals: Arrivals) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        # keep-alive: the relays reuse their connections instead of a TCP handshake
        # (and a thread) per request
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            arrivals.add(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 128  # the default backlog of 5 resets connections

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def nats_consumer(url: str, subjects: str, arrivals: Arrivals, stop: threading.Event) -> None:
    async def run() -> None:
        nc = NATS()
        await nc.connect(servers=[url])

        async def on(msg: Any) -> None:
            arrivals.add(msg.data)

        # core subscription on the stream's subjects: sees each message as published
        await nc.subscribe(subjects, cb=on)
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await nc.drain()

    asyncio.run(run())


# The receiver listens on loopback, where webhooks may not point by default: this
# benchmark allows it as an operator would (docs/events.md, "Where webhooks may point").
LOOPBACK_ENV = {"MDM_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}
LOOPBACK = DestinationPolicy(allowed_networks=parse_networks("127.0.0.0/8"))


def in_order(order: list[tuple[str, int]]) -> bool:
    last: dict[str, int] = {}
    for cid, seq in order:
        if seq <= last.get(cid, 0):
            return False
        last[cid] = seq
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", help="default: a scratch database on the local Postgres")
    ap.add_argument("--rate", type=int, default=500, help="changes per second")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--entities", type=int, default=5000)
    ap.add_argument("--relays", type=int, default=1, help="webhook relay processes")
    ap.add_argument("--nats", default="nats://127.0.0.1:4222", help="'' to skip NATS")
    ap.add_argument("--drain", type=float, default=30, help="seconds to wait after writing")
    args = ap.parse_args()

    print(f"machine: {machine()}", file=sys.stderr)
    scratch = (
        nullcontext(args.database_url) if args.database_url else scratch_postgres("mdm_bench_ev")
    )
    with scratch as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        entities = make_entities(engine, args.entities)
        print(f"{len(entities)} entities", file=sys.stderr)
        hooks, feed = Arrivals(), Arrivals()
        tag = uuid.uuid4().hex[:8]
        stream, prefix = f"MDM_BENCH_{tag}", f"mdmbench{tag}"
        procs: list[subprocess.Popen[bytes]] = []
        stop = threading.Event()
        with receiver(hooks) as hook_url:
            with Session(engine) as s, s.begin():
                client = s.execute(
                    insert(ApiClient)
                    .values(name=f"bench-{tag}", key_prefix=tag, key_hash="x", scopes=["*:read"])
                    .returning(ApiClient.id)
                ).scalar_one()
                # the subscription starts after the entities' creation events
                while sequence_events(s.connection()) > 0:
                    pass
                create_subscription(s, int(client), hook_url, policy=LOOPBACK)
            env = {**os.environ, "MDM_DATABASE_URL": url, **LOOPBACK_ENV}
            for _ in range(args.relays):
                procs.append(subprocess.Popen([sys.executable, "-m", "mdm", "relay"], env=env))
            consumer = None
            if args.nats:
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "mdm",
                            "relay",
                            "--nats",
                            args.nats,
                            "--stream",
                            stream,
                            "--subject-prefix",
                            prefix,
                        ],
                        env=env,
                    )
                )
                consumer = threading.Thread(
                    target=nats_consumer, args=(args.nats, f"{prefix}.>", feed, stop), daemon=True
                )
                consumer.start()
            time.sleep(3)  # let the relays start

            committed: dict[str, float] = {}
            versions = dict.fromkeys((e for e, _ in entities), 1)
            tick = 0.01
            per_tick = args.rate * tick
            owed = 0.0
            i = 0
            with engine.connect() as c:
                last_position = int(
                    c.execute(select(func.coalesce(func.max(OutboxEvent.position), 0))).scalar_one()
                )
            start = time.time()
            next_tick = start
            with engine.connect() as conn:
                while time.time() - start < args.seconds:
                    owed += per_tick
                    n = int(owed)
                    owed -= n
                    batch = []
                    for _ in range(n):
                        eid, cid = entities[i % len(entities)]
                        i += 1
                        versions[eid] += 1
                        batch.append(
                            PendingEvent(
                                eid,
                                cid,
                                "citizen",
                                "entity.updated",
                                versions[eid],
                                {"changed": []},
                            )
                        )
                    if batch:
                        with conn.begin():
                            write_events(conn, batch, utcnow())
                        done = time.time()
                        rows = conn.execute(
                            select(OutboxEvent.event_id, OutboxEvent.position).where(
                                OutboxEvent.position > last_position
                            )
                        ).all()
                        conn.commit()
                        for event_id, position in rows:
                            committed[event_id] = done
                            last_position = max(last_position, int(position))
                    next_tick += tick
                    time.sleep(max(0.0, next_tick - time.time()))
            wrote = time.time() - start
            deadline = time.time() + args.drain
            while time.time() < deadline:
                if all(e in hooks.first for e in committed) and (
                    not args.nats or all(e in feed.first for e in committed)
                ):
                    break
                time.sleep(0.5)
            stop.set()
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
            if consumer is not None:
                consumer.join(5)
            if args.nats:

                async def drop() -> None:
                    nc = NATS()
                    await nc.connect(servers=[args.nats])
                    await nc.jetstream().delete_stream(stream)
                    await nc.close()

                asyncio.run(drop())
        report: dict[str, Any] = {
            "changes": len(committed),
            "rate_achieved": round(len(committed) / wrote, 1),
            "relays": args.relays,
        }
        for name, arr in (("webhooks", hooks), ("nats", feed)):
            if name == "nats" and not args.nats:
                continue
            lags = [arr.first[e] - t for e, t in committed.items() if e in arr.first]
            report[name] = {
                "lag_seconds": percentiles(lags),
                "missing": len(committed) - len(lags),
                "in_order_per_entity": in_order(arr.order),
            }
        engine.dispose()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
