"""Lookup, history, cross-references and batch lookup, on SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mdm.api.masking import mask_id
from mdm.domain.canonical_id import new_canonical_id
from tests.api.conftest import Registry, entity_with


def _bad_check(cid: str) -> str:
    last = cid[-1]
    return cid[:-1] + ("0" if last != "0" else "1")


def test_get_entity_current_and_masking_rules(registry: Registry) -> None:
    cid = entity_with(registry, "citizen", "personal_id", "date_of_birth")
    full = registry.client("all").get(f"/v1/entities/{cid}", headers={"X-Purpose": "test"})
    assert full.status_code == 200, full.text
    body = full.json()
    assert body["canonical_id"] == cid and body["entity_type"] == "citizen"
    assert body["redirected_from"] is None and body["masked"] == []
    pid = body["attributes"]["personal_id"]
    dob = body["attributes"]["date_of_birth"]

    masked = registry.client("reader").get(f"/v1/entities/{cid.lower()}")
    assert masked.status_code == 200, masked.text
    m = masked.json()
    assert m["requested_id"] == cid  # IDs are case-insensitive
    assert m["attributes"]["personal_id"] == "********" + pid[-4:]
    assert m["attributes"]["date_of_birth"] == dob[:4]
    assert "phone" not in m["attributes"] and "email" not in m["attributes"]
    assert {"personal_id", "date_of_birth"} <= set(m["masked"])
    assert pid not in masked.text


def test_merged_id_answers_with_the_survivor(registry: Registry) -> None:
    loser, survivor = registry.merged
    r = registry.client("reader").get(f"/v1/entities/{loser}")
    assert r.status_code == 200, r.text
    assert r.json()["canonical_id"] == survivor
    assert r.json()["redirected_from"] == loser
    assert r.json()["requested_id"] == loser


def test_malformed_and_unknown_ids(registry: Registry) -> None:
    c = registry.client("reader")
    cid = registry.ids["citizen"][0]
    bad = c.get(f"/v1/entities/{_bad_check(cid)}")
    assert bad.status_code == 400 and bad.json()["error"] == "malformed_id"
    assert c.get("/v1/entities/nonsense").json()["error"] == "malformed_id"
    unknown = c.get(f"/v1/entities/{new_canonical_id('citizen', b'nobody')}")
    assert unknown.status_code == 404 and unknown.json()["error"] == "entity_not_found"


def test_as_of_and_history(registry: Registry) -> None:
    loser, survivor = registry.merged
    c = registry.client("reader")
    hist = c.get(f"/v1/entities/{loser}/history")
    assert hist.status_code == 200, hist.text
    versions = hist.json()["versions"]
    assert [v["status"] for v in versions][-1] == "merged"
    assert all(
        "personal_id" not in v["attributes"] or "*" in v["attributes"]["personal_id"]
        for v in versions
    )
    # before the merge the loser was its own entity
    before = versions[0]["valid_from"]
    r = c.get(f"/v1/entities/{loser}", params={"as_of": before})
    assert r.status_code == 200, r.text
    assert r.json()["canonical_id"] == loser and r.json()["redirected_from"] is None
    # long before anything existed: 404
    early = c.get(f"/v1/entities/{survivor}", params={"as_of": "2000-01-01T00:00:00Z"})
    assert early.status_code == 404
    now = datetime.now(UTC).isoformat()
    assert c.get(f"/v1/entities/{loser}", params={"as_of": now}).json()["canonical_id"] == survivor


def test_xref(registry: Registry) -> None:
    system, key, cid = registry.xref
    r = registry.client("reader").get(f"/v1/xrefs/{system}/{key}")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "source_system": system,
        "source_key": mask_id(key),  # a source key may be a personal ID: masked like one
        "canonical_id": cid,
        "entity_type": "citizen",
        "status": "active",
    }
    missing = registry.client("reader").get(f"/v1/xrefs/{system}/no-such-key")
    assert missing.status_code == 404 and missing.json()["error"] == "xref_not_found"
    # a record of a type the key may not read answers exactly like a missing one
    hidden = registry.client("org-reader").get(f"/v1/xrefs/{system}/{key}")
    absent = registry.client("org-reader").get(f"/v1/xrefs/{system}/no-such-key")
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["error"] == absent.json()["error"] == "xref_not_found"


def test_batch_get_in_order_with_item_errors(registry: Registry) -> None:
    system, key, xcid = registry.xref
    loser, survivor = registry.merged
    org = registry.ids["organization"][0]
    cids = registry.ids["citizen"][:5]
    items = [{"id": c} for c in cids] + [
        {"id": "P-BAD"},
        {"source_system": system, "source_key": key},
        {"source_system": system, "source_key": "nope"},
        {"id": loser},
        {"id": org},
        {"id": new_canonical_id("citizen", b"nobody")},
        {"id": cids[0]},
    ]
    r = registry.client("citizen-reader").post("/v1/entities:batchGet", json={"items": items})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert len(res) == len(items)
    for c, got in zip(cids, res[:5], strict=True):
        assert got["ok"] and got["entity"]["canonical_id"] == c
    assert res[5] == {"ok": False, "error": "malformed_id", "detail": res[5]["detail"]}
    assert res[6]["ok"] and res[6]["entity"]["canonical_id"] == xcid
    assert res[7]["error"] == "xref_not_found"
    assert res[8]["entity"]["canonical_id"] == survivor
    assert res[8]["entity"]["redirected_from"] == loser
    assert res[9]["error"] == "forbidden"  # no organization:read
    assert res[10]["error"] == "entity_not_found"
    assert res[11]["entity"]["canonical_id"] == cids[0]
    # each entity of a batch is the body a single lookup answers, to the character
    for c, got in zip(cids, res[:5], strict=True):
        one = registry.client("citizen-reader").get(f"/v1/entities/{c}")
        assert one.status_code == 200, one.text
        assert got["entity"] == one.json()
        stamp = datetime.fromisoformat(got["entity"]["valid_from"])
        assert stamp.utcoffset() == timedelta(0)
        assert got["entity"]["valid_from"] == stamp.isoformat()


def test_batch_get_as_of_and_limits(registry: Registry) -> None:
    c = registry.client("reader")
    cid = registry.ids["citizen"][0]
    r = c.post(
        "/v1/entities:batchGet",
        json={"items": [{"id": cid}], "as_of": datetime.now(UTC).isoformat()},
    )
    assert r.status_code == 200 and r.json()["results"][0]["ok"], r.text
    too_many = c.post("/v1/entities:batchGet", json={"items": [{"id": cid}] * 1001})
    assert too_many.status_code == 422
    assert too_many.json()["error"] == "validation_error"
    assert too_many.json()["detail"][0]["pointer"] == "/items"
    bad_item = c.post(
        "/v1/entities:batchGet",
        json={"items": [{"id": cid}, {"id": cid}, {"id": cid}, {"source_system": "x"}]},
    )
    assert bad_item.status_code == 422
    assert bad_item.json()["detail"][0]["pointer"] == "/items/3"
    wrong_type = c.post("/v1/entities:batchGet", json={"items": [{"id": 5}]})
    assert wrong_type.json()["detail"][0]["pointer"] == "/items/0/id"


def test_error_body_everywhere(registry: Registry) -> None:
    c = registry.client("reader")
    nf = c.get("/v1/nowhere")
    assert nf.status_code == 404 and nf.json() == {"error": "not_found", "detail": "no such route"}
    na = c.delete(f"/v1/entities/{registry.ids['citizen'][0]}")
    assert na.status_code == 405 and na.json()["error"] == "method_not_allowed"
    unauth = registry.client("").get(f"/v1/entities/{registry.ids['citizen'][0]}")
    assert unauth.status_code == 401 and unauth.json()["error"] == "unauthorized"
    notjson = c.post(
        "/v1/entities:batchGet", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert notjson.status_code == 422 and notjson.json()["error"] == "validation_error"
