"""Probabilistic search by attributes, with the incremental matcher's model.

The query's raw attributes are standardized like any source record
(:func:`mdm.standardize.standardize_record`), turned into a feature row
(:func:`mdm.matching.build_features`) and scored against the records sharing a
blocking key with it (the same model, term frequencies and rules as
:func:`mdm.services.matching.match_one`). Candidates are grouped by the entity their
record is linked to (best pair per entity) and ranked by match weight.

Partial queries work when some prediction blocking rule is fully known: for
citizens a name plus a birth year (``surname_group + given_fold + birth_year``), a
personal ID, an old ID or a phone each give a key; a province alone does not, but it
adds to the address comparison. A query with no key finds nothing (and says so in
``issues``).

Convenience fields: ``birth_year`` (when no ``date_of_birth``) and ``province_code``
(when no address) are accepted in ``attributes``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from mdm.api.auth import Caller
from mdm.api.errors import JsonResponse, responses
from mdm.api.masking import explain, mask_attributes
from mdm.api.schemas import EntityType, SearchIn, SearchOut
from mdm.exceptions import ConfigError, MDMError
from mdm.matching import IncrementalMatcher, blocking_keys, build_features
from mdm.services.matching.online import loaded_model
from mdm.standardize import standardize_record
from mdm.store.models.match import blocking_key_hashes
from mdm.store.repositories import lookup

router = APIRouter(tags=["search"])


class ModelNotTrained(MDMError):
    """No trained matching model for this entity type; search is unavailable."""

    status_code = 503
    code = "model_not_trained"


_ADDRESS_FIELD = {"citizen": "permanent_address", "organization": "address"}


class _Prefetched:
    """A :class:`mdm.matching.CandidateSource` over rows already read (with their
    entities, by :func:`mdm.store.repositories.lookup.search_candidates`)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def candidates(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        return self.rows if keys else []


def _raw_attributes(entity_type: str, given: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    raw = {k: (str(v) if v is not None else None) for k, v in given.items()}
    birth_year = raw.pop("birth_year", None)
    province = raw.pop("province_code", None)
    if entity_type == "citizen" and birth_year and not raw.get("date_of_birth"):
        raw["date_of_birth"] = birth_year
    return raw, province


@router.post(
    "/{entity_type}/search",
    summary="Ranked candidate entities for raw attributes, with the match explanation",
    response_model=SearchOut,
    responses=responses(400, 503, r503="No trained model, or the database is unavailable"),
)
def search(
    request: Request,
    principal: Caller,
    entity_type: Annotated[EntityType, Path(description="citizen, organization or dossier")],
    body: SearchIn,
) -> JsonResponse:
    principal.require(entity_type, "search")
    pii = principal.pii(entity_type)
    raw, province = _raw_attributes(entity_type, body.attributes)
    result = standardize_record(entity_type, raw)
    issues = [
        {"field": i.field, "code": i.code, "severity": str(i.severity), "message": i.message}
        for i in result.issues
        # a search is no record: a missing name is not an error here
        if i.code != "name_empty"
    ]
    features = build_features(entity_type, "__query__", "api", result.standardized)
    if province and features.get("province_code") is None and entity_type in _ADDRESS_FIELD:
        features["province_code"] = province.strip()
    with principal.engine.connect() as conn:
        try:
            rules_dir = getattr(request.app.state, "mdm_rules_dir", None)
            model, tf = loaded_model(conn, entity_type, rules_dir)
        except ConfigError as exc:
            raise ModelNotTrained(
                f"search needs a trained {entity_type} model: run `mdm match train --entity "
                f"{entity_type}` and `mdm match run --entity {entity_type}` ({exc.detail})"
            ) from exc
        keys = blocking_keys(features, model.rules)
        if not keys:
            issues.append(
                {
                    "field": "",
                    "code": "no_blocking_key",
                    "severity": "warning",
                    "message": "too few attributes to find candidates: give e.g. a name and "
                    "a birth year, or an identifier",
                }
            )
        found = lookup.search_candidates(conn, entity_type, blocking_key_hashes(entity_type, keys))
    # One statement brought the candidates and their entities; the matcher scores
    # exactly those (the same rows its SQL source would have fetched for these keys).
    owners = {c.record_id: c.owner for c in found if c.owner is not None}
    matcher = IncrementalMatcher(model, tf, _Prefetched([c.features for c in found]))
    scored = matcher.match(features)
    best: dict[str, dict[str, Any]] = {}
    for cand in scored:
        owner = owners.get(int(cand.unique_id))
        if owner is None or cand.score is None:
            continue
        weight = cand.score.match_weight
        if not math.isfinite(weight) or cand.score.match_probability < body.min_probability:
            continue
        seen = best.get(owner.canonical_id)
        if seen is not None and seen["_rank"] >= weight:
            continue
        attributes, masked = (
            (owner.attributes, []) if pii else mask_attributes(entity_type, owner.attributes)
        )
        shown = explain(
            entity_type,
            cand.score.match_probability,
            weight,
            cand.score.weights,
            pii=pii,
        )
        best[owner.canonical_id] = {
            "canonical_id": owner.canonical_id,
            "entity_type": owner.entity_type,
            "status": owner.status,
            "match_probability": shown.match_probability,
            "match_weight": shown.match_weight,
            "decision": cand.decision,
            "weights": shown.weights,
            "attributes": attributes,
            "masked": masked,
            "_rank": weight,
        }
    ranked = sorted(best.values(), key=lambda c: (-c["_rank"], c["canonical_id"]))
    ranked = ranked[: body.limit]
    for c in ranked:
        del c["_rank"]
    principal.audit(
        "entity.search",
        [c["canonical_id"] for c in ranked],
        entity_type=entity_type,
        fields=sorted(k for k, v in body.attributes.items() if v is not None),
    )
    return JsonResponse({"entity_type": entity_type, "candidates": ranked, "issues": issues})
