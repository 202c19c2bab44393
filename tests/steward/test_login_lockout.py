"""Console login: nothing tells which usernames exist, and the client address is the
TCP peer's unless it is a configured proxy.

* An unknown, a deactivated and an existing username fail the same way: the same
  status and page, the same lock after ``login_max_failures`` failures, and the same
  work (one argon2 verification with the same parameters per attempt while not
  locked, none once locked), checked on the code path rather than by timing.
* The counter lives in the database, is keyed by the normalized username's hash (no
  username stored readable), forgets failures after the window and deletes rows
  nobody uses any more.
* ``X-Forwarded-For`` from 127.0.0.1 is ignored unless ``MDM_TRUSTED_PROXIES`` names
  it: the audit row and the per-address throttle see the peer.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import argon2
import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from mdm.config import Settings
from mdm.services import accounts
from mdm.store.db import make_engine
from mdm.store.models import AuditLog, Steward, utcnow
from tests.conftest import Databases
from tests.servers import running_server
from tests.steward.http import csrf_of
from tests.steward.seed import PASSWORD, Seeded, seed

CFG = Settings(steward_login_per_ip_per_minute=10_000)


class _CountingHasher:
    """The module's argon2 hasher, recording the parameters of every hash verified."""

    def __init__(self, real: argon2.PasswordHasher) -> None:
        self.real = real
        self.verified: list[argon2.Parameters] = []

    def verify(self, hashed: str, password: str) -> bool:
        self.verified.append(argon2.extract_parameters(hashed))
        return self.real.verify(hashed, password)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _attempts(session: Session, username: str, password: str, n: int) -> list[tuple[str, int]]:
    """(outcome, argon2 verifications) of ``n`` logins, each on its own address."""
    out = []
    for _ in range(n):
        spy = accounts._hasher
        assert isinstance(spy, _CountingHasher)
        before = len(spy.verified)
        try:
            who = accounts.authenticate(
                session, username, password, address=uuid.uuid4().hex, settings=CFG
            )
            outcome = "ok" if who else "failed"
        except accounts.LoginThrottled:
            outcome = "locked"
        out.append((outcome, len(spy.verified) - before))
    return out


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> _CountingHasher:
    counting = _CountingHasher(accounts._hasher)
    monkeypatch.setattr(accounts, "_hasher", counting)
    return counting


def test_unknown_deactivated_and_known_usernames_fail_alike(
    seeded: Seeded, session: Session, spy: _CountingHasher
) -> None:
    session.execute(update(Steward).where(Steward.username == "minh").values(active=False))
    expected = [("failed", 1)] * 5 + [("locked", 0)]
    users = ("root", "nobody", "minh")
    runs = {user: _attempts(session, user, "wrong password", 6) for user in users}
    assert runs == {"root": expected, "nobody": expected, "minh": expected}, runs
    # every verification used the same argon2 parameters, the steward's own included
    stored = session.execute(select(Steward.password_hash).where(Steward.username == "root"))
    params = argon2.extract_parameters(stored.scalar_one())
    assert len(spy.verified) == 15 and all(p == params for p in spy.verified)
    # locked means locked: the right password does not get in (and costs nothing)
    assert _attempts(session, "root", PASSWORD, 1) == [("locked", 0)]
    # a username that never failed logs in with one verification
    assert _attempts(session, "lan", PASSWORD, 1) == [("ok", 1)]


