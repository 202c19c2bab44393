"""The review queue's reads and writes: candidates, reservations, steward decisions
and the review actions that record them (for undo)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, exists, func, insert, or_, select, true, update

from mdm.store.repositories.entities import chunks, one_of
from mdm.store.tables import (
    candidates,
    decisions,
    entities,
    links,
    records,
    review_actions,
    systems,
)


def queue_clauses(
    *,
    entity_type: str | None,
    source_system: str | None,
    min_score: float | None,
    max_score: float | None,
) -> list[Any]:
    """WHERE clauses on ``match_candidates`` for a queue filter."""
    out: list[Any] = []
    if entity_type:
        out.append(candidates.c.entity_type == entity_type)
    if min_score is not None:
        out.append(candidates.c.score >= min_score)
    if max_score is not None:
        out.append(candidates.c.score < max_score)
    if source_system:
        out.append(
            exists(
                select(records.c.id)
                .join(systems, systems.c.id == records.c.source_system_id)
                .where(
                    systems.c.name == source_system,
                    or_(
                        records.c.id == candidates.c.left_record_id,
                        records.c.id == candidates.c.right_record_id,
                    ),
                )
            )
        )
    return out


def _available(actor: str, now: datetime) -> Any:
    return and_(
        candidates.c.status == "pending",
        or_(
            candidates.c.reserved_until.is_(None),
            candidates.c.reserved_until < now,
            candidates.c.reserved_by == actor,
        ),
    )


def reserve_next(
    conn: Connection, actor: str, clauses: Sequence[Any], *, now: datetime, until: datetime
) -> int | None:
    """Reserve the next available candidate for ``actor`` until ``until`` (their
    current one first, then the highest score) in one statement, and release any other
    they hold; ``None`` when none is available."""
    pick = (
        select(candidates.c.id)
        .where(_available(actor, now), *clauses)
        .order_by(
            case((candidates.c.reserved_by == actor, 0), else_=1),
            candidates.c.score.desc(),
            candidates.c.id,
        )
        .limit(1)
    )
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    taken = conn.execute(
        update(candidates)
        .where(candidates.c.id == pick.scalar_subquery(), _available(actor, now))
        .values(reserved_by=actor, reserved_until=until)
        .returning(candidates.c.id)
    ).scalar()
    if taken is None:
        return None
    # One reservation per steward: release any other they still hold.
    conn.execute(
        update(candidates)
        .where(
            candidates.c.reserved_by == actor,
            candidates.c.id != taken,
            candidates.c.status == "pending",
        )
        .values(reserved_by=None, reserved_until=None)
    )
    return int(taken)


def count_pending(conn: Connection, clauses: Sequence[Any]) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(candidates)
            .where(candidates.c.status == "pending", *clauses)
        ).scalar_one()
    )


def pending_rows(
    conn: Connection, clauses: Sequence[Any], *, now: datetime, limit: int
) -> list[tuple[int, str, float, str, str, str, str, str | None]]:
    """(id, entity type, score, left system, left key, right system, right key,
    reserved by while the reservation holds) of the first ``limit`` pending
    candidates, highest score first."""
    lr, rr = records.alias("lr"), records.alias("rr")
    ls, rs = systems.alias("ls"), systems.alias("rs")
    stmt = (
        select(
            candidates.c.id,
            candidates.c.entity_type,
            candidates.c.score,
            ls.c.name,
            lr.c.source_key,
            rs.c.name,
            rr.c.source_key,
            case((candidates.c.reserved_until > now, candidates.c.reserved_by), else_=None),
        )
        .join(lr, lr.c.id == candidates.c.left_record_id)
        .join(ls, ls.c.id == lr.c.source_system_id)
        .join(rr, rr.c.id == candidates.c.right_record_id)
        .join(rs, rs.c.id == rr.c.source_system_id)
        .where(candidates.c.status == "pending", *clauses)
        .order_by(candidates.c.score.desc(), candidates.c.id)
        .limit(limit)
    )
    return [
        (int(i), t, float(s), a, b, c, d, who) for i, t, s, a, b, c, d, who in conn.execute(stmt)
    ]


def pending_by_type(conn: Connection) -> dict[str, int]:
    return dict(
        conn.execute(
            select(candidates.c.entity_type, func.count())
            .where(candidates.c.status == "pending")
            .group_by(candidates.c.entity_type)
        ).all()
    )


def system_names(conn: Connection) -> list[str]:
    return list(conn.execute(select(systems.c.name).order_by(systems.c.name)).scalars())


def entity_of(conn: Connection, record_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    """record id -> (entity id, canonical id) of its active link."""
    stmt = (
        select(links.c.source_record_id, entities.c.id, entities.c.canonical_id)
        .join(entities, entities.c.id == links.c.entity_id)
        .where(links.c.source_record_id.in_(list(record_ids)), links.c.active == true())
    )
    return {int(r): (int(e), c) for r, e, c in conn.execute(stmt)}


def candidate(conn: Connection, candidate_id: int, *, lock: bool = False) -> Any:
    """The candidate's row (``None`` if absent); ``lock`` takes a row lock on Postgres."""
    stmt = select(candidates).where(candidates.c.id == candidate_id)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return conn.execute(stmt).first()


def active_decisions(conn: Connection, record_ids: Iterable[int]) -> set[int]:
    """Ids of the active decisions that involve any of ``record_ids``."""
    ids = sorted(set(record_ids))
    if not ids:
        return set()
    out: set[int] = set()
    for batch in chunks(conn, ids):
        stmt = select(decisions.c.id).where(
            decisions.c.active == true(),
            or_(
                one_of(conn, decisions.c.left_record_id, batch),
                one_of(conn, decisions.c.right_record_id, batch),
            ),
        )
        out.update(int(i) for i in conn.execute(stmt).scalars())
    return out


def add_decision(
    conn: Connection,
    kind: str,
    left: int,
    right: int,
    *,
    candidate_id: int,
    reason: str,
    actor: str,
    now: datetime,
) -> None:
    conn.execute(
        insert(decisions).values(
            kind=kind,
            left_record_id=left,
            right_record_id=right,
            candidate_id=candidate_id,
            reason=reason,
            decided_by=actor,
            decided_at=now,
            active=True,
        )
    )


def set_decisions_active(conn: Connection, ids: Sequence[int], active: bool) -> None:
    conn.execute(update(decisions).where(decisions.c.id.in_(list(ids))).values(active=active))


def update_candidate(conn: Connection, candidate_id: int, **values: Any) -> None:
    conn.execute(update(candidates).where(candidates.c.id == candidate_id).values(**values))


def add_action(
    conn: Connection,
    candidate_id: int,
    actor: str,
    decision: str,
    effects: dict[str, Any],
    reason: str | None,
    now: datetime,
) -> int:
    return int(
        conn.execute(
            insert(review_actions)
            .values(
                candidate_id=candidate_id,
                steward=actor,
                decision=decision,
                effects=effects,
                reason=reason,
                created_at=now,
                undone_at=None,
            )
            .returning(review_actions.c.id)
        ).scalar_one()
    )


def last_action(conn: Connection, actor: str) -> Any:
    """The steward's last action not undone (the whole row), or ``None``."""
    return conn.execute(
        select(review_actions)
        .where(review_actions.c.steward == actor, review_actions.c.undone_at.is_(None))
        .order_by(review_actions.c.id.desc())
        .limit(1)
    ).first()


def mark_action_undone(conn: Connection, action_id: int, now: datetime) -> None:
    conn.execute(
        update(review_actions).where(review_actions.c.id == action_id).values(undone_at=now)
    )
