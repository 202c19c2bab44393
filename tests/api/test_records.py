"""``POST /v1/{type}/records`` through the API: linking, idempotency, scopes, rejects."""

from __future__ import annotations

import uuid

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
