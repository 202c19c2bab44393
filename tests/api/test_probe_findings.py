"""What a black-box probe with narrow keys found, one test per finding (docs/api.md).

Each test states the attacker's request and what must not come back.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mdm.api import clear_auth_cache
from mdm.config import get_settings
from mdm.events.feed import sequence_events
from mdm.events.relay import fan_out
from mdm.services import subscriptions as subs
from mdm.services.clients import create_client, revoke_client
from mdm.store.models import (
    ApiClient,
    Delivery,
    Entity,
    Link,
    OutboxEvent,
    SourceRecord,
    SourceSystem,
    Subscription,
)
from tests.api.conftest import Registry

PORTAL = "national-portal"
#: the comparisons of attributes a key without citizen:pii reads unmasked
EXPLAINED = {"name", "sex", "address", "ethnicity"}


def _key(reg: Registry, scopes: list[str], **kw: Any) -> tuple[str, str]:
    name = f"probe-{uuid.uuid4().hex[:8]}"
    with Session(reg.engine) as s:
        key = create_client(s, name, scopes, **kw).key
        s.commit()
    clear_auth_cache()
    return name, key


def _client(reg: Registry, key: str, **headers: str) -> httpx.Client:
    return httpx.Client(
        base_url=reg.base_url, headers={"Authorization": f"Bearer {key}", **headers}, timeout=30
    )


def _portal_citizen(reg: Registry) -> tuple[str, str]:
    """(canonical ID, portal source key = the personal ID) of a citizen whose golden
    record carries a personal ID, a full birth date and a phone or e-mail."""
    with Session(reg.engine) as s:
        for cid, key, attributes in s.execute(
            select(Entity.canonical_id, SourceRecord.source_key, Entity.attributes)
            .join(Link, (Link.entity_id == Entity.id) & Link.active.is_(True))
            .join(SourceRecord, SourceRecord.id == Link.source_record_id)
            .join(SourceSystem, SourceSystem.id == SourceRecord.source_system_id)
            .where(SourceSystem.name == PORTAL, Entity.status == "active")
            .where(Entity.entity_type == "citizen")
            .order_by(Entity.id)
        ):
            if (
                cid not in reg.merged
                and attributes.get("personal_id") == key
                and len(str(attributes.get("date_of_birth") or "")) == 10
                and (attributes.get("phone") or attributes.get("email"))
            ):
                return str(cid), str(key)
    raise AssertionError("no portal citizen")


# --- 1 and 12: masked reads and provenance -----------------------------------------


def test_masked_reads_never_carry_the_portal_key_which_is_the_personal_id(
    registry: Registry,
) -> None:
    cid, pid = _portal_citizen(registry)
    _name, key = _key(registry, ["citizen:read"])
    now = datetime.now(UTC).isoformat()
    with _client(registry, key) as c:
        bodies = {
            "entity": c.get(f"/v1/entities/{cid}"),
            "as_of": c.get(f"/v1/entities/{cid}", params={"as_of": now}),
            "history": c.get(f"/v1/entities/{cid}/history"),
            "batch": c.post("/v1/entities:batchGet", json={"items": [{"id": cid}]}),
        }
    for route, r in bodies.items():
        assert r.status_code == 200, (route, r.text)
        assert pid not in r.text, route
        assert f"{PORTAL}/********{pid[-4:]}" in r.text, route  # still says where from


def test_provenance_is_masked_by_one_rule_on_every_read(registry: Registry) -> None:
    """The current read, as_of and the history's last version show one provenance;
    withheld attributes (phone, e-mail) have no provenance entry anywhere."""
    cid, _pid = _portal_citizen(registry)
    _name, key = _key(registry, ["citizen:read"])
    with _client(registry, key) as c:
        current = c.get(f"/v1/entities/{cid}").json()
        as_of = c.get(f"/v1/entities/{cid}", params={"as_of": datetime.now(UTC).isoformat()}).json()
        history = c.get(f"/v1/entities/{cid}/history").json()["versions"]
    last = history[-1]
    assert current["version"] == as_of["version"] == last["version"]
    assert current["provenance"] == as_of["provenance"] == last["provenance"]
    assert current["attributes"] == as_of["attributes"] == last["attributes"]
    for body in (current, as_of, last):
        assert not {"phone", "email"} & set(body["provenance"])
        assert not {"phone", "email"} & set(body["attributes"])


# --- 4: search weights -------------------------------------------------------------


def test_search_without_pii_explains_no_masked_attribute(registry: Registry) -> None:
    """A right and a wrong guess of a birth date and phone must not be told apart by
    per-comparison weights."""
    cid, _pid = _portal_citizen(registry)
    with Session(registry.engine) as s:
        attrs = s.execute(select(Entity.attributes).where(Entity.canonical_id == cid)).scalar_one()
    query = {"full_name": attrs["full_name"], "date_of_birth": attrs["date_of_birth"]}
    if attrs.get("phone"):
        query["phone"] = attrs["phone"]
    _n, searcher = _key(registry, ["citizen:search"])
    _n, pii = _key(registry, ["citizen:search", "citizen:pii"])
    with _client(registry, searcher) as c:
        masked = c.post("/v1/citizen/search", json={"attributes": query}).json()["candidates"]
    with _client(registry, pii, **{"X-Purpose": "probe test"}) as c:
        full = c.post("/v1/citizen/search", json={"attributes": query}).json()["candidates"]
    top = next(x for x in masked if x["canonical_id"] == cid)
    assert set(top["weights"]) <= EXPLAINED
    assert not {"dob", "phone", "personal_id", "old_id", "email", "id_region"} & set(top["weights"])
    assert top["match_weight"] == round(top["match_weight"])  # whole bits
    assert top["match_probability"] == round(top["match_probability"], 2)
    # the key with pii reads the whole explanation
    assert "dob" in next(x for x in full if x["canonical_id"] == cid)["weights"]


def test_registration_answer_follows_the_search_rule(registry: Registry) -> None:
    cid, pid = _portal_citizen(registry)
    with Session(registry.engine) as s:
        attrs = s.execute(select(Entity.attributes).where(Entity.canonical_id == cid)).scalar_one()
    _n, writer = _key(registry, ["citizen:write"], source_systems=["probe-writes"])
    body = {
        "source_system": "probe-writes",
        "source_key": pid,  # a system keyed by the personal ID, as the portal is
        "attributes": {
            "full_name": attrs["full_name"],
            "date_of_birth": attrs["date_of_birth"],
            "personal_id": pid,
        },
    }
    with _client(registry, writer) as c:
        r = c.post("/v1/citizen/records", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert pid not in r.text
    assert answer["source_key"] == f"********{pid[-4:]}"
    assert answer["candidates"], answer
    for cand in answer["candidates"]:
        assert set(cand["weights"]) <= EXPLAINED, cand


# --- 5: a revoked key's open stream --------------------------------------------------


def test_revoked_key_open_stream_closes(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "api_auth_cache_seconds", 1.0)
    name, key = _key(registry, ["events:read", "citizen:read"])
    with registry.engine.begin() as conn:
        sequence_events(conn)
    lines: list[str] = []
    ended = threading.Event()

    def read() -> None:
        with (
            _client(registry, key) as c,
            c.stream("GET", "/v1/events/stream", params={"after": 10**12}) as r,
        ):
            assert r.status_code == 200
            for line in r.iter_lines():
                lines.append(line)
        ended.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(1.5)
    assert not ended.is_set(), lines  # open while the key is valid
    with Session(registry.engine) as s:
        revoke_client(s, name)
        s.commit()
    # the stream re-checks its key every second here (the cache's lifetime): it ends
    assert ended.wait(20), "the stream of a revoked key is still open"
    assert ": access revoked" in lines
    with _client(registry, key) as c:
        assert c.get("/v1/events").status_code == 401


# --- 6: events filtered by entity-type scopes ----------------------------------------


def test_feed_and_webhooks_carry_only_types_the_key_may_read(registry: Registry) -> None:
    with registry.engine.begin() as conn:
        while sequence_events(conn) > 0:
            pass
    org_name, org_only = _key(registry, ["events:read", "organization:read"])
    _n, citizens = _key(registry, ["events:read", "citizen:read"])
    with _client(registry, org_only) as c:
        page = c.get("/v1/events", params={"limit": 1000})
        assert page.status_code == 200, page.text
        assert page.json()["events"], "the registry has organization events"
        assert {e["entity_type"] for e in page.json()["events"]} == {"organization"}
        asked = c.get("/v1/events", params={"entity_types": "citizen"})
        assert asked.status_code == 403 and asked.json()["error"] == "forbidden"
        stream = c.get("/v1/events/stream", params={"entity_types": "citizen"})
        assert stream.status_code == 403
    with _client(registry, citizens) as c:
        types = {
            e["entity_type"] for e in c.get("/v1/events", params={"limit": 1000}).json()["events"]
        }
        assert types == {"citizen"}
    # a webhook of the organization-only client, subscribed to every event from the
    # feed's beginning (a public literal address: validated, never contacted here)
    with Session(registry.engine) as s:
        client_id = s.execute(select(ApiClient.id).where(ApiClient.name == org_name)).scalar_one()
        view, _secret = subs.create_subscription(s, client_id, "http://93.184.216.34/hook", {})
        s.execute(update(Subscription).where(Subscription.id == view.id).values(feed_cursor=0))
        s.commit()
    with registry.engine.begin() as conn:
        fan_out(conn, limit=100_000)
    with Session(registry.engine) as s:
        delivered = (
            s.execute(
                select(OutboxEvent.entity_type)
                .join(Delivery, Delivery.event_position == OutboxEvent.position)
                .where(Delivery.subscription_id == view.id)
            )
            .scalars()
            .all()
        )
    assert delivered and set(delivered) == {"organization"}


# --- 7: no existence oracle across types ----------------------------------------------


def test_xref_of_an_unreadable_type_answers_like_a_missing_one(registry: Registry) -> None:
    _cid, pid = _portal_citizen(registry)
    _n, org = _key(registry, ["organization:read"])
    with _client(registry, org) as c:
        hidden = c.get(f"/v1/xrefs/{PORTAL}/{pid}")
        missing = c.get(f"/v1/xrefs/{PORTAL}/000000000000")
        assert (hidden.status_code, hidden.json()) == (missing.status_code, missing.json())
        assert hidden.status_code == 404
        batch = c.post(
            "/v1/entities:batchGet",
            json={
                "items": [
                    {"source_system": PORTAL, "source_key": pid},
                    {"source_system": PORTAL, "source_key": "000000000000"},
                ]
            },
        ).json()["results"]
        assert batch[0] == batch[1] and batch[0]["error"] == "xref_not_found"
        assert pid not in hidden.text and pid not in str(batch)


# --- 9: Last-Event-ID ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [b"99999999999999999999999", b"\xb2", b"12a", b"-1", b"\xff\xfe", b"9223372036854775808"],
)
def test_bad_last_event_id_is_a_400_with_the_usual_body(registry: Registry, value: bytes) -> None:
    _n, key = _key(registry, ["events:read", "citizen:read"])
    with (
        _client(registry, key) as c,
        c.stream("GET", "/v1/events/stream", headers={"Last-Event-ID": value}) as r,  # type: ignore[dict-item]
    ):
        # (a stream that opened would never end: read the body only of an error)
        assert r.status_code == 400, r.headers
        body = orjson.loads(r.read())
    assert r.headers["content-type"].startswith("application/json")
    assert body["error"] == "invalid_last_event_id"
    assert re.search("Last-Event-ID", body["detail"])
