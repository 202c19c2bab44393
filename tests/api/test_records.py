"""``POST /v1/{type}/records`` through the API: linking, idempotency, scopes, rejects."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mdm.services.clients import create_client
from mdm.store.models import (
    ApiClientSourceSystem,
    Entity,
    Link,
    SourceRecord,
    SourceRecordVersion,
    SourceSystem,
)
from tests.api.conftest import Registry, entity_with


def test_register_links_to_the_existing_entity_and_replays(registry: Registry) -> None:
    cid = entity_with(registry, "citizen", "personal_id", "date_of_birth", "full_name")
    with registry.client("all") as c:
        golden = c.get(f"/v1/entities/{cid}", headers={"X-Purpose": "test"}).json()["attributes"]
        attributes = {
            "full_name": golden["full_name"],
            "date_of_birth": golden["date_of_birth"],
            "personal_id": golden["personal_id"],
        }
        body = {
            "source_system": "api-test",
            "source_key": uuid.uuid4().hex,
            "attributes": attributes,
        }
        key = {"Idempotency-Key": uuid.uuid4().hex}
        first = c.post("/v1/citizen/records", json=body, headers=key)
        assert first.status_code == 200, first.text
        assert first.json()["decision"] == "linked"
        assert first.json()["canonical_id"] == cid
        assert first.json()["replayed"] is False
        again = c.post("/v1/citizen/records", json=body, headers=key)
        assert again.status_code == 200 and again.json()["replayed"] is True
        assert again.json()["canonical_id"] == cid
        other = {**body, "attributes": {**attributes, "full_name": "Someone Else"}}
        reused = c.post("/v1/citizen/records", json=other, headers=key)
        assert reused.status_code == 409 and reused.json()["error"] == "idempotency_key_reused"
        xref = c.get(f"/v1/xrefs/api-test/{body['source_key']}")
        assert xref.status_code == 200 and xref.json()["canonical_id"] == cid


def test_register_needs_write_scope_and_rejects_unusable_records(registry: Registry) -> None:
    body = {"source_system": "api-test", "source_key": "r-1", "attributes": {"full_name": "A B"}}
    with registry.client("reader") as c:
        assert c.post("/v1/citizen/records", json=body).status_code == 403
    with registry.client("writer") as c:
        assert c.post("/v1/organization/records", json=body).status_code == 403
        rejected = c.post(
            "/v1/citizen/records",
            json={**body, "attributes": {"date_of_birth": "1990-01-01"}},  # no name
        )
        assert rejected.status_code == 422, rejected.text
        assert rejected.json()["error"] == "record_rejected"
        bad = c.post("/v1/citizen/records", json={**body, "attributes": {"full_name": 5}})
        assert bad.status_code == 422 and bad.json()["error"] == "validation_error"
        assert bad.json()["detail"][0]["pointer"] == "/attributes/full_name"


def _record_state(
    registry: Registry, system: str, key: str
) -> tuple[int, int, int, dict[str, Any]]:
    """(current version, stored versions, entity version, golden record) of a record."""
    with Session(registry.engine) as session:
        record_id, current, entity_version, golden = session.execute(
            select(SourceRecord.id, SourceRecord.current_version, Entity.version, Entity.attributes)
            .join(SourceSystem, SourceSystem.id == SourceRecord.source_system_id)
            .join(Link, (Link.source_record_id == SourceRecord.id) & Link.active.is_(True))
            .join(Entity, Entity.id == Link.entity_id)
            .where(SourceSystem.name == system, SourceRecord.source_key == key)
        ).one()
        versions = session.execute(
            select(func.count())
            .select_from(SourceRecordVersion)
            .where(SourceRecordVersion.source_record_id == record_id)
        ).scalar_one()
    return int(current), int(versions), int(entity_version), dict(golden)


def test_a_write_key_writes_only_the_source_systems_it_is_bound_to(registry: Registry) -> None:
    """The probe of the finding: a citizen:write key sent another agency's record
    (national-portal) with its own phone and street and got it linked as version 2.
    Bound to hn-legacy, it is refused (403) and nothing changes; hn-legacy is its own."""
    with Session(registry.engine) as session:
        key, cid = session.execute(
            select(SourceRecord.source_key, Entity.canonical_id)
            .join(SourceSystem, SourceSystem.id == SourceRecord.source_system_id)
            .join(Link, (Link.source_record_id == SourceRecord.id) & Link.active.is_(True))
            .join(Entity, Entity.id == Link.entity_id)
            .where(
                SourceSystem.name == "national-portal",
                SourceRecord.entity_type == "citizen",
                Entity.status == "active",
            )
            .order_by(SourceRecord.id)
            .limit(1)
        ).one()
        bound = create_client(
            session, f"hn-{uuid.uuid4().hex[:8]}", ["citizen:write"], source_systems=["hn-legacy"]
        ).key
        unbound_client = create_client(
            session, f"unbound-{uuid.uuid4().hex[:8]}", ["*:write"], source_systems=["x"]
        )
        # a write key without any binding (as migration 0015 leaves one that never wrote)
        session.execute(
            delete(ApiClientSourceSystem).where(
                ApiClientSourceSystem.client_id == unbound_client.client.id
            )
        )
        session.commit()
    before = _record_state(registry, "national-portal", key)
    golden = before[3]
    attack = {
        "source_system": "national-portal",
        "source_key": key,
        "attributes": {
            "full_name": golden["full_name"],
            "date_of_birth": golden["date_of_birth"],
            "personal_id": golden.get("personal_id") or key,
            "phone": "0999000111",
            "permanent_address": "1 Attacker Street, Phường Hàng Bạc, Thành phố Hà Nội",
        },
    }
    headers = {"Authorization": f"Bearer {bound}"}
    with httpx.Client(base_url=registry.base_url, headers=headers, timeout=30) as c:
        refused = c.post("/v1/citizen/records", json=attack)
        assert refused.status_code == 403, refused.text
        assert refused.json() == {
            "error": "forbidden",
            "detail": "this key may not write source system 'national-portal'",
        }
        # the same refusal with an Idempotency-Key, and for a system nobody has yet
        retried = c.post("/v1/citizen/records", json=attack, headers={"Idempotency-Key": "k1"})
        assert retried.status_code == 403, retried.text
        elsewhere = c.post("/v1/citizen/records", json={**attack, "source_system": "hcm-legacy"})
        assert elsewhere.status_code == 403, elsewhere.text
        assert before == _record_state(registry, "national-portal", key)
        own = {**attack, "source_system": "hn-legacy", "source_key": uuid.uuid4().hex}
        written = c.post("/v1/citizen/records", json=own)
        assert written.status_code == 200, written.text
        assert written.json()["source_system"] == "hn-legacy"
    assert before == _record_state(registry, "national-portal", key)
    with registry.client("all") as c:
        served = c.get(f"/v1/entities/{cid}", headers={"X-Purpose": "test"})
        assert served.status_code == 200, served.text
        assert served.json()["attributes"].get("phone") != "0999000111"
    headers = {"Authorization": f"Bearer {unbound_client.key}"}
    with httpx.Client(base_url=registry.base_url, headers=headers, timeout=30) as c:
        for system in ("x", "hn-legacy", "national-portal"):
            r = c.post("/v1/citizen/records", json={**own, "source_system": system})
            assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
