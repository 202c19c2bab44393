"""A subscription with a backlog (found by scripts/crash_jobs.py): the first fan-out
queued 21,859 deliveries at once, and the claim statement, planned with the statistics
of an empty queue, ran for minutes. A fan-out of at least ``ANALYZE_AFTER`` deliveries
now refreshes the queue's statistics in its transaction (Postgres)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select, text

from mdm.events import relay as relay_mod
from mdm.events.relay import WebhookRelay
from mdm.store.models import Delivery
from tests.events.conftest import FAST, Receiver, make_entities
from tests.events.test_relay import subscribe


def test_a_large_fan_out_refreshes_the_queue_statistics(
    db: Engine, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_mod, "ANALYZE_AFTER", 25)  # 1,000 in production
    subscribe(db, receiver)
    n = 40
    make_entities(db, n)  # one entity.created event each, none delivered yet
    relay = WebhookRelay(db, FAST)
    try:
        assert relay.tick() == n
    finally:
        relay.close()
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Delivery)).scalar_one() == n
        if conn.dialect.name == "postgresql":
            tuples = conn.execute(
                text("SELECT reltuples FROM pg_class WHERE relname = 'deliveries'")
            ).scalar_one()
            assert tuples >= n  # the planner knows the queue is no longer empty
