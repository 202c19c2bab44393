"""Aggregate queries behind the source-quality page: one GROUP BY each, per source
system (``source_system_id``; ``None`` for a reject without a known source)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, case, func, or_, select, text, true, union_all

from mdm.store.tables import (
    candidates,
    conflicts,
    links,
    record_versions,
    records,
    rejects,
    systems,
)


def system_names(conn: Connection) -> dict[int, str]:
    return {int(i): n for i, n in conn.execute(select(systems.c.id, systems.c.name))}


def active_records(conn: Connection) -> list[tuple[Any, str, int]]:
    """(source system id, entity type, active records)."""
    return [
        (sid, etype, int(n))
        for sid, etype, n in conn.execute(
            select(records.c.source_system_id, records.c.entity_type, func.count())
            .where(records.c.status == "active")
            .group_by(records.c.source_system_id, records.c.entity_type)
        )
    ]


def reject_counts(conn: Connection) -> list[tuple[Any, int]]:
    return [
        (sid, int(n))
        for sid, n in conn.execute(
            select(rejects.c.source_system_id, func.count()).group_by(rejects.c.source_system_id)
        )
    ]


def reject_reasons(conn: Connection) -> list[tuple[int | None, str, int]]:
    """(source system id, reason code, reasons): every reason of every reject."""
    if conn.dialect.name == "postgresql":
        sql = (
            "SELECT r.source_system_id, COALESCE(e.value->>'code', '?'), count(*) "
            "FROM rejects r CROSS JOIN LATERAL jsonb_array_elements(r.reasons) AS e(value) "
            "GROUP BY 1, 2"
        )
    else:
        sql = (
            "SELECT r.source_system_id, COALESCE(json_extract(e.value, '$.code'), '?'), "
            "count(*) FROM rejects r, json_each(r.reasons) e GROUP BY 1, 2"
        )
    return [(s, str(c), int(n)) for s, c, n in conn.execute(text(sql))]


def duplicates(conn: Connection) -> list[tuple[Any, Any, Any, Any, Any]]:
    """Per source: (id, records sharing their entity with another record of the same
    source, records in an entity shared with another source, entities with several
    records all of this source, this source's share of the multi-source entities).

    In one pass: record counts per (entity, source), then with a window the number of
    sources of the entity, then sums per source."""
    member = (
        select(links.c.entity_id, records.c.source_system_id.label("sid"))
        .join(records, records.c.id == links.c.source_record_id)
        .where(links.c.active == true())
        .subquery("member")
    )
    per = (
        select(member.c.entity_id, member.c.sid, func.count().label("n"))
        .group_by(member.c.entity_id, member.c.sid)
        .subquery("per")
    )
    windowed = select(
        per.c.sid,
        per.c.n,
        func.count().over(partition_by=per.c.entity_id).label("sources"),
    ).subquery("windowed")
    return [
        (sid, w, a, single, shared)
        for sid, w, a, single, shared in conn.execute(
            select(
                windowed.c.sid,
                func.sum(case((windowed.c.n > 1, windowed.c.n), else_=0)),
                func.sum(case((windowed.c.sources > 1, windowed.c.n), else_=0)),
                # an entity with records from one source appears once, in that source's row
                func.sum(case((and_(windowed.c.sources == 1, windowed.c.n > 1), 1), else_=0)),
                # an entity shared by k sources appears in k rows: 1/k each counts it once
                func.sum(case((windowed.c.sources > 1, 1.0 / windowed.c.sources), else_=0.0)),
            ).group_by(windowed.c.sid)
        )
    ]


def conflicted_entities(conn: Connection) -> list[tuple[Any, int]]:
    """(source system id, entities with an unresolved conflict holding its records)."""
    return [
        (sid, int(n))
        for sid, n in conn.execute(
            select(records.c.source_system_id, func.count(func.distinct(conflicts.c.entity_id)))
            .select_from(conflicts)
            .join(
                links,
                and_(links.c.entity_id == conflicts.c.entity_id, links.c.active == true()),
            )
            .join(records, records.c.id == links.c.source_record_id)
            .group_by(records.c.source_system_id)
        )
    ]


def conflicts_by_attribute(conn: Connection) -> dict[Any, Any]:
    return dict(
        conn.execute(
            select(conflicts.c.attribute, func.count()).group_by(conflicts.c.attribute)
        ).all()
    )


def ambiguous_addresses(conn: Connection, fields: Sequence[str]) -> list[tuple[Any, int]]:
    """(source system id, active records whose current version has an address in one of
    ``fields`` marked ``ambiguous``)."""
    ambiguous = or_(
        *(record_versions.c.standardized[(f, "ambiguous")].as_boolean().is_(True) for f in fields)
    )
    return [
        (sid, int(n))
        for sid, n in conn.execute(
            select(records.c.source_system_id, func.count())
            .join(
                record_versions,
                and_(
                    record_versions.c.source_record_id == records.c.id,
                    record_versions.c.version == records.c.current_version,
                ),
            )
            .where(records.c.status == "active", ambiguous)
            .group_by(records.c.source_system_id)
        )
    ]


def pending_review(conn: Connection) -> list[tuple[Any, int]]:
    """(source system id, pending match candidates with a record of it on either side)."""
    sides = union_all(
        select(candidates.c.id, candidates.c.left_record_id.label("rid")).where(
            candidates.c.status == "pending"
        ),
        select(candidates.c.id, candidates.c.right_record_id.label("rid")).where(
            candidates.c.status == "pending"
        ),
    ).subquery("sides")
    return [
        (sid, int(n))
        for sid, n in conn.execute(
            select(records.c.source_system_id, func.count(func.distinct(sides.c.id)))
            .join(records, records.c.id == sides.c.rid)
            .group_by(records.c.source_system_id)
        )
    ]
