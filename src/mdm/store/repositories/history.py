"""Reads of an entity's past: its versions, and the merge events of the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from mdm.store.tables import entity_versions, outbox


def version_at(conn: Connection, entity_id: int, as_of: datetime | None) -> Any:
    """The entity's latest version (valid from ``as_of`` or before, if given)."""
    v = entity_versions
    stmt = select(v).where(v.c.entity_id == entity_id)
    if as_of is not None:
        stmt = stmt.where(v.c.valid_from <= as_of)
    return conn.execute(stmt.order_by(v.c.version.desc()).limit(1)).first()


def versions(conn: Connection, entity_id: int) -> list[Any]:
    """Every version of the entity, oldest first."""
    v = entity_versions
    return list(conn.execute(select(v).where(v.c.entity_id == entity_id).order_by(v.c.version)))


def merge_payloads(conn: Connection, entity_id: int) -> list[Any]:
    """The payloads of the entity's ``entity.merged`` events."""
    stmt = select(outbox.c.payload).where(
        outbox.c.entity_id == entity_id, outbox.c.event_type == "entity.merged"
    )
    return list(conn.execute(stmt).scalars())
