"""Stewards' decisions on match candidates: the review queue, reservations, undo.

* :func:`take_next` reserves the next pending candidate for one steward atomically
  (one ``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING`` on
  Postgres; SQLite serializes writers, so the same statement is atomic there): two
  stewards never hold the same candidate. A reservation lapses after
  ``reserve_minutes``; a steward holds at most one at a time.
* :func:`decide` applies *same* / *not same* / *skip* at once, in the caller's
  transaction: *same* records a must-link and, when the two records sit in different
  entities, merges them (:func:`mdm.services.merge.merge_entities`); *not same*
  records a cannot-link and, when they sit in one entity, splits the right-hand
  record out (:func:`mdm.services.merge.unmerge`). Links, golden records, versions
  and outbox events change in that same transaction (DESIGN.md invariant 5).
* :func:`undo_last` reverses a steward's last decision exactly: the structural
  change is reversed (a merge by an unmerge that revives the absorbed entity, a
  split by a merge back), the decisions the action created are deactivated and those
  it deactivated are restored, and the candidate is pending again, reserved for the
  steward.

Every action is written to the audit log (actor type ``steward``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from mdm.domain.standards import STANDARDS
from mdm.exceptions import BadRequest, Conflict, NotFound
from mdm.services import audit, merge
from mdm.store.db import Connection, Session
from mdm.store.models import utcnow
from mdm.store.repositories import entities as repo
from mdm.store.repositories import lookup
from mdm.store.repositories import review as queue

DECISIONS: Final = ("same", "not_same", "skip")
_STATUS: Final = {"same": "accepted", "not_same": "rejected", "skip": "skipped"}


class NothingToUndo(NotFound):
    """The steward has no decision left to undo."""

    code = "nothing_to_undo"


@dataclass(frozen=True, slots=True)
class QueueFilter:
    entity_type: str | None = None
    source_system: str | None = None
    min_score: float | None = None
    max_score: float | None = None

    def clauses(self) -> list[Any]:
        return queue.queue_clauses(
            entity_type=self.entity_type,
            source_system=self.source_system,
            min_score=self.min_score,
            max_score=self.max_score,
        )


def take_next(
    session: Session, actor: str, flt: QueueFilter = QueueFilter(), *, reserve_minutes: float = 10
) -> int | None:
    """Reserve the next candidate for ``actor`` (their current one first, then the
    highest score); ``None`` when the filtered queue is empty or all reserved."""
    session.flush()
    conn = session.connection()
    now = utcnow()
    return queue.reserve_next(
        conn, actor, flt.clauses(), now=now, until=now + timedelta(minutes=reserve_minutes)
    )


@dataclass(frozen=True, slots=True)
class QueueRow:
    id: int
    entity_type: str
    score: float
    left: str
    right: str
    reserved_by: str | None


def pending_queue(
    session: Session, flt: QueueFilter = QueueFilter(), *, limit: int = 50
) -> tuple[int, list[QueueRow]]:
    """How many pending candidates match, and the first ``limit`` of them."""
    conn = session.connection()
    clauses = flt.clauses()
    total = queue.count_pending(conn, clauses)
    rows = [
        QueueRow(i, t, s, f"{a}/{b}", f"{c}/{d}", who)
        for i, t, s, a, b, c, d, who in queue.pending_rows(conn, clauses, now=utcnow(), limit=limit)
    ]
    return total, rows


def queue_facets(session: Session) -> dict[str, Any]:
    """Entity types and source systems that have pending candidates (for filters)."""
    conn = session.connection()
    by_type = queue.pending_by_type(conn)
    names = queue.system_names(conn)
    return {"entity_types": by_type, "source_systems": names}


# --- one candidate -------------------------------------------------------------------


@dataclass(slots=True)
class FieldRow:
    name: str
    left: Any
    right: Any
    state: str  # same | differs | one_missing | both_missing


@dataclass(slots=True)
class SideView:
    record_id: int
    system: str
    key: str
    canonical_id: str | None
    standardized: dict[str, Any]


@dataclass(slots=True)
class CandidateView:
    id: int
    entity_type: str
    status: str
    score: float
    match_weight: float
    weights: dict[str, float]
    prior_weight: float
    reason: str | None
    reserved_by: str | None
    reserved_until: datetime | None
    decided_by: str | None
    left: SideView
    right: SideView
    fields: list[FieldRow] = field(default_factory=list)

    @property
    def same_entity(self) -> bool:
        return self.left.canonical_id is not None and (
            self.left.canonical_id == self.right.canonical_id
        )


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        # Addresses: what the stewards compare is the place, not bookkeeping fields.
        return {k: v for k, v in value.items() if k not in ("candidates", "scheme_written")}
    return value


def _entity_of(conn: Connection, record_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    return queue.entity_of(conn, record_ids)


def candidate_view(session: Session, candidate_id: int) -> CandidateView:
    session.flush()
    conn = session.connection()
    row = queue.candidate(conn, candidate_id)
    if row is None:
        raise NotFound(f"no match candidate {candidate_id}", code="candidate_not_found")
    pair = [int(row.left_record_id), int(row.right_record_id)]
    by_id = {r.record_id: r for r in repo.record_rows(conn, pair, row.entity_type)}
    ents = _entity_of(conn, pair)
    sides = [
        SideView(
            rid,
            by_id[rid].system,
            by_id[rid].key,
            ents[rid][1] if rid in ents else None,
            by_id[rid].standardized,
        )
        for rid in pair
    ]
    weights = {str(k): float(v) for k, v in (row.weights or {}).items()}
    view = CandidateView(
        int(row.id),
        row.entity_type,
        row.status,
        float(row.score),
        float(row.match_weight),
        weights,
        float(row.match_weight) - sum(weights.values()),
        row.reason,
        row.reserved_by,
        row.reserved_until,
        row.decided_by,
        sides[0],
        sides[1],
    )
    order = list(STANDARDS[row.entity_type].model_fields)
    names = [n for n in order if n in sides[0].standardized or n in sides[1].standardized]
    names += sorted(
        (set(sides[0].standardized) | set(sides[1].standardized)) - set(names) - {"issues"}
    )
    for name in names:
        a, b = sides[0].standardized.get(name), sides[1].standardized.get(name)
        if a in (None, "", [], {}) and b in (None, "", [], {}):
            state = "both_missing"
        elif a in (None, "", [], {}) or b in (None, "", [], {}):
            state = "one_missing"
        else:
            state = "same" if _comparable(a) == _comparable(b) else "differs"
        view.fields.append(FieldRow(name, a, b, state))
    return view


# --- decisions -----------------------------------------------------------------------


def _active_decisions(conn: Connection, record_ids: Iterable[int]) -> set[int]:
    return queue.active_decisions(conn, record_ids)


def _lock_candidate(conn: Connection, candidate_id: int) -> Any:
    row = queue.candidate(conn, candidate_id, lock=True)
    if row is None:
        raise NotFound(f"no match candidate {candidate_id}", code="candidate_not_found")
    return row


def _audit(
    conn: Connection, actor: str, action: str, ids: Iterable[str], details: dict[str, Any]
) -> None:
    audit.append(
        conn,
        [audit.AuditEntry("steward", actor, action, entity_ids=sorted(set(ids)), details=details)],
    )


@dataclass(frozen=True, slots=True)
class DecisionResult:
    action_id: int
    candidate_id: int
    status: str
    effects: dict[str, Any]


def decide(
    session: Session,
    candidate_id: int,
    decision: str,
    *,
    actor: str,
    reason: str | None = None,
) -> DecisionResult:
    """Apply a steward's decision on a pending candidate (see the module docstring)."""
    if decision not in DECISIONS:
        raise BadRequest(f"unknown decision {decision!r}; expected one of {DECISIONS}")
    session.flush()
    conn = session.connection()
    now = utcnow()
    cand = _lock_candidate(conn, candidate_id)
    if cand.status != "pending":
        raise Conflict(
            f"candidate {candidate_id} was already decided ({cand.status}) by {cand.decided_by}",
            code="already_decided",
        )
    if (
        cand.reserved_by not in (None, actor)
        and cand.reserved_until is not None
        and cand.reserved_until > now
    ):
        raise Conflict(
            f"candidate {candidate_id} is reserved by {cand.reserved_by}", code="reserved"
        )
    left, right = int(cand.left_record_id), int(cand.right_record_id)
    ents = _entity_of(conn, [left, right])
    if left not in ents or right not in ents:
        raise Conflict("one of the two source records is no longer linked", code="record_unlinked")
    involved_entities = {ents[left][0], ents[right][0]}
    involved = [r for rs in repo.members(conn, sorted(involved_entities)).values() for r in rs]
    before = _active_decisions(conn, involved)
    effects: dict[str, Any] = {}
    canonical_ids = {ents[left][1], ents[right][1]}
    text = reason or f"review of candidate {candidate_id}"
    if decision in ("same", "not_same"):
        kind = "must_link" if decision == "same" else "cannot_link"
        opposite = "cannot_link" if decision == "same" else "must_link"
        repo.deactivate_decisions(conn, opposite, [left], [right])
        queue.add_decision(
            conn, kind, left, right, candidate_id=candidate_id, reason=text, actor=actor, now=now
        )
    if decision == "same" and ents[left][0] != ents[right][0]:
        sizes = {e: len(rs) for e, rs in repo.members(conn, sorted(involved_entities)).items()}
        # The survivor: the entity with more records (then the older one) keeps its ID.
        survivor, loser = sorted(involved_entities, key=lambda e: (-sizes[e], e))
        states = lookup.entity_states(conn, [survivor, loser])
        moved = repo.members(conn, [loser])[loser]
        merge.merge_entities(
            session,
            states[survivor].canonical_id,
            states[loser].canonical_id,
            actor=actor,
            reason=text,
        )
        effects["merge"] = {
            "survivor": states[survivor].canonical_id,
            "loser": states[loser].canonical_id,
            "records": moved,
        }
    elif decision == "not_same" and ents[left][0] == ents[right][0]:
        into = merge.unmerge(session, ents[left][1], [right], actor=actor, reason=text)
        effects["split"] = {"from": ents[left][1], "into": into, "records": [right]}
        canonical_ids.add(into)
    after = _active_decisions(conn, involved)
    effects["decisions_created"] = sorted(after - before)
    effects["decisions_deactivated"] = sorted(before - after)
    status = _STATUS[decision]
    queue.update_candidate(
        conn,
        candidate_id,
        status=status,
        decided_by=actor,
        decided_at=now,
        reserved_by=None,
        reserved_until=None,
    )
    action_id = queue.add_action(conn, candidate_id, actor, decision, effects, reason, now)
    _audit(
        conn,
        actor,
        f"review.{decision}",
        canonical_ids,
        {"candidate_id": candidate_id, "action_id": int(action_id), **effects},
    )
    return DecisionResult(int(action_id), candidate_id, status, effects)


