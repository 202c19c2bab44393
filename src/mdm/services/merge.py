"""Merge and unmerge entities, and steward overrides: the stewards' corrections.

Each function is one unit of work for its caller's transaction: it writes the new
entity versions and their outbox events together (DESIGN.md invariant 5) and leaves
steward decisions behind so that no later automatic run undoes it (invariant 4):

* :func:`merge_entities` records a must-link between the two entities' records;
* :func:`unmerge` records cannot-links between the split-out records and the rest
  (and deactivates must-links between them);
* :func:`set_override` pins an attribute's value; survivorship always honours it.

Unmerge revives, when it can, the entity the split-out records came from: if most of
them were last linked to an entity that was merged into this one, that entity is
restored (its redirect removed, its ID active again), so agencies holding its ID are
right again; otherwise a new entity is created.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mdm.domain.canonical_id import parse_canonical_id
from mdm.domain.standards import STANDARDS
from mdm.exceptions import AlreadyMerged, BadRequest, Conflict, EntityNotFound
from mdm.services.identity import issue_canonical_ids
from mdm.services.resolve import NewEntity, Plan, apply_plans, golden_for
from mdm.store.db import Session
from mdm.store.models import utcnow
from mdm.store.repositories import entities as repo
from mdm.store.repositories import lookup
from mdm.survivorship import GoldenRecord, load_survivorship


@dataclass(frozen=True)
class MergeResult:
    survivor_id: str
    loser_id: str
    survivor_version: int
    records_moved: int


def _active(session: Session, canonical_id: str) -> lookup.CurrentEntity:
    _type, cid = parse_canonical_id(canonical_id)
    state = lookup.entity_by_canonical_id(session.connection(), cid)
    if state is None:
        raise EntityNotFound(f"no entity has the canonical ID {cid}")
    if state.status == "merged":
        target = lookup.resolve_canonical_id(session.connection(), cid)
        into = target.canonical_id if target is not None and target.id != state.id else "?"
        raise AlreadyMerged(f"{cid} has been merged into {into}")
    if state.status != "active":
        raise Conflict(f"{cid} is {state.status}", code="entity_not_active")
    return state


def _check_no_cannot_link(
    session: Session, entity_type: str, a: Sequence[int], b: Sequence[int]
) -> None:
    _must, cannot = repo.steward_pairs(session.connection(), entity_type)
    sa, sb = set(a), set(b)
    for x, y in cannot:
        if (x in sa and y in sb) or (x in sb and y in sa):
            raise Conflict(
                f"a steward decided that source records {x} and {y} are different: "
                "withdraw that cannot-link decision before merging",
                code="cannot_link",
            )


def preview_merge(session: Session, survivor_id: str, loser_id: str) -> GoldenRecord:
    """The golden record the merge would produce (survivor's overrides); no writes."""
    session.flush()
    s, lo = _active(session, survivor_id), _active(session, loser_id)
    if s.id == lo.id:
        raise BadRequest("an entity cannot be merged with itself")
    conn = session.connection()
    m = repo.members(conn, [s.id, lo.id])
    rules = load_survivorship(s.entity_type)
    return golden_for(conn, s.entity_type, {s.id: m[s.id] + m[lo.id]}, rules)[s.id]


def merge_entities(
    session: Session, survivor_id: str, loser_id: str, *, actor: str, reason: str
) -> MergeResult:
    """Merge ``loser_id`` into ``survivor_id``: the survivor keeps its ID, the loser
    redirects to it, and a must-link keeps them together in later matching runs."""
    session.flush()
    s, lo = _active(session, survivor_id), _active(session, loser_id)
    if s.id == lo.id:
        raise BadRequest("an entity cannot be merged with itself")
    if s.entity_type != lo.entity_type:
        raise BadRequest(f"cannot merge a {lo.entity_type} into a {s.entity_type}")
    conn = session.connection()
    now = utcnow()
    m = repo.members(conn, [s.id, lo.id])
    _check_no_cannot_link(session, s.entity_type, m[s.id], m[lo.id])
    moved = m[lo.id]
    repo.deactivate_links(conn, moved, now)
    repo.add_links(conn, [_link(r, s.id, actor, now) for r in moved])
    if m[s.id] and moved:
        repo.set_decisions(
            conn, "must_link", [(m[s.id][0], moved[0])], actor=actor, reason=reason, now=now
        )
    repo.add_redirect(conn, lo.id, s.id, reason, actor, now)
    plans = {
        lo.id: Plan(
            change="merged",
            status="merged",
            recompute=False,
            events=[("entity.merged", {"merged_into": s.canonical_id})],
        ),
        s.id: Plan(
            change="absorbed", force=True, events=[("entity.merged", {"absorbed": lo.canonical_id})]
        ),
    }
    apply_plans(conn, s.entity_type, plans, actor=actor, now=now)
    version = lookup.entity_states(conn, [s.id])[s.id].version
    return MergeResult(s.canonical_id, lo.canonical_id, version, len(moved))


def unmerge(
    session: Session,
    canonical_id: str,
    source_record_ids: Sequence[int],
    *,
    actor: str,
    reason: str,
) -> str:
    """Split ``source_record_ids`` out of the entity; returns the canonical ID of the
    entity that now holds them (a revived former entity, or a new one)."""
    session.flush()
    e = _active(session, canonical_id)
    conn = session.connection()
    now = utcnow()
    current = repo.members(conn, [e.id])[e.id]
    split = sorted({int(r) for r in source_record_ids})
    if not split:
        raise BadRequest("name at least one source record to split out")
    outside = sorted(set(split) - set(current))
    if outside:
        raise BadRequest(f"source records {outside} are not linked to {e.canonical_id}")
    remaining = sorted(set(current) - set(split))
    if not remaining:
        raise BadRequest("cannot split out every record of an entity")

    # Revive the entity the records came from, if it was merged into this one.
    prev = repo.previous_entity_of(conn, split, e.id)
    counts = Counter(prev[r] for r in split if r in prev)
    revive: lookup.CurrentEntity | None = None
    if counts:
        best = min(counts, key=lambda x: (-counts[x], x))
        candidate = lookup.entity_states(conn, [best])[best]
        if candidate.status == "merged":
            answering = lookup.resolve_canonical_id(conn, candidate.canonical_id)
            if answering is not None and answering.id == e.id:
                revive = candidate

    repo.deactivate_decisions(conn, "must_link", split, remaining)
    repo.set_decisions(
        conn,
        "cannot_link",
        [(a, b) for a in split for b in remaining],
        actor=actor,
        reason=reason,
        now=now,
    )
    repo.deactivate_links(conn, split, now)
    plans = {
        e.id: Plan(change="unmerged", force=True, events=[("entity.unmerged", {})]),
    }
    if revive is not None:
        repo.remove_redirect(conn, revive.id)
        repo.add_links(conn, [_link(r, revive.id, actor, now) for r in split])
        plans[e.id].events = [("entity.unmerged", {"split_into": revive.canonical_id})]
        plans[revive.id] = Plan(
            change="restored",
            force=True,
            events=[("entity.unmerged", {"split_from": e.canonical_id, "restored": True})],
        )
        apply_plans(conn, e.entity_type, plans, actor=actor, now=now)
        return revive.canonical_id

    refs = repo.record_refs(conn, split)
    cid = issue_canonical_ids(conn, e.entity_type, [min(refs.values())])[0]
    new_id = repo.new_entity_id(conn)
    plans[e.id].events = [("entity.unmerged", {"split_into": cid})]
    new = NewEntity(
        new_id,
        cid,
        split,
        [_link(r, new_id, actor, now) for r in split],
        change="unmerged",
        events=[("entity.created", {"split_from": e.canonical_id})],
    )
    apply_plans(conn, e.entity_type, plans, [new], actor=actor, now=now)
    return cid


def _link(record_id: int, entity_id: int, actor: str, now: Any) -> dict[str, Any]:
    return {
        "source_record_id": record_id,
        "entity_id": entity_id,
        "method": "steward",
        "score": None,
        "created_by": actor,
        "created_at": now,
        "active": True,
        "deactivated_at": None,
    }


def set_override(
    session: Session, canonical_id: str, attribute: str, value: Any, *, actor: str, reason: str
) -> int:
    """Pin ``attribute`` to ``value`` (JSON; ``None`` means "no value"); returns the
    entity's new version. Replaces an earlier override of the same attribute."""
    session.flush()
    e = _active(session, canonical_id)
    if attribute not in STANDARDS[e.entity_type].model_fields:
        raise BadRequest(f"{attribute!r} is not a {e.entity_type} attribute")
    conn = session.connection()
    now = utcnow()
    _clear(session, e.id, attribute, actor, now)
    repo.add_override(conn, e.id, attribute, value, reason=reason, actor=actor, now=now)
    return _reresolve(session, e, "override", actor, now)


def clear_override(
    session: Session, canonical_id: str, attribute: str, *, actor: str, reason: str
) -> int:
    """Remove the override of ``attribute``; survivorship chooses again."""
    session.flush()
    e = _active(session, canonical_id)
    now = utcnow()
    if not _clear(session, e.id, attribute, actor, now):
        raise EntityNotFound(
            f"{e.canonical_id} has no override of {attribute!r}", code="no_override"
        )
    return _reresolve(session, e, "override_cleared", actor, now)


def _clear(session: Session, entity_id: int, attribute: str, actor: str, now: Any) -> bool:
    return repo.clear_override(session.connection(), entity_id, attribute, actor=actor, now=now)


def _reresolve(session: Session, e: lookup.CurrentEntity, change: str, actor: str, now: Any) -> int:
    conn = session.connection()
    apply_plans(conn, e.entity_type, {e.id: Plan(change=change)}, actor=actor, now=now)
    return lookup.entity_states(conn, [e.id])[e.id].version
