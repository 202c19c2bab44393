"""The lookup repository's batch read, on both backends: IDs go to Postgres as one
array literal when none needs quoting, as a list otherwise; both find the same rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from mdm.domain.canonical_id import new_canonical_id
from mdm.store.models import Entity
from mdm.store.repositories import lookup


def _entity(session: Session, cid: str) -> None:
    now = datetime.now(UTC)
    session.execute(
        insert(Entity).values(
            canonical_id=cid,
            entity_type="citizen",
            status="active",
            version=1,
            attributes={"full_name": "Nguyễn Văn An"},
            provenance={},
            created_at=now,
            updated_at=now,
        )
    )


@pytest.mark.parametrize(
    "odd",
    ['say "hi"', "a,b", "{x}", "NULL", "null", "back\\slash", "spaced id", "", "Ω-7"],
)
def test_batch_lookup_finds_ids_and_ignores_any_odd_text(session: Session, odd: str) -> None:
    cids = [new_canonical_id("citizen", f"lookup-{i}".encode()) for i in range(3)]
    for cid in cids:
        _entity(session, cid)
    conn = session.connection()
    assert set(lookup.current_entities(conn, cids)) == set(cids)
    found = lookup.current_entities(conn, [cids[0], odd, cids[2]])
    assert set(found) == {cids[0], cids[2]}
    assert json.loads(found[cids[0]].stored_attributes) == {"full_name": "Nguyễn Văn An"}


def test_array_literal_only_for_bare_elements() -> None:
    assert lookup._text_array(["P-ABC", "O-DEF"]) == "{P-ABC,O-DEF}"
    for values in (["P-ABC", "a b"], ["P-ABC", "Null"], ["P-ABC", ""], ["x,y"]):
        assert lookup._text_array(values) == values