def last_action(session: Session, actor: str) -> tuple[int, int, str] | None:
    """(action id, candidate id, decision) of the steward's last undoable decision."""
    row = queue.last_action(session.connection(), actor)
    return None if row is None else (int(row.id), int(row.candidate_id), str(row.decision))


def undo_last(session: Session, actor: str, *, reserve_minutes: float = 10) -> int:
    """Reverse the steward's last decision; returns its candidate's id (pending again
    and reserved for the steward). Refuses (409) when the entities involved changed
    since in a way that makes the reversal ambiguous."""
    session.flush()
    conn = session.connection()
    now = utcnow()
    row = queue.last_action(conn, actor)
    if row is None:
        raise NothingToUndo("nothing to undo")
    cand = _lock_candidate(conn, int(row.candidate_id))
    if cand.status != _STATUS[row.decision] or cand.decided_by != actor:
        raise Conflict("the candidate was decided again since; nothing to undo", code="stale_undo")
    effects: dict[str, Any] = dict(row.effects or {})
    pair = [int(cand.left_record_id), int(cand.right_record_id)]
    ents = _entity_of(conn, pair)
    involved_entities = sorted({e for e, _c in ents.values()})
    involved = [r for rs in repo.members(conn, involved_entities).values() for r in rs]
    before = _active_decisions(conn, involved)
    canonical_ids: set[str] = {c for _e, c in ents.values()}
    created = [int(i) for i in effects.get("decisions_created", [])]
    deactivated = [int(i) for i in effects.get("decisions_deactivated", [])]
    if created:
        queue.set_decisions_active(conn, created, False)
    if "merge" in effects:
        m = effects["merge"]
        restored = merge.unmerge(
            session, m["survivor"], m["records"], actor=actor, reason=f"undo: {row.id}"
        )
        canonical_ids |= {m["survivor"], m["loser"], restored}
        if restored != m["loser"]:
            raise Conflict(
                f"{m['loser']} could not be restored (the entities changed since)",
                code="stale_undo",
            )
    elif "split" in effects:
        s = effects["split"]
        merge.merge_entities(session, s["from"], s["into"], actor=actor, reason=f"undo: {row.id}")
        canonical_ids |= {s["from"], s["into"]}
    # The reversal's own bookkeeping decisions (cannot-links of the unmerge, the
    # must-link of the merge back) go too: the decisions are as before the action.
    after = _active_decisions(conn, involved)
    extra = sorted(after - before)
    if extra:
        queue.set_decisions_active(conn, extra, False)
    if deactivated:
        queue.set_decisions_active(conn, deactivated, True)
    queue.update_candidate(
        conn,
        int(cand.id),
        status="pending",
        decided_by=None,
        decided_at=None,
        reserved_by=actor,
        reserved_until=now + timedelta(minutes=reserve_minutes),
    )
    queue.mark_action_undone(conn, int(row.id), now)
    _audit(
        conn,
        actor,
        "review.undo",
        canonical_ids,
        {"candidate_id": int(cand.id), "action_id": int(row.id), "decision": row.decision},
    )
    return int(cand.id)


