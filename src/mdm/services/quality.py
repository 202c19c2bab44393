"""Source quality: where a migration is stuck, per source system.

Every figure is one aggregate query (GROUP BY in the database), never a Python loop
over rows, so the page costs the same on a thousand records or fifty million:

* records: active source records per source system and entity type;
* rejects by reason: the ``code`` of each reason of each reject (one reject can
  carry several reasons);
* duplicates: records of the source that share their entity with another record of
  the *same* source (within) or with a record of *another* source (across);
* conflicts: entities holding a record of the source whose golden record has an
  unresolved conflict (``entity_conflicts``);
* ambiguous addresses: current versions with an address whose former commune was
  split (``ambiguous: true``);
* pending review: match candidates waiting for a steward that involve the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, case, func, or_, select, text, true, union_all
from sqlalchemy.orm import Session

from mdm.store.models import (
    EntityConflict,
    Link,
    MatchCandidate,
    Reject,
    SourceRecord,
    SourceRecordVersion,
    SourceSystem,
)

records = cast(Table, SourceRecord.__table__)
versions = cast(Table, SourceRecordVersion.__table__)
systems = cast(Table, SourceSystem.__table__)
rejects = cast(Table, Reject.__table__)
links = cast(Table, Link.__table__)
conflicts = cast(Table, EntityConflict.__table__)
cands = cast(Table, MatchCandidate.__table__)

# Address attributes of each standard, where a split former commune shows.
ADDRESS_FIELDS = ("permanent_address", "current_address", "place_of_birth", "hometown", "address")


@dataclass
class SourceQuality:
    source_system: str
    records: dict[str, int] = field(default_factory=dict)  # entity type -> active records
    rejects: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    duplicates_within: int = 0  # records
    duplicates_across: int = 0  # records
    conflicted_entities: int = 0
    ambiguous_addresses: int = 0
    pending_review: int = 0

    @property
    def total_records(self) -> int:
        return sum(self.records.values())

    @property
    def reject_rate(self) -> float:
        seen = self.total_records + self.rejects
        return self.rejects / seen if seen else 0.0


@dataclass
class QualityReport:
    sources: list[SourceQuality]
    entities_multi_record_one_source: int = 0
    entities_multi_record_many_sources: int = 0
    conflicts_by_attribute: dict[str, int] = field(default_factory=dict)


def _reject_reasons(conn: Connection) -> list[tuple[int | None, str, int]]:
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


def source_quality(session: Session) -> QualityReport:
    conn = session.connection()
    names = {int(i): n for i, n in conn.execute(select(systems.c.id, systems.c.name))}
    by_id: dict[int, SourceQuality] = {i: SourceQuality(n) for i, n in names.items()}
    unknown = SourceQuality("?")

    def get(sid: Any) -> SourceQuality:
        return by_id.get(int(sid), unknown) if sid is not None else unknown

    for sid, etype, n in conn.execute(
        select(records.c.source_system_id, records.c.entity_type, func.count())
        .where(records.c.status == "active")
        .group_by(records.c.source_system_id, records.c.entity_type)
    ):
        get(sid).records[etype] = int(n)
    for sid, n in conn.execute(
        select(rejects.c.source_system_id, func.count()).group_by(rejects.c.source_system_id)
    ):
        get(sid).rejects = int(n)
    for sid, code, n in _reject_reasons(conn):
        get(sid).rejects_by_reason[code] = n

    # Duplicates, in one pass: record counts per (entity, source), then with a window
    # the number of sources of the entity, then sums per source.
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
    one, many = 0, 0.0
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
    ):
        get(sid).duplicates_within = int(w or 0)
        get(sid).duplicates_across = int(a or 0)
        one += int(single or 0)
        many += float(shared or 0)

    for sid, n in conn.execute(
        select(records.c.source_system_id, func.count(func.distinct(conflicts.c.entity_id)))
        .select_from(conflicts)
        .join(
            links,
            and_(links.c.entity_id == conflicts.c.entity_id, links.c.active == true()),
        )
        .join(records, records.c.id == links.c.source_record_id)
        .group_by(records.c.source_system_id)
    ):
        get(sid).conflicted_entities = int(n)
    by_attr: dict[str, int] = dict(
        conn.execute(
            select(conflicts.c.attribute, func.count()).group_by(conflicts.c.attribute)
        ).all()
    )

    ambiguous = or_(
        *(versions.c.standardized[(f, "ambiguous")].as_boolean().is_(True) for f in ADDRESS_FIELDS)
    )
    for sid, n in conn.execute(
        select(records.c.source_system_id, func.count())
        .join(
            versions,
            and_(
                versions.c.source_record_id == records.c.id,
                versions.c.version == records.c.current_version,
            ),
        )
        .where(records.c.status == "active", ambiguous)
        .group_by(records.c.source_system_id)
    ):
        get(sid).ambiguous_addresses = int(n)

    sides = union_all(
        select(cands.c.id, cands.c.left_record_id.label("rid")).where(cands.c.status == "pending"),
        select(cands.c.id, cands.c.right_record_id.label("rid")).where(cands.c.status == "pending"),
    ).subquery("sides")
    for sid, n in conn.execute(
        select(records.c.source_system_id, func.count(func.distinct(sides.c.id)))
        .join(records, records.c.id == sides.c.rid)
        .group_by(records.c.source_system_id)
    ):
        get(sid).pending_review = int(n)

    out = sorted(by_id.values(), key=lambda q: q.source_system)
    if unknown.rejects:
        out.append(unknown)
    return QualityReport(
        out,
        one,
        round(many),
        {str(k): int(v) for k, v in sorted(by_attr.items())},
    )
