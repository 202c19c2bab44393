"""The real `mdm serve` under load while its Postgres is stopped and started again.

The test runs a Postgres cluster of its own (``initdb`` into a temporary directory,
a free loopback port; the shared server is never touched), migrates it, and serves
it with ``mdm serve`` in a subprocess. Threads drive lookups (masked and with the pii
scope), cross-references, registrations, the stewards' console and ``/readyz`` while
the database is stopped twice (``pg_ctl stop -m immediate``, a crash, then ``-m
fast``), kept down a few seconds and started again. It proves:

* every answer of the whole run is a success or a 503 with ``Retry-After`` and the
  one error body (never a 500, never a hang past the client's timeout), and every
  answer to a request made while the database was down is that 503 (``/readyz`` says
  ``database_unavailable``; the console answers its 503 page);
* the same server process recovers by itself: each kind of request succeeds again
  after each restart;
* no acknowledged write is lost: every registration answered 2xx is in the database
  afterwards with the canonical ID it was answered, and every answered read and
  registration has its audit row (the group-commit writer survived both outages),
  and the audit hash chain verifies.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from mdm.services.accounts import create_steward
from mdm.services.audit import verify_chain
from mdm.store import migrate
from mdm.store.db import make_engine
from mdm.store.models import AuditLog, Entity, Link, SourceRecord, SourceSystem
from tests.reliability.conftest import PgCluster, json_or_text, make_api_clients, person
from tests.servers import serving

CLIENT_TIMEOUT = 20.0  # a request that takes longer is a hang: the test fails
SOURCE = "reliability-portal"
STEWARD = ("reliability-steward", "correct horse battery staple")
KINDS = ("lookup", "lookup_pii", "xref", "register", "readyz", "console")
# Successes of each kind awaited before a stop and after a restart (more writes: more
# acknowledged registrations to find afterwards).
NEED = {"register": 10}


@dataclass(frozen=True, slots=True)
class Answer:
    kind: str
    started: float
    ended: float
    status: int | None  # None: no HTTP answer (transport error or timeout)
    retry_after: str | None
    body: Any
    error: str | None = None


@dataclass
class Load:
    """What the load threads saw, and the registrations that were acknowledged."""

    answers: list[Answer] = field(default_factory=list)
    acked: list[tuple[str, str]] = field(default_factory=list)  # (source key, canonical ID)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def record(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)

    def snapshot(self) -> list[Answer]:
        with self.lock:
            return list(self.answers)


def _call(
    load: Load, kind: str, send: Callable[[], httpx.Response], json_body: bool = True
) -> httpx.Response | None:
    started = time.monotonic()
    try:
        response = send()
    except httpx.HTTPError as exc:
        load.record(Answer(kind, started, time.monotonic(), None, None, None, repr(exc)))
        return None
    body = json_or_text(response) if json_body else response.text[:200]
    load.record(
        Answer(
            kind,
            started,
            time.monotonic(),
            response.status_code,
            response.headers.get("Retry-After"),
            body,
        )
    )
    return response


def _loop(load: Load, step: Callable[[], None]) -> None:
    while not load.stop.is_set():
        step()
        time.sleep(0.02)


def _wait_until(
    what: str, condition: Callable[[], bool], explain: Callable[[], str], timeout: float = 90
) -> None:
    """Poll ``condition`` (a safety net, not a timed assertion: the deadline only
    stops a test that would otherwise wait forever)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}\n{explain()}")
        time.sleep(0.1)


