"""Seed data for the console's tests: a few citizens in entities, match candidates
written directly (no model training), and steward accounts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from mdm.services.accounts import create_steward
from mdm.services.identity import apply_partition
from mdm.store.models import (
    Entity,
    Link,
    MatchCandidate,
    SourceRecord,
    SourceRecordVersion,
    SourceSystem,
)

T0 = datetime(2025, 3, 1, tzinfo=UTC)
PASSWORD = "correct horse battery"

PEOPLE: dict[str, dict[str, Any]] = {
    # key: standardized values
    "a1": {
        "full_name": "Nguyễn Văn An",
        "date_of_birth": "1990-05-12",
        "personal_id": "001090000001",
    },
    "b1": {"full_name": "Nguyễn Văn Ân", "date_of_birth": "1990-05-12", "phone": "+84912000001"},
    "a2": {"full_name": "Trần Thị Bích", "date_of_birth": "1985-01-02", "sex": "female"},
    "b2": {"full_name": "Trần Thị Bích", "date_of_birth": "1985-02-01", "sex": "female"},
    "a3": {"full_name": "Lê Văn Cường", "date_of_birth": "1970", "phone": "+84913000003"},
    "b3": {"full_name": "Lê Văn Cường", "date_of_birth": "1970-07-07", "phone": "+84913000003"},
    "a4": {"full_name": "Phạm Minh Đức", "date_of_birth": "2001-11-30"},
    "b4": {"full_name": "Phạm Minh Đức", "date_of_birth": "2001-11-03"},
    "m1": {
        "full_name": "Hoàng Thu Hà",
        "date_of_birth": "1995-09-09",
        "personal_id": "001195000009",
    },
    "m2": {"full_name": "Hoàng Thu Hà", "date_of_birth": "1995-09-09"},
}


@dataclass
class Seeded:
    records: dict[str, int] = field(default_factory=dict)  # key -> source record id
    candidates: dict[str, int] = field(default_factory=dict)  # name -> candidate id

    def cid(self, session: Session, key: str) -> str:
        return str(
            session.execute(
                select(Entity.canonical_id)
                .join(Link, Link.entity_id == Entity.id)
                .where(Link.source_record_id == self.records[key], Link.active.is_(True))
            ).scalar_one()
        )


def add_record(session: Session, system_id: int, key: str, std: dict[str, Any]) -> int:
    rid = session.execute(
        insert(SourceRecord)
        .values(
            source_system_id=system_id,
            source_key=key.upper(),
            entity_type="citizen",
            current_version=1,
            status="active",
            first_seen_at=T0,
            updated_at=T0,
        )
        .returning(SourceRecord.id)
    ).scalar_one()
    session.execute(
        insert(SourceRecordVersion).values(
            source_record_id=rid,
            version=1,
            raw={},
            standardized=std,
            issues=[],
            content_hash=f"h/{key}",
            received_at=T0,
        )
    )
    return int(rid)


def seed(session: Session) -> Seeded:
    """Records from two sources, entities by ``apply_partition`` (``m1``+``m2`` and
    ``a2``+``b2`` together, the rest alone), candidates, and three stewards."""
    out = Seeded()
    systems = {}
    for name, trust in (("ha-nam-hotich", 0.6), ("national-portal", 0.9)):
        systems[name] = session.execute(
            insert(SourceSystem)
            .values(name=name, trust={"citizen": {"default": trust}}, created_at=T0)
            .returning(SourceSystem.id)
        ).scalar_one()
    for key, std in PEOPLE.items():
        system = "ha-nam-hotich" if key[0] in "am" and key != "m2" else "national-portal"
        out.records[key] = add_record(session, systems[system], key, std)
    r = out.records
    groups = [[r["m1"], r["m2"]], [r["a2"], r["b2"]]] + [
        [r[k]] for k in ("a1", "b1", "a3", "b3", "a4", "b4")
    ]
    apply_partition(session, "citizen", groups)
    weights = {"name": 6.5, "dob": 4.0, "personal_id": -1.5, "phone": 0.0}
    for name, left, right, score in (
        ("c1", "a1", "b1", 0.97),  # different entities
        ("c2", "a2", "b2", 0.95),  # already in one entity
        ("c3", "a3", "b3", 0.93),  # different entities
        ("c4", "a4", "b4", 0.85),  # different entities
    ):
        lo, hi = sorted((r[left], r[right]))
        out.candidates[name] = session.execute(
            insert(MatchCandidate)
            .values(
                entity_type="citizen",
                left_record_id=lo,
                right_record_id=hi,
                score=score,
                match_weight=sum(weights.values()) - 3.0,
                weights=weights,
                reason="model",
                status="pending",
                created_at=T0 + timedelta(seconds=1),
            )
            .returning(MatchCandidate.id)
        ).scalar_one()
    for username, role in (("lan", "senior"), ("minh", "reviewer"), ("root", "admin")):
        create_steward(session, username, role, PASSWORD, display_name=username.title())
    session.flush()
    return out
