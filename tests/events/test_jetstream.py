"""The NATS JetStream relay against the real server on 127.0.0.1:4222.

Each test uses a stream and subject prefix of its own and deletes the stream after.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import orjson
import pytest
from nats.aio.client import Client as NATS
from sqlalchemy import Engine

from mdm.events.jetstream import NatsRelay, cursor_name, subject_for
from mdm.store.repositories import events as repo
from tests.events.conftest import all_events, make_entities, update_entity

NATS_URL = os.environ.get("MDM_TEST_NATS_URL", "nats://127.0.0.1:4222")


async def _connect() -> NATS:
    nc = NATS()
    try:
        await nc.connect(servers=[NATS_URL], connect_timeout=2, max_reconnect_attempts=0)
    except Exception as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            raise
        pytest.skip(f"!!! SKIPPED: NATS at {NATS_URL} is unavailable: {exc}")
    return nc


def test_subjects_have_no_extra_dots() -> None:
    assert subject_for("mdm", "citizen", "entity.created") == "mdm.citizen.created"
    assert subject_for("mdm", "organization", "entity.merged") == "mdm.organization.merged"


def test_publish_in_feed_order_and_republish_is_deduplicated(db: Engine) -> None:
    ids = make_entities(db, 3)
    for i in range(9):
        update_entity(db, ids[i % 3], i)
    expected = all_events(db)
    tag = uuid.uuid4().hex[:10]
    stream, prefix = f"MDM_TEST_{tag}", f"mdmtest{tag}"

    async def scenario() -> tuple[list[tuple[str, str, bytes]], int, NatsRelay]:
        nc = await _connect()
        js = nc.jetstream()
        relay = NatsRelay(db, stream=stream, subject_prefix=prefix, batch_size=5)
        try:
            await relay.ensure_stream(js)
            await relay.ensure_stream(js)  # idempotent
            # a crash after the PubAcks, before the cursor update: the batch goes again
            assert await relay.publish_once(js, advance=False) == 5
            assert relay.duplicates == 0
            while await relay.publish_once(js):
                pass
            assert relay.published == len(expected) + 5
            assert relay.duplicates == 5
            info = await js.stream_info(stream)
            count = int(info.state.messages)
            sub = await js.pull_subscribe(f"{prefix}.>", stream=stream)
            msgs = await sub.fetch(count, timeout=5)
            out = []
            for m in msgs:
                out.append((m.subject, (m.headers or {}).get("Nats-Msg-Id", ""), m.data))
                await m.ack()
            return out, count, relay
        finally:
            try:
                await js.delete_stream(stream)
            finally:
                await nc.close()

    messages, count, _relay = asyncio.run(scenario())
    assert count == len(expected) == 12
    got_ids = [msg_id for _, msg_id, _ in messages]
    assert got_ids == [e for e, _, _ in expected]  # feed order (one writer at a time here)
    for subject, msg_id, data in messages:
        body = orjson.loads(data)
        assert body["event_id"] == msg_id
        assert subject == subject_for(prefix, body["entity_type"], body["type"])
    positions = [orjson.loads(d)["position"] for _, _, d in messages]
    assert positions == sorted(positions) == list(range(1, 13))
    with db.connect() as conn:
        assert repo.cursor_position(conn, cursor_name(stream)) == 12


def test_a_second_publisher_waits_for_the_lease(db: Engine) -> None:
    make_entities(db, 2)
    tag = uuid.uuid4().hex[:10]
    stream, prefix = f"MDM_TEST_{tag}", f"mdmtest{tag}"

    async def scenario() -> tuple[int, int]:
        nc = await _connect()
        js = nc.jetstream()
        first = NatsRelay(db, stream=stream, subject_prefix=prefix, batch_size=1)
        second = NatsRelay(db, stream=stream, subject_prefix=prefix, batch_size=1)
        try:
            await first.ensure_stream(js)
            a = await first.publish_once(js)
            b = await second.publish_once(js)  # the first one's lease still runs
            return a, b
        finally:
            try:
                await js.delete_stream(stream)
            finally:
                await nc.close()

    assert asyncio.run(scenario()) == (1, 0)
