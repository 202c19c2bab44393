"""The console search's reads: a source key's entity, and the entities owning the
records a probabilistic search scored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, true

from mdm.store.tables import entities, links, records, systems


def canonical_id_of(conn: Connection, system: str, key: str) -> str | None:
    """The canonical ID the record (source system, source key) is linked to, if any."""
    return conn.execute(
        select(entities.c.canonical_id)
        .select_from(records)
        .join(systems, systems.c.id == records.c.source_system_id)
        .join(links, (links.c.source_record_id == records.c.id) & links.c.active == true())
        .join(entities, entities.c.id == links.c.entity_id)
        .where(systems.c.name == system, records.c.source_key == key)
    ).scalar()


def owners(conn: Connection, record_ids: Sequence[int]) -> dict[int, Any]:
    """record id -> (record id, canonical ID, entity type, status, attributes) of the
    entity its active link points at."""
    stmt = (
        select(
            links.c.source_record_id,
            entities.c.canonical_id,
            entities.c.entity_type,
            entities.c.status,
            entities.c.attributes,
        )
        .join(entities, entities.c.id == links.c.entity_id)
        .where(links.c.source_record_id.in_(list(record_ids)), links.c.active == true())
    )
    return {int(r[0]): r for r in conn.execute(stmt)}
