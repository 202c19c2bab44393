"""Search for the console: by canonical ID, by (source system, source key), or by
attributes with the API's probabilistic search (the same standardization, blocking
keys, trained model and term frequencies as ``POST /v1/{type}/search`` and
:func:`mdm.services.matching.match_one`). Stewards see unmasked values: the console
is the registry's own staff tool, and every search is audited."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mdm.exceptions import ConfigError
from mdm.matching import IncrementalMatcher, blocking_keys, build_features
from mdm.services.matching import SqlCandidateSource, loaded_model
from mdm.standardize import standardize_record
from mdm.store.db import Session
from mdm.store.repositories import search as repo


@dataclass
class Hit:
    canonical_id: str
    entity_type: str
    status: str
    match_probability: float
    match_weight: float
    attributes: dict[str, Any]


@dataclass
class SearchResult:
    hits: list[Hit] = field(default_factory=list)
    problem: str | None = None  # e.g. no trained model, or too few attributes


def by_source_key(session: Session, system: str, key: str) -> str | None:
    """The canonical ID a (source system, source key) is linked to, if any."""
    return repo.canonical_id_of(session.connection(), system.strip(), key.strip())


def by_attributes(
    session: Session, entity_type: str, attributes: dict[str, str], *, limit: int = 20
) -> SearchResult:
    raw: dict[str, Any] = {k: v for k, v in attributes.items() if v}
    birth_year = raw.pop("birth_year", None)
    if entity_type == "citizen" and birth_year and not raw.get("date_of_birth"):
        raw["date_of_birth"] = birth_year
    std = standardize_record(entity_type, raw)
    features = build_features(entity_type, "__query__", "console", std.standardized)
    try:
        model, tf = loaded_model(session, entity_type)
    except ConfigError:
        return SearchResult(problem="model_not_trained")
    if not blocking_keys(features, model.rules):
        return SearchResult(problem="no_blocking_key")
    matcher = IncrementalMatcher(model, tf, SqlCandidateSource(session, entity_type))
    scored = matcher.match(features)
    ids = [int(c.unique_id) for c in scored]
    owners: dict[int, Any] = {}
    if ids:
        owners = repo.owners(session.connection(), ids[:900])
    best: dict[str, Hit] = {}
    for cand in scored:
        owner = owners.get(int(cand.unique_id))
        if owner is None or cand.score is None or not math.isfinite(cand.score.match_weight):
            continue
        seen = best.get(owner.canonical_id)
        if seen is not None and seen.match_weight >= cand.score.match_weight:
            continue
        best[owner.canonical_id] = Hit(
            owner.canonical_id,
            owner.entity_type,
            owner.status,
            cand.score.match_probability,
            cand.score.match_weight,
            owner.attributes or {},
        )
    ranked = sorted(best.values(), key=lambda h: (-h.match_weight, h.canonical_id))
    return SearchResult(ranked[:limit])
