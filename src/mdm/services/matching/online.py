"""One record at a time, the API's path.

:func:`match_one` decides for one record with the batch's model, the same term
frequencies and the same deterministic rules, without a Splink linker: candidates
come from one indexed query on ``blocking_keys``. :func:`add_record_features` keeps
the candidate index current when the API registers a record between batch runs.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, cast

from mdm.matching import (
    IncrementalMatcher,
    MatchingRules,
    MatchModel,
    ScoredCandidate,
    blocking_keys,
    build_features,
    decide_pair,
    exclusive_conflict,
    load_rules,
    worth_review,
)
from mdm.matching.features import FeatureValue
from mdm.matching.rules import default_rules_dir
from mdm.services.matching.common import METHOD_RANK, model_path, no_model
from mdm.services.matching.features import feature_signature, features_hash
from mdm.store.db import Connection, Session
from mdm.store.repositories import feature_index
from mdm.store.repositories import matching as match_repo


@dataclass(frozen=True, slots=True)
class CandidateExplanation:
    source_record_id: int
    entity_id: int | None
    canonical_id: str | None
    match_weight: float | None
    match_probability: float | None
    #: per comparison: level weight + term-frequency adjustment
    weights: dict[str, float]
    decision: str  # auto_link | review | none
    method: str
    forbidden: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class MatchDecision:
    """What :func:`match_one` decided. ``linked``: ``canonical_id`` is the entity the
    record belongs to; ``review``: a steward must decide among ``candidates``;
    ``created``: nothing matches, the record starts a new entity."""

    outcome: Literal["linked", "review", "created"]
    canonical_id: str | None = None
    entity_id: int | None = None
    method: str | None = None
    score: float | None = None
    match_weight: float | None = None
    candidates: tuple[CandidateExplanation, ...] = ()
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SqlCandidateSource:
    """:class:`mdm.matching.CandidateSource` over ``blocking_keys``: one indexed
    query returns the feature rows of every active record sharing a key."""

    def __init__(self, session: Session, entity_type: str) -> None:
        self.session = session
        self.entity_type = entity_type

    def candidates(self, keys: Sequence[str]) -> Iterable[Mapping[str, FeatureValue]]:
        if not keys:
            return []
        rows = feature_index.candidate_features(self.session, self.entity_type, keys)
        return [_decode(r) for r in rows]


def _decode(value: Any) -> dict[str, FeatureValue]:
    return cast(dict[str, FeatureValue], value if isinstance(value, dict) else json.loads(value))


# ------------------------------------------------------------- the model cache


@dataclass(frozen=True)
class _Loaded:
    key: tuple[Any, ...]
    model: MatchModel
    tf: Mapping[str, Mapping[Any, float]]


_cache: dict[tuple[str, str], _Loaded] = {}
_cache_lock = threading.Lock()


def _stat_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def loaded_model(
    session: Session | Connection, entity_type: str, rules_dir: Path | None = None
) -> tuple[MatchModel, Mapping[str, Mapping[Any, float]]]:
    """The model and term frequencies, cached per process.

    Reloaded when the model file, the rules file or the stored term frequencies
    (the hash the last completed batch run recorded) change; checking costs two
    ``stat`` calls and one indexed query.
    """
    directory = rules_dir or default_rules_dir()
    path = model_path(entity_type, directory)
    rules_file = directory / f"{entity_type}.yaml"
    if not path.exists():
        raise no_model(path, entity_type)
    key = (_stat_key(path), _stat_key(rules_file), match_repo.latest_tf_hash(session, entity_type))
    slot = (entity_type, str(directory))
    hit = _cache.get(slot)
    if hit is not None and hit.key == key:
        return hit.model, hit.tf
    with _cache_lock:
        rules = load_rules(entity_type, directory)
        model = MatchModel.load(path, rules)
        tf = feature_index.load_term_frequencies(session, entity_type)
        _cache[slot] = _Loaded(key, model, tf)
    return model, tf


def clear_cache() -> None:
    _cache.clear()


# ------------------------------------------------------------- one decision


def _entity_members(
    session: Session, entity_ids: Iterable[int]
) -> dict[int, list[dict[str, FeatureValue]]]:
    found = feature_index.entity_member_features(session, entity_ids)
    return {eid: [_decode(f) for f in rows] for eid, rows in found.items()}


def match_one(
    session: Session,
    entity_type: str,
    standardized: Mapping[str, Any],
    *,
    source_record_id: int | None = None,
    source_system: str = "api",
    rules_dir: Path | None = None,
) -> MatchDecision:
    """Decide where one standardized record belongs, reading only (no writes).

    An automatic link needs a candidate at auto-link strength (rule or model)
    whose whole target entity accepts the record: no exclusive-key clash (another
    personal ID) and no same-key conflict with any of its records, and no
    steward cannot-link between the record and any of them. Candidates in two
    different entities at auto-link strength would join them: that goes to review.
    A steward must-link to a linked record wins over everything.
    """
    model, tf = loaded_model(session, entity_type, rules_dir)
    rules = model.rules
    uid = str(source_record_id) if source_record_id is not None else "__new__"
    record = build_features(entity_type, uid, source_system, standardized)
    matcher = IncrementalMatcher(model, tf, SqlCandidateSource(session, entity_type))
    scored = matcher.match(record)
    must, cannot = (
        match_repo.steward_partners(session, source_record_id)
        if source_record_id is not None
        else (set(), set())
    )
    cand_ids = [int(c.unique_id) for c in scored]
    owners = match_repo.entities_of(session, [*cand_ids, *must, *cannot])
    for partner in sorted(must):
        if partner in owners:
            return MatchDecision(
                "linked",
                owners[partner][1],
                owners[partner][0],
                "steward",
                1.0,
                math.inf,
                (),
                "steward must-link",
            )
    forbidden_entities = {owners[p][0] for p in cannot if p in owners}

    auto = [c for c in scored if c.decision == "auto_link"]
    members = _entity_members(
        session, {owners[int(c.unique_id)][0] for c in auto if int(c.unique_id) in owners}
    )
    entity_block: dict[int, str | None] = {}
    for ent, rows in members.items():
        entity_block[ent] = _entity_refuses(rules, record, rows, ent in forbidden_entities)
    context = _Context(rules, record, owners, members, entity_block, forbidden_entities)
    explained, targets = _explain(context, scored)
    if len(targets) == 1:
        target, best = next(iter(targets.items()))
        return MatchDecision(
            "linked",
            owners[int(best.unique_id)][1],
            target,
            best.method,
            best.score.match_probability if best.score else 1.0,
            best.score.match_weight if best.score else None,
            tuple(explained),
        )
    if targets:
        return MatchDecision(
            "review",
            candidates=tuple(explained),
            reason=f"auto-link strength to {len(targets)} different entities",
        )
    if explained:
        return MatchDecision("review", candidates=tuple(explained), reason="review band")
    return MatchDecision("created")


@dataclass(frozen=True)
class _Context:
    """What :func:`match_one` knows of the record's candidates' entities."""

    rules: MatchingRules
    record: Mapping[str, FeatureValue]
    #: per candidate (and steward partner) record: its entity id and canonical ID
    owners: dict[int, tuple[int, str]]
    #: per entity an auto-link candidate belongs to: its records' feature rows
    members: dict[int, list[dict[str, FeatureValue]]]
    #: per such entity: why it may not take the record automatically, or ``None``
    entity_block: dict[int, str | None]
    forbidden_entities: set[int]


def _explain(
    ctx: _Context, scored: Sequence[ScoredCandidate]
) -> tuple[list[CandidateExplanation], dict[int, ScoredCandidate]]:
    """Every candidate worth showing, with its decision (an auto-link its entity
    refuses becomes review, or is dropped when nothing a clerk could have slipped
    explains it), and per entity that takes the record the strongest candidate."""
    explained: list[CandidateExplanation] = []
    targets: dict[int, ScoredCandidate] = {}
    for c in scored:
        owner = ctx.owners.get(int(c.unique_id))
        eid: int | None = owner[0] if owner else None
        cid: str | None = owner[1] if owner else None
        decision, forbidden = c.decision, c.forbidden
        if decision == "auto_link":
            why = ctx.entity_block.get(eid) if eid is not None else "candidate has no entity"
            if eid is not None and eid in ctx.forbidden_entities:
                why = "steward cannot-link"
            if why is not None:
                row = next(
                    (
                        r
                        for r in (ctx.members.get(eid, []) if eid is not None else [])
                        if str(r["unique_id"]) == c.unique_id
                    ),
                    None,
                )
                if row is not None and not worth_review(ctx.rules, why, ctx.record, row):
                    continue  # two people: no clerical slip explains what forbids it
                decision, forbidden = "review", why
            elif eid is not None:
                best = targets.get(eid)
                if best is None or _rank(c) > _rank(best):
                    targets[eid] = c
        if decision == "none":
            continue
        explained.append(
            CandidateExplanation(
                int(c.unique_id),
                eid,
                cid,
                c.score.match_weight if c.score else None,
                c.score.match_probability if c.score else None,
                dict(c.score.weights) if c.score else {},
                decision,
                c.method,
                forbidden,
            )
        )
    return explained, targets


def _rank(c: ScoredCandidate) -> tuple[int, float]:
    return (METHOD_RANK.get(c.method, 0), c.score.match_weight if c.score else math.inf)


def _entity_refuses(
    rules: MatchingRules,
    record: Mapping[str, FeatureValue],
    members: list[dict[str, FeatureValue]],
    steward_forbids: bool,
) -> str | None:
    """Why the whole entity may not take the record automatically (batch's cluster
    constraints, applied to every member), or ``None``."""
    if steward_forbids:
        return "steward cannot-link"
    for member in members:
        col = exclusive_conflict(rules, record, member)
        if col is not None:
            return col if ":" in col else f"exclusive:{col}"
        rule = decide_pair(rules, record, member)
        if rule is not None and rule.outcome == "conflict":
            return f"rule:{rule.rule}"
    return None


# ------------------------------------------------------------- the candidate index


def add_record_features(
    session: Session,
    entity_type: str,
    source_record_id: int,
    standardized: Mapping[str, Any],
    *,
    source_system: str,
    record_version: int = 1,
    rules_dir: Path | None = None,
    rules: MatchingRules | None = None,
) -> list[str]:
    """Put one record's feature row and blocking keys in the candidate index
    (replacing earlier ones), so the next :func:`match_one` finds it. Flushes in
    the caller's transaction; returns the keys. ``rules`` spares reading the rules
    file (e.g. the cached model's, see :func:`loaded_model`)."""
    rules = rules or load_rules(entity_type, rules_dir)
    feats = build_features(entity_type, str(source_record_id), source_system, standardized)
    keys = list(dict.fromkeys(blocking_keys(feats, rules)))
    feature_index.put_record_features(
        session,
        entity_type,
        source_record_id,
        record_version,
        features_hash(feats, keys),
        feature_signature(entity_type, rules),
        feats,
        keys,
    )
    return keys


def remove_record_features(session: Session, source_record_id: int) -> None:
    """Take a record out of the candidate index (withdrawn, or about to be replaced)."""
    feature_index.remove_record_features(session, source_record_id)