def test_the_counter_is_normalized_hashed_windowed_and_bounded(
    seeded: Seeded, session: Session, spy: _CountingHasher
) -> None:
    from mdm.store.models.console import LoginFailure

    # "ROOT " and "root" are one username for the counter
    for name in ("root", "ROOT ", "Root", "root"):
        assert _attempts(session, name, "wrong", 1) == [("failed", 1)]
    rows = session.execute(select(LoginFailure)).scalars().all()
    assert [(len(r.username_key), r.failures) for r in rows] == [(64, 4)]
    # failures older than the window are forgotten: four old ones and a new one do
    # not lock
    session.execute(update(LoginFailure).values(last_failed_at=utcnow() - timedelta(minutes=16)))
    assert _attempts(session, "root", "wrong", 1) == [("failed", 1)]
    assert session.execute(select(LoginFailure.failures)).scalar_one() == 1
    # names tried once, long ago, are deleted by the next failure; no row holds a
    # username as typed
    for i in range(8):
        _attempts(session, f"guess-{i}", "wrong", 1)
    assert len(session.execute(select(LoginFailure)).all()) == 9
    session.execute(
        update(LoginFailure)
        .where(LoginFailure.failures == 1)
        .values(last_failed_at=utcnow() - timedelta(hours=1))
    )
    _attempts(session, "someone", "wrong", 1)
    assert len(session.execute(select(LoginFailure)).all()) == 1
    dump = " ".join(
        str(v) for row in session.execute(text("SELECT * FROM login_failures")) for v in row
    )
    assert "someone" not in dump and "guess" not in dump and "root" not in dump
    # a lock survives the clean-up while it lasts, even with its failures long past
    for _ in range(5):
        _attempts(session, "root", "wrong", 1)
    session.execute(update(LoginFailure).values(last_failed_at=utcnow() - timedelta(hours=1)))
    _attempts(session, "someone-else", "wrong", 1)
    assert _attempts(session, "root", PASSWORD, 1) == [("locked", 0)]


def test_the_address_window_forgets_idle_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(accounts.time, "monotonic", lambda: clock[0])
    window = accounts._IpWindow()
    for i in range(500):
        assert window.allow(f"2001:db8::{i:x}", 3)
    clock[0] += 61
    assert window.allow("192.0.2.1", 3)
    assert window.allow("192.0.2.1", 3) and window.allow("192.0.2.1", 3)
    assert not window.allow("192.0.2.1", 3)  # still throttled
    assert len(window._hits) == 1


def _normalized(page: str) -> str:
    return re.sub(r'name="csrf_token" value="[^"]+"', 'name="csrf_token" value=""', page)


def _login_attempts(base: str, username: str, n: int, **headers: str) -> list[tuple[int, str]]:
    out = []
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as client:
        for _ in range(n):
            token = csrf_of(client.get("/steward/login").text)
            r = client.post(
                "/steward/login",
                data={"username": username, "password": "wrong!", "csrf_token": token},
                headers=headers,
            )
            out.append((r.status_code, _normalized(r.text)))
    return out


def test_unknown_and_known_usernames_answer_alike(served: tuple[str, str, Seeded]) -> None:
    base, _url, _data = served
    known = _login_attempts(base, "root", 6)
    unknown = _login_attempts(base, "nobody-here", 6)
    assert [s for s, _ in known] == [401] * 5 + [429]
    assert unknown == known  # statuses and pages, the lock included


def _seeded_url(databases: Databases) -> str:
    url = databases.fresh("sqlite")
    engine = make_engine(url)
    with Session(engine) as session:
        seed(session)
        session.commit()
    engine.dispose()
    return url


def _addresses(url: str) -> list[str]:
    engine = make_engine(url)
    with Session(engine) as s:
        rows = s.execute(
            select(AuditLog.details)
            .where(AuditLog.action == "console.login_failed")
            .order_by(AuditLog.id)
        ).scalars()
        out = [d["address"] for d in rows]
    engine.dispose()
    return out


def _forged_logins(base: str) -> list[int]:
    """Four failed logins from 127.0.0.1, each claiming another client address."""
    return [
        _login_attempts(base, f"user-{i}", 1, **{"X-Forwarded-For": f"203.0.113.{i}"})[0][0]
        for i in range(1, 5)
    ]


def test_forwarded_for_is_believed_only_from_trusted_proxies(databases: Databases) -> None:
    throttled = {"MDM_STEWARD_LOGIN_PER_IP_PER_MINUTE": "3"}
    # no trusted proxy (the default): audited with the peer's address, and throttled
    # per peer: the fourth attempt from 127.0.0.1 is refused whatever it claims
    url = _seeded_url(databases)
    with running_server(url, env=throttled) as base:
        statuses = _forged_logins(base)
    assert _addresses(url) == ["127.0.0.1"] * 4
    assert statuses == [401, 401, 401, 429]
    # 127.0.0.0/8 configured as a proxy: the forwarded addresses are the clients
    url = _seeded_url(databases)
    with running_server(url, env={**throttled, "MDM_TRUSTED_PROXIES": "127.0.0.0/8"}) as base:
        statuses = _forged_logins(base)
    assert _addresses(url) == [f"203.0.113.{i}" for i in range(1, 5)]
    assert statuses == [401] * 4  # four clients behind the proxy, one attempt each
