"""The review queue, ``match_candidates``: every write to it by matching (the batch
run's whole review band, real-time registration's pairs of one record) and the
queue's rules, stated once:

* a pair not queued yet is inserted ``pending``;
* a pair a steward decided (accepted, rejected, skipped) is never touched: a
  steward's work stands;
* a ``pending`` or ``superseded`` pair queued again is refreshed and ``pending``;
* a ``pending`` pair its records no longer put in the review band becomes
  ``superseded``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, func, insert, or_, select, update

from mdm.store.tables import candidates

DECIDED = ("accepted", "rejected", "skipped")
WRITE_BATCH = 5_000
_IN_BATCH = 900  # bound-parameter lists stay far below SQLite's limit


def _chunks(items: Sequence[Any], size: int = _IN_BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True, slots=True)
class CandidateRow:
    """One pair for the review queue (``left`` < ``right``), with what explains it."""

    left: int
    right: int
    score: float
    match_weight: float
    weights: dict[str, float]
    reason: str


def candidate_reason(method: str, forbidden: str | None) -> str:
    """A queued pair's ``reason``: how it was found, and what forbade linking it."""
    if forbidden:
        return f"{method}; automatic link forbidden ({forbidden})"
    return method


def queue_action(status: str | None) -> Literal["insert", "keep", "refresh"]:
    """What queueing a pair does, given its stored status (``None``: not stored)."""
    if status is None:
        return "insert"
    if status in DECIDED:
        return "keep"
    return "refresh"


def _new_row(entity_type: str, row: CandidateRow, now: datetime) -> dict[str, Any]:
    return {
        "entity_type": entity_type,
        "left_record_id": row.left,
        "right_record_id": row.right,
        "created_at": now,
        **_pending_values(row),
    }


def _pending_values(row: CandidateRow) -> dict[str, Any]:
    return {
        "score": row.score,
        "match_weight": row.match_weight,
        "weights": row.weights,
        "reason": row.reason,
        "status": "pending",
    }


def _refresh(conn: Connection, candidate_id: int, row: CandidateRow) -> None:
    conn.execute(
        update(candidates).where(candidates.c.id == candidate_id).values(**_pending_values(row))
    )


def _supersede(conn: Connection, candidate_ids: Sequence[int]) -> None:
    for part in _chunks(candidate_ids):
        conn.execute(
            update(candidates).where(candidates.c.id.in_(part)).values(status="superseded")
        )


# ------------------------------------------------------------ the batch run


def replace_review_band(
    engine: Engine,
    entity_type: str,
    queued: Mapping[tuple[int, int], CandidateRow],
    now: datetime,
) -> dict[str, int]:
    """Bring the type's queue to ``queued`` (keyed by ``(left, right)``), one
    transaction, writing only differences; returns counts of what happened."""
    counts: Counter[str] = Counter()
    with engine.begin() as conn:
        existing = {
            (int(r.left_record_id), int(r.right_record_id)): r
            for r in conn.execute(
                select(
                    candidates.c.id,
                    candidates.c.left_record_id,
                    candidates.c.right_record_id,
                    candidates.c.status,
                    candidates.c.score,
                    candidates.c.match_weight,
                    candidates.c.weights,
                    candidates.c.reason,
                ).where(candidates.c.entity_type == entity_type)
            )
        }
        new_rows: list[dict[str, Any]] = []
        for key, q in queued.items():
            old = existing.get(key)
            action = queue_action(None if old is None else str(old.status))
            if action == "insert":
                new_rows.append(_new_row(entity_type, q, now))
                counts["new"] += 1
                continue
            if action == "keep":
                counts["kept_decided"] += 1
                continue
            assert old is not None
            if old.status == "pending" and _same(old, q):
                counts["unchanged"] += 1
                continue
            _refresh(conn, int(old.id), q)
            counts["reopened" if old.status == "superseded" else "updated"] += 1
        for part in _chunks(new_rows, WRITE_BATCH):
            conn.execute(insert(candidates), list(part))
        stale = [
            int(old.id)
            for key, old in existing.items()
            if old.status == "pending" and key not in queued
        ]
        _supersede(conn, stale)
        counts["superseded"] = len(stale)
    counts["pending"] = len(queued) - counts["kept_decided"]
    return dict(counts)


def _same(old: Any, q: CandidateRow) -> bool:
    return (
        math.isclose(old.score, q.score, rel_tol=0, abs_tol=1e-12)
        and math.isclose(old.match_weight, q.match_weight, rel_tol=0, abs_tol=1e-9)
        and old.reason == q.reason
        and _weights_equal(old.weights, q.weights)
    )


def _weights_equal(a: Any, b: Mapping[str, float]) -> bool:
    if not isinstance(a, dict) or set(a) != set(b):
        return False
    return all(math.isclose(float(a[k]), b[k], rel_tol=0, abs_tol=1e-9) for k in b)


# ------------------------------------------------------------ one record


def upsert_candidates(
    conn: Connection, entity_type: str, rows: Sequence[CandidateRow], now: datetime
) -> int:
    """Queue one record's review pairs (the caller's transaction). Returns how many
    pairs are pending afterwards."""
    pending = 0
    for row in rows:
        old = conn.execute(
            select(candidates.c.id, candidates.c.status).where(
                candidates.c.left_record_id == row.left, candidates.c.right_record_id == row.right
            )
        ).first()
        action = queue_action(None if old is None else str(old[1]))
        if action == "insert":
            conn.execute(insert(candidates).values(**_new_row(entity_type, row, now)))
        elif action == "keep":
            continue
        else:
            assert old is not None
            _refresh(conn, int(old[0]), row)
        pending += 1
    return pending


def supersede_pending(conn: Connection, record_id: int, keep: Iterable[tuple[int, int]]) -> int:
    """Pending pairs of this record that its current version no longer puts in the
    review band become ``superseded``; returns how many."""
    keep_set = set(keep)
    stale = [
        int(cid)
        for cid, a, b in conn.execute(
            select(
                candidates.c.id, candidates.c.left_record_id, candidates.c.right_record_id
            ).where(
                candidates.c.status == "pending",
                or_(
                    candidates.c.left_record_id == record_id,
                    candidates.c.right_record_id == record_id,
                ),
            )
        )
        if (int(a), int(b)) not in keep_set
    ]
    if stale:
        conn.execute(
            update(candidates).where(candidates.c.id.in_(stale)).values(status="superseded")
        )
    return len(stale)


def review_band_records(conn: Connection, entity_type: str) -> int:
    """Distinct records with a pending review candidate."""
    left = select(candidates.c.left_record_id.label("r")).where(
        candidates.c.entity_type == entity_type, candidates.c.status == "pending"
    )
    right = select(candidates.c.right_record_id.label("r")).where(
        candidates.c.entity_type == entity_type, candidates.c.status == "pending"
    )
    union = left.union(right).subquery()
    return int(conn.execute(select(func.count()).select_from(union)).scalar_one())
