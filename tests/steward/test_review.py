"""Review decisions, reservations and undo (service level, both backends)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mdm.exceptions import Conflict
from mdm.services import review
from mdm.services.audit import verify_chain
from mdm.services.history import get_entity
from mdm.store.models import (
    AuditLog,
    MatchCandidate,
    OutboxEvent,
    Redirect,
    ReviewAction,
    StewardDecision,
)
from tests.steward.seed import Seeded

LAN = "steward:lan"
MINH = "steward:minh"


def _status(session: Session, cid: int) -> str:
    return str(
        session.execute(select(MatchCandidate.status).where(MatchCandidate.id == cid)).scalar_one()
    )


def _events(session: Session, canonical_id: str) -> list[str]:
    return list(
        session.execute(
            select(OutboxEvent.event_type)
            .where(OutboxEvent.canonical_id == canonical_id)
            .order_by(OutboxEvent.position)
        ).scalars()
    )


def _decisions(session: Session, seeded: Seeded, a: str, b: str) -> list[tuple[str, bool]]:
    lo, hi = sorted((seeded.records[a], seeded.records[b]))
    return [
        (k, bool(act))
        for k, act in session.execute(
            select(StewardDecision.kind, StewardDecision.active)
            .where(StewardDecision.left_record_id == lo, StewardDecision.right_record_id == hi)
            .order_by(StewardDecision.id)
        )
    ]


def test_two_stewards_never_hold_the_same_candidate(session: Session, seeded: Seeded) -> None:
    first = review.take_next(session, LAN)
    second = review.take_next(session, MINH)
    assert first == seeded.candidates["c1"]  # highest score first
    assert second is not None and second != first
    # taking again returns the candidate one already holds
    assert review.take_next(session, LAN) == first
    # a candidate reserved by someone else cannot be decided
    with pytest.raises(Conflict):
        review.decide(session, first, "same", actor=MINH)
    # filters: only the low band is left for a third steward
    low = review.take_next(session, "steward:x", review.QueueFilter(max_score=0.9))
    assert low == seeded.candidates["c4"]
    assert review.take_next(session, "steward:y", review.QueueFilter(max_score=0.9)) is None


def test_same_merges_at_once_and_undo_restores(session: Session, seeded: Seeded) -> None:
    ca, cb = seeded.cid(session, "a1"), seeded.cid(session, "b1")
    c1 = seeded.candidates["c1"]
    review.take_next(session, LAN)
    result = review.decide(session, c1, "same", actor=LAN)
    assert result.status == "accepted" and _status(session, c1) == "accepted"
    merged = result.effects["merge"]
    assert {merged["survivor"], merged["loser"]} == {ca, cb}
    assert seeded.cid(session, "a1") == seeded.cid(session, "b1") == merged["survivor"]
    assert get_entity(session, merged["loser"]).canonical_id == merged["survivor"]
    assert ("must_link", True) in _decisions(session, seeded, "a1", "b1")
    assert _events(session, merged["loser"])[-1] == "entity.merged"
    with pytest.raises(Conflict):  # decided: not decidable twice
        review.decide(session, c1, "not_same", actor=LAN)

    assert review.undo_last(session, LAN) == c1
    assert _status(session, c1) == "pending"
    assert seeded.cid(session, "a1") == ca and seeded.cid(session, "b1") == cb
    assert session.execute(select(Redirect)).first() is None
    assert all(not active for _k, active in _decisions(session, seeded, "a1", "b1"))
    assert _events(session, merged["loser"])[-1] == "entity.unmerged"
    undone = session.execute(select(ReviewAction.undone_at)).scalar_one()
    assert undone is not None
    # the pair can be decided again, the other way
    review.decide(session, c1, "not_same", actor=LAN)
    assert _decisions(session, seeded, "a1", "b1")[-1] == ("cannot_link", True)
    with pytest.raises(review.NothingToUndo):
        review.undo_last(session, MINH)


def test_not_same_splits_one_entity_and_undo_joins_it_back(
    session: Session, seeded: Seeded
) -> None:
    c2 = seeded.candidates["c2"]
    together = seeded.cid(session, "a2")
    assert seeded.cid(session, "b2") == together
    result = review.decide(session, c2, "not_same", actor=LAN)
    split = result.effects["split"]
    assert split["from"] == together and seeded.cid(session, "a2") != seeded.cid(session, "b2")
    assert ("cannot_link", True) in _decisions(session, seeded, "a2", "b2")
    assert "entity.unmerged" in _events(session, together)

    review.undo_last(session, LAN)
    assert seeded.cid(session, "a2") == seeded.cid(session, "b2") == together
    assert _status(session, c2) == "pending"
    assert all(not active for _k, active in _decisions(session, seeded, "a2", "b2"))


def test_skip_and_audit_chain(session: Session, seeded: Seeded) -> None:
    c3 = seeded.candidates["c3"]
    review.decide(session, c3, "skip", actor=LAN)
    assert _status(session, c3) == "skipped"
    review.undo_last(session, LAN)
    assert _status(session, c3) == "pending"
    rows: list[Any] = list(
        session.execute(select(AuditLog.actor, AuditLog.action).order_by(AuditLog.id)).all()
    )
    assert (LAN, "review.skip") in rows and (LAN, "review.undo") in rows
    assert verify_chain(session.connection()).ok


def test_candidate_view_highlights_differences(session: Session, seeded: Seeded) -> None:
    view = review.candidate_view(session, seeded.candidates["c1"])
    states = {f.name: f.state for f in view.fields}
    assert states["full_name"] == "differs"
    assert states["date_of_birth"] == "same"
    assert states["personal_id"] == "one_missing"
    assert view.prior_weight == pytest.approx(view.match_weight - sum(view.weights.values()))


def test_a_later_automatic_run_obeys_the_decisions(session: Session, seeded: Seeded) -> None:
    from mdm.services.identity import apply_partition

    review.decide(session, seeded.candidates["c2"], "not_same", actor=LAN)  # splits a2 / b2
    review.decide(session, seeded.candidates["c3"], "same", actor=LAN)  # merges a3 + b3
    r = seeded.records
    # a matching run that wants the opposite of both decisions
    apply_partition(
        session,
        "citizen",
        [[r["a2"], r["b2"]], [r["a3"]], [r["b3"]], [r["m1"], r["m2"]]]
        + [[r[k]] for k in ("a1", "b1", "a4", "b4")],
    )
    assert seeded.cid(session, "a2") != seeded.cid(session, "b2")
    assert seeded.cid(session, "a3") == seeded.cid(session, "b3")
