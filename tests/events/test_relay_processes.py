"""`mdm relay` processes: killed with SIGKILL mid-burst, and two at once (both backends)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from mdm.services import subscriptions as subs
from mdm.store.db import unit_of_work
from tests.events.conftest import (
    FAST_ENV,
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

ROOT = Path(__file__).resolve().parents[2]


class Relays:
    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, **FAST_ENV, "MDM_DATABASE_URL": self.url}
        log = open(self.tmp / f"relay-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "mdm", "relay"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def relays(events_db_url: str, tmp_path: Path) -> Iterator[Relays]:
    r = Relays(events_db_url, tmp_path)
    yield r
    r.stop_all()


def _subscribe(db: Engine, receiver: Receiver) -> None:
    client = add_client(db)
    with unit_of_work(factory(db)) as s:
        _view, receiver.secret = subs.create_subscription(s, client, receiver.url, policy=LOOPBACK)


def _burst(db: Engine, ids: list[str], n: int, done: threading.Event) -> threading.Thread:
    def run() -> None:
        for i in range(n):
            update_entity(db, ids[i % len(ids)], i)
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_kill_9_mid_burst_then_restart_loses_nothing(
    db: Engine, receiver: Receiver, relays: Relays
) -> None:
    """Acceptance 2: SIGKILL the relay while a burst is being delivered, start a new
    one: every event arrives, in order per entity (the dead relay's leases expire and
    are taken over)."""
    _subscribe(db, receiver)
    receiver.delay = 0.02
    receiver.start()
    ids = make_entities(db, 5)
    first = relays.start()
    done = threading.Event()
    burst = _burst(db, ids, 40, done)
    wait_for(lambda: len(receiver.accepted_ids()) >= 10, 20, "the relay to deliver some")
    # kill it while a request is being answered: that delivery is leased by the dead
    # relay, and can only arrive again once another relay takes the lease over
    receiver.delay = 0.3
    wait_for(lambda: receiver.active > 0, 20, "a request in flight")
    first.send_signal(signal.SIGKILL)
    first.wait(5)
    assert first.returncode == -signal.SIGKILL
    killed_at = len(receiver.accepted_ids())
    receiver.delay = 0.02
    time.sleep(0.3)
    relays.start()
    burst.join(60)
    assert done.is_set()
    expected = all_events(db)
    wait_for(lambda: len(receiver.accepted_ids()) == len(expected), 30, "every event")
    assert killed_at < len(expected)
    check_order(receiver.accepted(), expected)


def test_two_relay_processes_keep_order_per_entity(
    db: Engine, receiver: Receiver, relays: Relays
) -> None:
    _subscribe(db, receiver)
    receiver.delay = 0.01
    receiver.start()
    ids = make_entities(db, 4)
    relays.start()
    relays.start()
    done = threading.Event()
    _burst(db, ids, 30, done).join(60)
    expected = all_events(db)
    wait_for(lambda: len(receiver.accepted_ids()) == len(expected), 30, "every event")
    check_order(receiver.accepted(), expected)
