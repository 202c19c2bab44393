"""Event-delivery fixtures: committed databases, real entities, a real HTTP receiver.

Events come from real entity changes through the services (``apply_partition``
creates entities, ``set_override`` updates them, ``merge_entities`` merges), each in
its own committed unit of work, as the API and CLI would write them.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import uvicorn
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mdm.api import clear_auth_cache
from mdm.app import create_app
from mdm.events.destinations import DestinationPolicy, parse_networks
from mdm.events.relay import RelayConfig
from mdm.events.signing import verify
from mdm.services.audit import close_writers
from mdm.services.clients import create_client
from mdm.services.identity import apply_partition
from mdm.services.merge import set_override
from mdm.store.db import make_engine, unit_of_work
from mdm.store.models import (
    ApiClient,
    Base,
    Entity,
    Link,
    OutboxEvent,
    SourceRecord,
    SourceRecordVersion,
    SourceSystem,
)
from tests.conftest import Databases

T0 = datetime(2025, 3, 1, tzinfo=UTC)

# Small timings so that retries, leases and take-overs happen within seconds.
FAST = RelayConfig(
    max_attempts=1000,
    backoff_base_seconds=0.05,
    backoff_max_seconds=0.4,
    http_timeout_seconds=0.5,
    lease_seconds=2.0,
    batch_size=50,
    concurrency=8,
    poll_seconds=0.05,
)


def loopback_resolver(host: str, port: int) -> list[str]:
    """Every name is 127.0.0.1: no test looks a name up in DNS or reaches past
    loopback."""
    return ["127.0.0.1"]


#: Where the tests' webhooks may point: the receivers here listen on loopback, which
#: the default policy refuses; these tests opt in as an operator would
#: (MDM_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8).
LOOPBACK = DestinationPolicy(
    allowed_networks=parse_networks("127.0.0.0/8"), resolver=loopback_resolver
)

FAST_ENV = {
    "MDM_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "MDM_RELAY_MAX_ATTEMPTS": "1000",
    "MDM_RELAY_BACKOFF_BASE_SECONDS": "0.05",
    "MDM_RELAY_BACKOFF_MAX_SECONDS": "0.4",
    "MDM_RELAY_HTTP_TIMEOUT_SECONDS": "0.5",
    "MDM_RELAY_LEASE_SECONDS": "2.0",
    "MDM_RELAY_BATCH_SIZE": "50",
    "MDM_RELAY_CONCURRENCY": "8",
    "MDM_RELAY_POLL_SECONDS": "0.05",
}


# Reference data and who-did-what stay between tests; everything else is emptied.
_KEEP = {
    "admin_unit_datasets",
    "admin_units",
    "admin_unit_crosswalk",
    "api_clients",
    "audit_log",
    "stewards",
    "steward_sessions",
}


@pytest.fixture(scope="session")
def events_db_url(backend: str, databases: Databases) -> str:
    """One migrated database per backend for these tests, which really commit (a
    database per test costs seconds to create and drop on Postgres)."""
    return databases.fresh(backend)


def _reset(engine: Engine) -> None:
    tables = [t for t in Base.metadata.sorted_tables if t.name not in _KEEP]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(t.name for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for t in reversed(tables):
                conn.execute(t.delete())
        conn.execute(
            text(
                "INSERT INTO event_cursors (name, position, updated_at) "
                "VALUES ('sequencer', 0, CURRENT_TIMESTAMP)"
            )
        )


@pytest.fixture
def db(events_db_url: str) -> Iterator[Engine]:
    """An engine on this backend's events database, emptied first (work really
    commits; feed positions start at 1 again)."""
    engine = make_engine(events_db_url)
    _reset(engine)
    yield engine
    engine.dispose()


def factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def add_client(engine: Engine, name: str = "agency", scopes: tuple[str, ...] = ("*:read",)) -> int:
    """A client whose subscriptions receive the entity types ``scopes`` may read."""
    with unit_of_work(factory(engine)) as s:
        return int(
            s.execute(
                insert(ApiClient)
                .values(
                    name=f"{name}-{uuid.uuid4().hex[:6]}",
                    key_prefix=uuid.uuid4().hex[:12],
                    key_hash="x",
                    scopes=list(scopes),
                    rate_limit_per_minute=6000,
                    created_at=T0,
                )
                .returning(ApiClient.id)
            ).scalar_one()
        )


def make_entities(engine: Engine, n: int, *, system: str | None = None) -> list[str]:
    """``n`` new citizen entities (one source record each); their canonical IDs."""
    return retry_locked(lambda: _make_entities(engine, n, system or f"src-{uuid.uuid4().hex[:6]}"))


def _make_entities(engine: Engine, n: int, system: str) -> list[str]:
    with unit_of_work(factory(engine)) as s:
        conn = s.connection()
        sid = conn.execute(
            insert(SourceSystem)
            .values(name=system, trust={"citizen": {"default": 0.5}}, created_at=T0)
            .returning(SourceSystem.id)
        ).scalar_one()
        records = []
        for i in range(n):
            rid = conn.execute(
                insert(SourceRecord)
                .values(
                    source_system_id=sid,
                    source_key=str(i),
                    entity_type="citizen",
                    current_version=1,
                    status="active",
                    first_seen_at=T0,
                    updated_at=T0,
                )
                .returning(SourceRecord.id)
            ).scalar_one()
            conn.execute(
                insert(SourceRecordVersion).values(
                    source_record_id=rid,
                    version=1,
                    raw={},
                    standardized={"full_name": f"Nguyễn Văn {i}", "date_of_birth": "1990-01-01"},
                    issues=[],
                    content_hash=f"{system}/{i}",
                    received_at=T0,
                )
            )
            records.append(int(rid))
        # every active record of the type must be in the partition: keep earlier ones
        others = [
            int(r)
            for r in s.execute(
                select(Link.source_record_id).where(
                    Link.active.is_(True), Link.source_record_id.not_in(records)
                )
            ).scalars()
        ]
        apply_partition(s, "citizen", [[r] for r in others] + [[r] for r in records])
        rows = s.execute(
            select(Link.source_record_id, Entity.canonical_id)
            .join(Entity, Entity.id == Link.entity_id)
            .where(Link.active.is_(True), Link.source_record_id.in_(records))
        ).all()
    by_record = {int(r): str(c) for r, c in rows}
    return [by_record[r] for r in records]


def retry_locked[T](fn: Callable[[], T]) -> T:
    """Run a unit of work, again if SQLite refused it.

    On SQLite a transaction that read before writing fails at once ("database is
    locked", SQLITE_BUSY_SNAPSHOT) if another process committed in between; the busy
    timeout does not help. The relay commits while the test writes, so the test's
    writers retry, as an application on SQLite must.
    """
    for attempt in range(50):
        try:
            return fn()
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.02)
    raise AssertionError("unreachable")


def update_entity(engine: Engine, canonical_id: str, i: int) -> None:
    """One real change: an override of the name (an ``entity.updated`` event)."""

    def work() -> None:
        with unit_of_work(factory(engine)) as s:
            set_override(s, canonical_id, "full_name", f"Tên {i}", actor="test", reason="test")

    retry_locked(work)


def all_events(engine: Engine) -> list[tuple[str, str, int]]:
    """(event_id, canonical_id, sequence) of every event, in write order."""
    with engine.connect() as conn:
        return [
            (str(e), str(c), int(q))
            for e, c, q in conn.execute(
                select(
                    OutboxEvent.event_id, OutboxEvent.canonical_id, OutboxEvent.sequence
                ).order_by(OutboxEvent.position)
            )
        ]


# --- a real HTTP receiver on loopback ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    event_id: str
    canonical_id: str
    sequence: int
    signature_ok: bool
    status: int


@dataclass
class Receiver:
    """A webhook endpoint. ``mode``: ``ok`` | ``error`` (500) | ``slow`` (every other
    request sleeps past the relay's timeout, then answers 200: the relay retries, so
    the event arrives twice). ``fail_ids``: events always answered 500."""

    secret: str = ""
    port: int = field(default_factory=free_port)
    mode: str = "ok"
    delay: float = 0.0
    slow_seconds: float = 0.8
    fail_ids: set[str] = field(default_factory=set)
    log: list[Received] = field(default_factory=list)
    active: int = 0  # requests being handled right now
    _server: http.server.ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ev = orjson.loads(body)
                ok = verify(
                    receiver.secret,
                    self.headers["X-MDM-Timestamp"],
                    body,
                    self.headers["X-MDM-Signature"],
                )
                with receiver._lock:
                    receiver._count += 1
                    receiver.active += 1
                    n = receiver._count
                    mode = receiver.mode
                status = 200
                if mode == "error" or ev["event_id"] in receiver.fail_ids:
                    status = 500
                with receiver._lock:
                    receiver.log.append(
                        Received(ev["event_id"], ev["canonical_id"], ev["sequence"], ok, status)
                    )
                    assert ev["event_id"] == self.headers["X-MDM-Event-Id"]
                if mode == "slow" and n % 2 == 0:
                    time.sleep(receiver.slow_seconds)
                elif receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._lock:
                    receiver.active -= 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.log if r.status == 200]

    def accepted_ids(self) -> set[str]:
        return {r.event_id for r in self.accepted()}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def check_order(log: list[Received], expected: list[tuple[str, str, int]]) -> None:
    """Every expected event arrived; per entity, an event's first arrival comes after
    the first arrival of each earlier event of that entity; any repeat carries an
    event ID already seen (at-least-once, never a different event out of turn)."""
    seen: set[str] = set()
    last_seq: dict[str, int] = {}
    known = {e: (c, q) for e, c, q in expected}
    for r in log:
        assert r.signature_ok, "bad signature"
        assert r.event_id in known, f"unknown event {r.event_id}"
        if r.event_id in seen:
            continue
        c, q = known[r.event_id]
        assert q == last_seq.get(c, 0) + 1, (
            f"{c}: event sequence {q} arrived before {last_seq.get(c, 0) + 1}"
        )
        last_seq[c] = q
        seen.add(r.event_id)
    assert seen == set(known), f"{len(set(known) - seen)} events never arrived"


# --- the API, served for real -------------------------------------------------------


@pytest.fixture
def webhook_policy() -> DestinationPolicy:
    """The served API's destination policy (a test module may override it)."""
    return LOOPBACK


@pytest.fixture
def api(db: Engine, webhook_policy: DestinationPolicy) -> Iterator[tuple[str, dict[str, str]]]:
    tag = uuid.uuid4().hex[:6]
    scopes = {
        "agency": ["events:read", "subscriptions:manage", "*:read"],
        "other": ["events:read", "subscriptions:manage", "*:read"],
        "reader": ["*:read"],
    }
    with unit_of_work(factory(db)) as s:
        keys = {n: create_client(s, f"{n}-{tag}", sc).key for n, sc in scopes.items()}
    clear_auth_cache()
    app = create_app()
    app.state.mdm_engine = db
    app.state.mdm_webhook_policy = webhook_policy
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", keys
    finally:
        server.should_exit = True
        thread.join(10)
        close_writers()
        clear_auth_cache()
