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
from typing import Any

from mdm.store.db import Session
from mdm.store.repositories import quality as repo

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


def source_quality(session: Session) -> QualityReport:
    conn = session.connection()
    names = repo.system_names(conn)
    by_id: dict[int, SourceQuality] = {i: SourceQuality(n) for i, n in names.items()}
    unknown = SourceQuality("?")

    def get(sid: Any) -> SourceQuality:
        return by_id.get(int(sid), unknown) if sid is not None else unknown

    for sid, etype, n in repo.active_records(conn):
        get(sid).records[etype] = n
    for sid, n in repo.reject_counts(conn):
        get(sid).rejects = n
    for sid, code, n in repo.reject_reasons(conn):
        get(sid).rejects_by_reason[code] = n

    one, many = 0, 0.0
    for sid, w, a, single, shared in repo.duplicates(conn):
        get(sid).duplicates_within = int(w or 0)
        get(sid).duplicates_across = int(a or 0)
        one += int(single or 0)
        many += float(shared or 0)

    for sid, n in repo.conflicted_entities(conn):
        get(sid).conflicted_entities = n
    by_attr: dict[str, int] = repo.conflicts_by_attribute(conn)

    for sid, n in repo.ambiguous_addresses(conn, ADDRESS_FIELDS):
        get(sid).ambiguous_addresses = n

    for sid, n in repo.pending_review(conn):
        get(sid).pending_review = n

    out = sorted(by_id.values(), key=lambda q: q.source_system)
    if unknown.rejects:
        out.append(unknown)
    return QualityReport(
        out,
        one,
        round(many),
        {str(k): int(v) for k, v in sorted(by_attr.items())},
    )
