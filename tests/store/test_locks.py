"""Named advisory locks (Postgres): one holder at a time, released for the next."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine

from mdm.store.repositories import locks


@pytest.fixture
def pg_engine(engine: Engine) -> Engine:
    if engine.dialect.name != "postgresql":
        pytest.skip("advisory locks are Postgres only")
    return engine


def test_lock_key_is_stable_and_signed_64_bit() -> None:
    # The key of a name must not change between releases: processes of two versions
    # running side by side must take the same lock for the same name.
    assert locks.lock_key("mdm-ingest:tax") == locks.lock_key("mdm-ingest:tax")
    assert locks.lock_key("mdm-ingest:tax") != locks.lock_key("mdm-ingest:police")
    assert locks.lock_key("") == -2039914840885289964
    assert all(-(2**63) <= locks.lock_key(n) < 2**63 for n in ("a", "b", "mdm-match:x:y"))


def test_a_session_lock_has_one_holder_until_released(pg_engine: Engine) -> None:
    first = locks.try_session_lock(pg_engine, "test-lock:a")
    assert first is not None
    try:
        assert locks.try_session_lock(pg_engine, "test-lock:a") is None
        other = locks.try_session_lock(pg_engine, "test-lock:b")  # another name is free
        assert other is not None
        locks.release_session_lock(other, "test-lock:b")
    finally:
        locks.release_session_lock(first, "test-lock:a")
    again = locks.try_session_lock(pg_engine, "test-lock:a")
    assert again is not None
    locks.release_session_lock(again, "test-lock:a")


def test_a_transaction_lock_waits_for_the_holders_commit(pg_engine: Engine) -> None:
    order: list[str] = []
    held = threading.Event()

    def holder() -> None:
        with pg_engine.begin() as conn:
            locks.xact_lock(conn, ["test-xact:b", "test-xact:a"])
            held.set()
            threading.Event().wait(0.3)
            order.append("holder commits")

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(10)
    with pg_engine.begin() as conn:
        locks.xact_lock(conn, ["test-xact:a"])
        order.append("waiter holds")
    t.join()
    assert order == ["holder commits", "waiter holds"]
