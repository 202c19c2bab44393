"""Probabilistic search: partial queries find people, ranked, explained, masked."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import select

from mdm.standardize import fold
from mdm.store.models import Entity
from tests.api.conftest import Registry, api_app, rules_dir_for_tests, serving


def _people(reg: Registry, n: int) -> list[tuple[str, dict[str, object]]]:
    with reg.engine.connect() as conn:
        rows = conn.execute(
            select(Entity.canonical_id, Entity.attributes)
            .where(Entity.entity_type == "citizen", Entity.status == "active")
            .order_by(Entity.id)
        ).all()
    out = []
    for cid, attributes in rows:
        addr = attributes.get("permanent_address") or {}
        if (
            attributes.get("full_name")
            and len(str(attributes.get("date_of_birth", ""))) >= 4
            and isinstance(addr, dict)
            and addr.get("province_code")
        ):
            out.append((str(cid), attributes))
        if len(out) == n:
            break
    return out


def test_partial_search_name_year_province_finds_the_person(registry: Registry) -> None:
    people = _people(registry, 20)
    assert len(people) == 20
    found_first = 0
    with registry.client("citizen-pii") as c:
        for cid, attributes in people:
            query = {
                "full_name": fold(str(attributes["full_name"])),  # no diacritics
                "birth_year": int(str(attributes["date_of_birth"])[:4]),
                "province_code": attributes["permanent_address"]["province_code"],  # type: ignore[index]
            }
            r = c.post(
                "/v1/citizen/search",
                json={"attributes": query, "limit": 5},
                headers={"X-Purpose": "search test"},
            )
            assert r.status_code == 200, r.text
            body = r.json()
            ranked = [x["canonical_id"] for x in body["candidates"]]
            assert cid in ranked, (query, body)
            found_first += ranked[0] == cid
            top = body["candidates"][0]
            assert 0.0 <= top["match_probability"] <= 1.0
            assert {"name", "dob", "address"} <= set(top["weights"])
            # (the address weight is the model's: in one synthetic province "same
            # province, other commune" is evidence *against* a match)
            assert top["weights"]["name"] > 0 and top["weights"]["dob"] > 0
            weights = [x["match_weight"] for x in body["candidates"]]
            assert weights == sorted(weights, reverse=True)
            assert len(set(ranked)) == len(ranked)  # grouped by entity
    assert found_first >= 15  # namesakes born the same year may rank first


def test_search_masks_without_pii_and_reports_no_key(registry: Registry) -> None:
    cid, attributes = _people(registry, 1)[0]
    query = {
        "full_name": str(attributes["full_name"]),
        "date_of_birth": str(attributes["date_of_birth"]),
    }
    with registry.client("searcher") as c:
        r = c.post("/v1/citizen/search", json={"attributes": query})
        assert r.status_code == 200, r.text
        top = r.json()["candidates"][0]
        assert top["canonical_id"] == cid
        assert "date_of_birth" in top["masked"]
        assert len(str(top["attributes"]["date_of_birth"])) == 4
        # a province alone makes no blocking key: nothing found, and said so
        none = c.post("/v1/citizen/search", json={"attributes": {"province_code": "01"}})
        assert none.status_code == 200
        assert none.json()["candidates"] == []
        assert "no_blocking_key" in [i["code"] for i in none.json()["issues"]]
        bad = c.post("/v1/citizen/search", json={"attributes": {}, "limit": 0})
        assert bad.status_code == 422 and bad.json()["detail"][0]["pointer"] == "/limit"
        assert c.post("/v1/organization/search", json={"attributes": {}}).status_code == 403
        wrong = c.post("/v1/people/search", json={"attributes": {}})
        assert wrong.status_code == 422
        assert wrong.json()["detail"][0] == {
            "pointer": "/entity_type",
            "message": wrong.json()["detail"][0]["message"],
            "in": "path",
        }


def test_search_without_a_trained_model_is_503(registry: Registry, tmp_path: Path) -> None:
    app = api_app(registry)
    app.state.mdm_rules_dir = rules_dir_for_tests(tmp_path)  # rules, no models/
    with serving(app) as base:
        r = httpx.post(
            f"{base}/v1/citizen/search",
            json={"attributes": {"full_name": "Nguyen Van An", "birth_year": 1990}},
            headers={"Authorization": f"Bearer {registry.keys['searcher']}"},
        )
    assert r.status_code == 503
    assert r.json()["error"] == "model_not_trained"
    assert "mdm match train --entity citizen" in r.json()["detail"]
