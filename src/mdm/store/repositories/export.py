"""Streamed reads for the bulk exports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, and_, select, true

from mdm.store.tables import entities, links, records, systems


def xref_rows(conn: Connection, entity_type: str) -> Iterator[Any]:
    """(source system, source key, canonical ID or ``None``) of every active record of
    ``entity_type``, by system and key, streamed."""
    stmt = (
        select(systems.c.name, records.c.source_key, entities.c.canonical_id)
        .select_from(records)
        .join(systems, systems.c.id == records.c.source_system_id)
        .outerjoin(links, and_(links.c.source_record_id == records.c.id, links.c.active == true()))
        .outerjoin(entities, entities.c.id == links.c.entity_id)
        .where(records.c.entity_type == entity_type, records.c.status == "active")
        .order_by(systems.c.name, records.c.source_key)
    )
    return iter(conn.execute(stmt.execution_options(yield_per=10_000)))


def active_entities(conn: Connection, entity_type: str) -> Iterator[Any]:
    """The active golden records of ``entity_type`` by canonical ID, streamed."""
    e = entities
    stmt = (
        select(
            e.c.canonical_id,
            e.c.entity_type,
            e.c.version,
            e.c.attributes,
            e.c.provenance,
            e.c.updated_at,
        )
        .where(e.c.entity_type == entity_type, e.c.status == "active")
        .order_by(e.c.canonical_id)
    )
    return iter(conn.execute(stmt.execution_options(yield_per=5_000)))