def _steward_login(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=CLIENT_TIMEOUT, follow_redirects=False)
    form = client.get("/steward/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text[:500]
    done = client.post(
        "/steward/login",
        data={
            "username": STEWARD[0],
            "password": STEWARD[1],
            "csrf_token": token.group(1),
            "next": "/steward/review",
        },
    )
    assert done.status_code == 303, done.text[:500]
    assert client.get("/steward/review").status_code == 200
    return client


def _setup(url: str) -> dict[str, str]:
    migrate.upgrade(url)
    keys = make_api_clients(url, ["reliability-reader"], ["citizen:read"])
    keys |= make_api_clients(
        url,
        ["reliability-pii"],
        ["citizen:read", "citizen:pii", "citizen:write"],
        source_systems=(SOURCE,),
    )
    engine = make_engine(url)
    with Session(engine) as session:
        create_steward(session, STEWARD[0], "reviewer", STEWARD[1])
        session.commit()
    engine.dispose()
    return keys


def test_the_api_answers_503_while_postgres_is_down_and_recovers_without_losing_writes(
    own_postgres: PgCluster,
    citizen_rules: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster = own_postgres
    admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('CREATE DATABASE "mdm"'))
    admin.dispose()
    url = cluster.url("mdm")
    keys = _setup(url)
    env = {
        "MDM_MATCHING_RULES_DIR": str(citizen_rules),
        # Keys are re-authenticated against the database every second, so the
        # authentication path is exercised during the outage too.
        "MDM_API_AUTH_CACHE_SECONDS": "1",
    }
    load = Load()
    numbers = itertools.count()
    with serving(url, tmp_path / "serve.log", env=env) as server:
        base = server.base
        pii = httpx.Client(
            base_url=base,
            timeout=CLIENT_TIMEOUT,
            headers={"Authorization": f"Bearer {keys['reliability-pii']}", "X-Purpose": "test"},
        )
        reader = httpx.Client(
            base_url=base,
            timeout=CLIENT_TIMEOUT,
            headers={"Authorization": f"Bearer {keys['reliability-reader']}"},
        )
        plain = httpx.Client(base_url=base, timeout=CLIENT_TIMEOUT)

        def register() -> None:
            n = next(numbers)
            key = f"R{n:05d}"
            r = _call(
                load,
                "register",
                lambda: pii.post(
                    "/v1/citizen/records",
                    json={"source_system": SOURCE, "source_key": key, "attributes": person(n)},
                ),
            )
            if r is not None and r.is_success:
                with load.lock:
                    load.acked.append((key, r.json()["canonical_id"]))

        # Some people registered before the load starts, to be looked up.
        for _ in range(10):
            register()
        assert len(load.acked) == 10, load.answers
        known = list(load.acked)
        console = _steward_login(base)

        def lookup_pii() -> None:
            _key, cid = known[next(numbers) % len(known)]
            _call(load, "lookup_pii", lambda: pii.get(f"/v1/entities/{cid}"))

        def lookup() -> None:
            _key, cid = known[next(numbers) % len(known)]
            _call(load, "lookup", lambda: reader.get(f"/v1/entities/{cid}"))

        def xref() -> None:
            key, _cid = known[next(numbers) % len(known)]
            _call(load, "xref", lambda: reader.get(f"/v1/xrefs/{SOURCE}/{key}"))

        steps: list[Callable[[], None]] = [
            lookup_pii,
            lookup_pii,
            lookup,
            xref,
            register,
            register,
            lambda: _call(load, "readyz", lambda: plain.get("/readyz")),
            lambda: _call(load, "console", lambda: console.get("/steward/review"), False),
        ]
        threads = [threading.Thread(target=_loop, args=(load, s), daemon=True) for s in steps]
        for t in threads:
            t.start()

        def ok_since(kind: str, since: float, n: int = 1) -> bool:
            return (
                sum(
                    1
                    for a in load.snapshot()
                    if a.kind == kind
                    and a.started >= since
                    and a.status is not None
                    and 200 <= a.status < 400
                )
                >= n
            )

        def answered_within(kind: str, start: float, n: int) -> bool:
            return sum(1 for a in load.snapshot() if a.kind == kind and a.started >= start) >= n

        def explain(since: float) -> Callable[[], str]:
            def text() -> str:
                seen = Counter(
                    (a.kind, a.status, a.body.get("error") if isinstance(a.body, dict) else None)
                    for a in load.snapshot()
                    if a.started >= since
                )
                log = server.output()[-3000:]
                return f"answers since: {sorted(seen.items(), key=str)}\nserver log:\n{log}"

            return text

        outages: list[tuple[str, float, float, float, float]] = []
        try:
            began = time.monotonic()
            _wait_until(
                "load running",
                lambda: all(ok_since(k, began, NEED.get(k, 3)) for k in KINDS),
                explain(began),
            )
            for mode in ("immediate", "fast"):
                stopping = time.monotonic()
                cluster.stop(mode)
                down = time.monotonic()
                # Down for a few seconds, and until every kind of request was answered
                # several times while it was.
                time.sleep(3)
                _wait_until(
                    f"requests during the {mode} outage",
                    lambda down=down: all(answered_within(k, down, 5) for k in KINDS),
                    explain(down),
                )
                up = time.monotonic()
                cluster.start()
                restarted = time.monotonic()
                outages.append((mode, stopping, down, up, restarted))
                _wait_until(
                    f"recovery after the {mode} stop",
                    lambda restarted=restarted: all(
                        ok_since(k, restarted, NEED.get(k, 3)) for k in KINDS
                    ),
                    explain(restarted),
                )
        finally:
            load.stop.set()
            for t in threads:
                t.join(timeout=CLIENT_TIMEOUT + 10)
            for c in (pii, reader, plain, console):
                c.close()
        assert not any(t.is_alive() for t in threads), "a load thread hung"
        # The same process served the whole run (no restart, no crash).
        assert server.proc.poll() is None, server.output()[-3000:]

    answers = load.snapshot()
    report = _check_answers(answers, outages)
    report |= _check_durability(url, load, answers)
    with capsys.disabled():
        print("\nreliability: postgres restart under load:")
        for k, v in report.items():
            print(f"  {k}: {v}")


def _check_answers(
    answers: list[Answer], outages: list[tuple[str, float, float, float, float]]
) -> dict[str, Any]:
    by_status = Counter(
        (a.kind, a.status, a.body.get("error") if isinstance(a.body, dict) else a.error)
        for a in answers
    )
    # No hang and no dropped connection: the server process stayed up and answered.
    failed = [a for a in answers if a.status is None]
    table = "\n".join(f"  {k}: {n}" for k, n in sorted(by_status.items(), key=str))
    assert not failed, f"{failed[:3]}\n{table}"
    # Every answer of the run is a success (or the console's redirects) or the 503.
    odd = [a for a in answers if not (200 <= (a.status or 0) < 400 or a.status == 503)]
    assert not odd, f"{odd[:3]}\n{table}"
    for a in answers:
        if a.status != 503:
            continue
        assert a.retry_after is not None and int(a.retry_after) >= 1, a
        if a.kind == "console":
            continue  # the console answers its HTML error page
        assert isinstance(a.body, dict) and set(a.body) == {"error", "detail"}, a
        assert a.body["error"] in ("database_unavailable", "audit_unavailable"), a
        if a.kind == "readyz":
            assert a.body["error"] == "database_unavailable", a
    report: dict[str, Any] = {}
    for i, (mode, stopping, down, up, restarted) in enumerate(outages):
        # Down: from the moment `pg_ctl stop` returned to the moment `pg_ctl start` was
        # run. Every request made and answered in between is the 503.
        during = [a for a in answers if a.started >= down and a.ended <= up]
        wrong = [a for a in during if a.status != 503]
        assert not wrong, f"{mode} outage: {wrong[:3]}"
        counts = Counter(a.kind for a in during)
        assert all(counts[k] >= 5 for k in KINDS), (mode, counts)
        report[f"503s during the {mode} outage"] = dict(sorted(counts.items()))
        report[f"503s while stopping ({mode})"] = sum(
            1 for a in answers if a.status == 503 and a.ended >= stopping and a.started < down
        )
        # Recovered: once a kind of request succeeded after the restart, it keeps
        # succeeding until the next stop (no flapping, no stale pooled connection,
        # no audit writer stuck on a dead one).
        until = outages[i + 1][1] if i + 1 < len(outages) else float("inf")
        for kind in KINDS:
            first = min(
                a.ended
                for a in answers
                if a.kind == kind and a.started >= restarted and 200 <= (a.status or 0) < 400
            )
            relapsed = [
                a
                for a in answers
                if a.kind == kind and first < a.started and a.ended < until and a.status == 503
            ]
            assert not relapsed, f"{kind} after the {mode} restart: {relapsed[:3]}"
    report["answers"] = {" ".join(map(str, k)): n for k, n in sorted(by_status.items(), key=str)}
    return report


def _check_durability(url: str, load: Load, answers: list[Answer]) -> dict[str, Any]:
    acked = dict(load.acked)
    assert len(acked) == len(load.acked), "a source key was acknowledged twice"
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            stored = dict(
                conn.execute(
                    select(SourceRecord.source_key, Entity.canonical_id)
                    .join(SourceSystem, SourceSystem.id == SourceRecord.source_system_id)
                    .join(
                        Link,
                        (Link.source_record_id == SourceRecord.id) & Link.active.is_(True),
                    )
                    .join(Entity, Entity.id == Link.entity_id)
                    .where(SourceSystem.name == SOURCE)
                ).all()
            )
            missing = {k: c for k, c in acked.items() if k not in stored}
            assert not missing, f"acknowledged registrations lost: {missing}"
            moved = {k: (c, stored[k]) for k, c in acked.items() if stored[k] != c}
            assert not moved, f"answered canonical IDs differ from the stored ones: {moved}"
            audited = dict(
                conn.execute(select(AuditLog.action, func.count()).group_by(AuditLog.action)).all()
            )
            chain = verify_chain(conn)
    finally:
        engine.dispose()
    served = Counter(a.kind for a in answers if a.status == 200)
    expect = {
        "record.register": len(acked),
        "entity.read": served["lookup"] + served["lookup_pii"],
        "xref.read": served["xref"],
    }
    for action, n in expect.items():
        assert audited.get(action, 0) >= n, (action, audited, n)
    assert chain.ok, chain
    return {
        "acknowledged registrations checked": len(acked),
        "registrations stored (incl. unacknowledged commits)": len(stored),
        "audit rows": audited,
        "audit chain rows verified": chain.rows,
    }
