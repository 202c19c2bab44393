"""Helpers for service tests: source records written straight into the store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from mdm.store.models import SourceRecord, SourceRecordVersion, SourceSystem

T0 = datetime(2025, 3, 1, tzinfo=UTC)

MakeRecord = Callable[..., int]


@pytest.fixture
def make_record(session: Session) -> MakeRecord:
    """make_record(system, key, trust=0.5, day=0, issues=(), **standardized) -> record id."""
    return record_maker(session)


def record_maker(session: Session) -> MakeRecord:
    """The ``make_record`` fixture's function, for a session of the test's own."""
    systems: dict[str, int] = {}

    def _make(
        system: str,
        key: str,
        *,
        trust: float = 0.5,
        day: int = 0,
        issues: tuple[str, ...] = (),
        entity_type: str = "citizen",
        **std: Any,
    ) -> int:
        conn = session.connection()
        if system not in systems:
            found = conn.execute(
                select(SourceSystem.id).where(SourceSystem.name == system)
            ).scalar()
            systems[system] = (
                found
                or conn.execute(
                    insert(SourceSystem)
                    .values(name=system, trust={entity_type: {"default": trust}}, created_at=T0)
                    .returning(SourceSystem.id)
                ).scalar_one()
            )
        at = T0 + timedelta(days=day)
        rid = conn.execute(
            insert(SourceRecord)
            .values(
                source_system_id=systems[system],
                source_key=key,
                entity_type=entity_type,
                current_version=1,
                status="active",
                first_seen_at=at,
                updated_at=at,
            )
            .returning(SourceRecord.id)
        ).scalar_one()
        conn.execute(
            insert(SourceRecordVersion).values(
                source_record_id=rid,
                version=1,
                raw={},
                standardized=std,
                issues=[
                    {"field": "personal_id", "code": c, "severity": "warning", "message": c}
                    for c in issues
                ],
                content_hash=f"{system}/{key}",
                received_at=at,
            )
        )
        return int(rid)

    return _make


def count(session: Session, model: Any, *where: Any) -> int:
    return int(session.execute(select(func.count()).select_from(model).where(*where)).scalar_one())
