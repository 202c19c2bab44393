"""The review queue's two writers, the batch run's whole band and real-time
registration's pairs of one record, follow the same rules: a new pair is pending, a
decided pair is never touched, a pending or superseded pair queued again is pending
with the new values, a pending pair no longer queued is superseded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, insert, select

from mdm.store.db import make_engine
from mdm.store.models import MatchCandidate, SourceRecord, SourceSystem
from mdm.store.repositories import candidates as repo
from mdm.store.repositories.candidates import CandidateRow

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def engine(fresh_db_url: str) -> Iterator[Engine]:
    eng = make_engine(fresh_db_url)
    with eng.begin() as conn:
        system = conn.execute(
            insert(SourceSystem).values(name="a", trust={}).returning(SourceSystem.id)
        ).scalar_one()
        conn.execute(
            insert(SourceRecord),
            [
                {
                    "id": i,
                    "source_system_id": system,
                    "source_key": f"k{i}",
                    "entity_type": "citizen",
                    "current_version": 1,
                    "status": "active",
                    "first_seen_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(1, 6)
            ],
        )
    yield eng
    eng.dispose()


def _row(left: int, right: int, score: float = 0.5) -> CandidateRow:
    reason = repo.candidate_reason("model", None)
    return CandidateRow(left, right, score, 1.0, {"name": 1.0}, reason)


def _seed(engine: Engine) -> None:
    """(1,2) pending, (1,3) accepted, (1,4) superseded, (2,3) pending."""
    with engine.begin() as conn:
        for (left, right), status in {
            (1, 2): "pending",
            (1, 3): "accepted",
            (1, 4): "superseded",
            (2, 3): "pending",
        }.items():
            conn.execute(
                insert(MatchCandidate).values(
                    entity_type="citizen",
                    left_record_id=left,
                    right_record_id=right,
                    score=0.5,
                    match_weight=1.0,
                    weights={"name": 1.0},
                    reason="model",
                    status=status,
                    created_at=NOW,
                )
            )


def _queue(engine: Engine) -> dict[tuple[int, int], tuple[str, float]]:
    with engine.connect() as conn:
        return {
            (int(a), int(b)): (str(s), float(score))
            for a, b, s, score in conn.execute(
                select(
                    MatchCandidate.left_record_id,
                    MatchCandidate.right_record_id,
                    MatchCandidate.status,
                    MatchCandidate.score,
                )
            )
        }


EXPECTED = {
    (1, 2): ("pending", 0.9),  # refreshed
    (1, 3): ("accepted", 0.5),  # a steward's decision stands
    (1, 4): ("pending", 0.9),  # reopened
    (1, 5): ("pending", 0.9),  # new
    (2, 3): ("superseded", 0.5),  # no longer queued
}


def test_the_batch_band(engine: Engine) -> None:
    _seed(engine)
    queued = {(a, b): _row(a, b, 0.9) for a, b in [(1, 2), (1, 3), (1, 4), (1, 5)]}
    counts = repo.replace_review_band(engine, "citizen", queued, NOW)
    assert counts == {
        "new": 1,
        "kept_decided": 1,
        "updated": 1,
        "reopened": 1,
        "superseded": 1,
        "pending": 3,
    }
    assert _queue(engine) == EXPECTED
    again = repo.replace_review_band(engine, "citizen", queued, NOW)
    assert again == {"kept_decided": 1, "unchanged": 3, "superseded": 0, "pending": 3}


def test_one_records_pairs(engine: Engine) -> None:
    _seed(engine)
    rows = [_row(a, b, 0.9) for a, b in [(1, 2), (1, 3), (1, 4), (1, 5)]]
    with engine.begin() as conn:
        assert repo.supersede_pending(conn, 2, [(1, 2)]) == 1  # (2, 3)
        assert repo.upsert_candidates(conn, "citizen", rows, NOW) == 3
    assert _queue(engine) == EXPECTED


def test_reason_names_what_forbade_the_link() -> None:
    assert repo.candidate_reason("model", None) == "model"
    assert (
        repo.candidate_reason("rule:pid", "exclusive:pid")
        == "rule:pid; automatic link forbidden (exclusive:pid)"
    )
