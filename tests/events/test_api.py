"""`/v1/events`, `/v1/events/stream` and `/v1/subscriptions` over real HTTP."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine

from mdm.events.feed import sequence_events
from tests.events.conftest import (
    Receiver,
    all_events,
    check_order,
    make_entities,
    update_entity,
    wait_for,
)
from tests.events.test_relay import running


def _client(api: tuple[str, dict[str, str]], name: str) -> httpx.Client:
    base, keys = api
    return httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {keys[name]}"}, timeout=10
    )


def test_subscribe_receive_and_pull(
    db: Engine, api: tuple[str, dict[str, str]], receiver: Receiver
) -> None:
    agency, other, reader = _client(api, "agency"), _client(api, "other"), _client(api, "reader")
    assert reader.get("/v1/events").status_code == 403
    assert reader.get("/v1/subscriptions").json()["error"] == "forbidden"
    bad = agency.post("/v1/subscriptions", json={"url": "ftp://x"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["pointer"] == "/url"
    bad = agency.post(
        "/v1/subscriptions", json={"url": receiver.url, "filters": {"event_types": ["x"]}}
    )
    assert bad.status_code == 422
    assert agency.get("/v1/events", params={"event_types": "entity.x"}).status_code == 400

    created = agency.post("/v1/subscriptions", json={"url": receiver.url})
    assert created.status_code == 201, created.text
    sub = created.json()
    receiver.secret = sub["secret"]
    receiver.start()
    sid = sub["id"]
    assert "secret" not in agency.get(f"/v1/subscriptions/{sid}").json()
    assert other.get(f"/v1/subscriptions/{sid}").status_code == 404
    assert [s["id"] for s in agency.get("/v1/subscriptions").json()["subscriptions"]] == [sid]
    assert agency.post(f"/v1/subscriptions/{sid}/pause").json()["status"] == "paused"
    assert agency.post(f"/v1/subscriptions/{sid}/resume").json()["status"] == "active"

    ids = make_entities(db, 2)
    update_entity(db, ids[0], 1)
    expected = all_events(db)
    with running(db):
        wait_for(lambda: len(receiver.accepted_ids()) == len(expected), 10, "delivery")
    check_order(receiver.accepted(), expected)
    delivered = agency.get(f"/v1/subscriptions/{sid}/deliveries?status=delivered").json()
    assert len(delivered["deliveries"]) == 3
    assert agency.get(f"/v1/subscriptions/{sid}/dead-letters").json() == {"dead_letters": []}
    assert agency.post(f"/v1/subscriptions/{sid}/dead-letters/redeliver").json() == {
        "redelivered": 0
    }

    page = agency.get("/v1/events", params={"after": 0, "limit": 2}).json()
    assert [e["position"] for e in page["events"]] == [1, 2]
    rest = agency.get("/v1/events", params={"after": page["next_after"]}).json()
    assert [e["event_id"] for e in page["events"] + rest["events"]] == [e for e, _, _ in expected]
    only = agency.get("/v1/events", params={"canonical_ids": ids[0]}).json()["events"]
    assert {e["canonical_id"] for e in only} == {ids[0]}
    assert agency.get("/v1/events", params={"after": -1}).status_code == 422

    secret = agency.post(f"/v1/subscriptions/{sid}/rotate-secret").json()["secret"]
    assert secret != sub["secret"]
    assert agency.delete(f"/v1/subscriptions/{sid}").status_code == 204
    assert agency.get(f"/v1/subscriptions/{sid}").status_code == 404


def test_server_sent_events(db: Engine, api: tuple[str, dict[str, str]]) -> None:
    make_entities(db, 3)
    with db.begin() as conn:
        sequence_events(conn)
    agency = _client(api, "agency")
    lines: list[str] = []
    with agency.stream(
        "GET", "/v1/events/stream", headers={"Last-Event-ID": "1"}, timeout=10
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("id: "):
                lines.append(line)
            if len(lines) == 2:
                break
    assert lines == ["id: 2", "id: 3"]
