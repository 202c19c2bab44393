"""``bulk_insert`` (COPY on Postgres, executemany on SQLite) stores every value as
given: JSON documents and text holding the characters COPY's text format escapes
(backslash, tab, newline, carriage return), quotes, Vietnamese text, and the rows'
shared timestamp."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mdm.domain.canonical_id import new_canonical_id
from mdm.store.repositories import entities as repo

_AWKWARD = [
    "back\\slash",
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    'say "hi"',
    "\\N",
    "Nguyễn Thị Thuỷ",
    "ends with a backslash\\",
    "\\\\t two backslashes then t",
]


def test_json_and_text_values_come_back_exactly(session: Session) -> None:
    conn = session.connection()
    now = datetime(2026, 12, 4, 16, 30, tzinfo=UTC)
    later = now + timedelta(seconds=1)
    ids = repo.allocate_ids(conn, repo.entities, len(_AWKWARD))
    rows = []
    for i, (eid, text) in enumerate(zip(ids, _AWKWARD, strict=True)):
        attributes = {"full_name": text, "nested": {"street": text, "list": [text, None]}}
        rows.append(
            {
                "id": eid,
                "canonical_id": new_canonical_id("citizen", f"bulk-copy-{i}".encode()),
                "entity_type": "citizen",
                "status": "active",
                "version": 1,
                # every other row as the identity step passes it: encoded once
                "attributes": repo.json_for(conn, attributes) if i % 2 else attributes,
                "provenance": {"full_name": {"rule": text, "source_records": [text]}},
                "created_at": now,
                "updated_at": now if i % 3 else later,  # shared stamps, and a change
            }
        )
    repo.bulk_insert(conn, repo.entities, rows)
    stored = {
        r.id: r
        for r in conn.execute(
            select(
                repo.entities.c.id,
                repo.entities.c.attributes,
                repo.entities.c.provenance,
                repo.entities.c.created_at,
                repo.entities.c.updated_at,
            ).where(repo.entities.c.id.in_(ids))
        )
    }
    assert len(stored) == len(_AWKWARD)
    for i, (eid, text) in enumerate(zip(ids, _AWKWARD, strict=True)):
        row = stored[eid]
        assert row.attributes == {
            "full_name": text,
            "nested": {"street": text, "list": [text, None]},
        }, text
        assert row.provenance == {"full_name": {"rule": text, "source_records": [text]}}
        assert row.created_at == now
        assert row.updated_at == (now if i % 3 else later)
