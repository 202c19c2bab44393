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


def test_one_statement_reads_what_the_sql_candidate_source_and_owner_lookup_read(
    registry: Registry,
) -> None:
    """Search reads its candidates and their entities in one statement
    (:func:`lookup.search_candidates`); registration reads them with
    :class:`SqlCandidateSource` and :func:`lookup.entities_of_records`. Both must find
    the same rows, also for a record linked to no entity."""
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from mdm.matching import blocking_keys, build_features
    from mdm.services.matching.online import SqlCandidateSource, loaded_model
    from mdm.standardize import standardize_record
    from mdm.store.models import Link
    from mdm.store.models.match import blocking_key_hashes
    from mdm.store.repositories import lookup

    def keys_of(attributes: dict[str, object]) -> list[str]:
        raw = {
            "full_name": fold(str(attributes["full_name"])),
            "date_of_birth": str(attributes["date_of_birth"])[:4],
        }
        features = build_features(
            "citizen", "__q__", "api", standardize_record("citizen", raw).standardized
        )
        return blocking_keys(features, model.rules)

    people = _people(registry, 12)
    assert len(people) == 12
    compared = unlinked_seen = 0
    with registry.engine.connect() as conn, Session(bind=conn) as session:
        model, _tf = loaded_model(session, "citizen", registry.rules_dir)
        source = SqlCandidateSource(session, "citizen")
        # one candidate loses its link (rolled back at the end)
        unlinked = int(next(iter(source.candidates(keys_of(people[0][1]))))["unique_id"])  # type: ignore[arg-type]
        session.execute(update(Link).where(Link.source_record_id == unlinked).values(active=False))
        for _cid, attributes in people:
            keys = keys_of(attributes)
            assert keys, attributes
            expected = {int(r["unique_id"]): dict(r) for r in source.candidates(keys)}  # type: ignore[arg-type]
            owners = lookup.entities_of_records(session.connection(), list(expected))
            found = lookup.search_candidates(
                session.connection(), "citizen", blocking_key_hashes("citizen", keys)
            )
            assert len(found) == len(expected)  # one row per record
            assert {c.record_id: c.features for c in found} == expected
            got = {c.record_id: c.owner for c in found if c.owner is not None}
            assert got.keys() == owners.keys()
            for rid, owner in owners.items():
                assert got[rid].canonical_id == owner.canonical_id
                assert got[rid].attributes == owner.attributes
            if unlinked in expected:
                unlinked_seen += 1
                assert unlinked not in got
            compared += len(expected)
        assert lookup.search_candidates(session.connection(), "citizen", []) == []
        session.rollback()
    assert unlinked_seen >= 1
    assert compared > len(people)  # namesakes too, not only each person