# --- entity-level corrections from the console (audited wrappers) --------------------


def steward_merge(
    session: Session, survivor_id: str, loser_id: str, *, actor: str, reason: str
) -> merge.MergeResult:
    if not reason.strip():
        raise BadRequest("give a reason for the merge")
    result = merge.merge_entities(session, survivor_id, loser_id, actor=actor, reason=reason)
    _audit(
        session.connection(),
        actor,
        "entity.merge",
        [result.survivor_id, result.loser_id],
        {"reason": reason, "records_moved": result.records_moved},
    )
    return result


def steward_split(
    session: Session, canonical_id: str, record_ids: Sequence[int], *, actor: str, reason: str
) -> str:
    if not reason.strip():
        raise BadRequest("give a reason for the split")
    into = merge.unmerge(session, canonical_id, record_ids, actor=actor, reason=reason)
    _audit(
        session.connection(),
        actor,
        "entity.unmerge",
        [canonical_id, into],
        {"reason": reason, "source_record_ids": sorted(int(r) for r in record_ids)},
    )
    return into


def steward_override(
    session: Session, canonical_id: str, attribute: str, value: Any, *, actor: str, reason: str
) -> int:
    if not reason.strip():
        raise BadRequest("give a reason for the override")
    version = merge.set_override(
        session, canonical_id, attribute, value, actor=actor, reason=reason
    )
    _audit(
        session.connection(),
        actor,
        "entity.override",
        [canonical_id],
        {"attribute": attribute, "reason": reason, "version": version},
    )
    return version
