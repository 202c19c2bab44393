"""The one masking rule, for every answer to a client without the ``<type>:pii`` scope.

Every read path that returns data about an entity builds its body through this
module: the golden record (current, ``as_of``, batch items), its history, search
candidates and their explanations, and the registration answer. The rule:

* personal identifiers (citizen ``personal_id`` / ``old_id_number``, organization
  ``legal_representative_id``, dossier ``applicant_id``, and an organization
  ``tax_code`` shaped like a 12-digit personal ID, which is what an individual's tax
  code is since July 2025) keep their last four characters behind a fixed
  ``********`` (fixed, so the length does not tell a 9-digit CMND from a 12-digit
  personal ID);
* ``phone`` and ``email`` are withheld (the key is absent), and so is their
  provenance;
* ``date_of_birth`` is reduced to its year;
* **source keys** are masked like an identifier wherever they appear (provenance
  ``source_records`` and conflict candidates): a source system may key its records by
  the personal ID (the national portal keys citizens by CCCD), so ``system/key``
  becomes ``system/********8792``. The system's name stays: it says where a value
  came from, which is what provenance is for;
* values quoted in provenance (conflict candidates) are masked like their attribute;
* match explanations keep only the comparisons of attributes the client may read
  (:data:`EXPLAINABLE`), and the total is coarsened (:func:`explain`): a per-
  comparison weight of a masked attribute would tell a right guess of a birth date
  (+12 bits) from a wrong one (-10 bits).

Every response that carries attributes lists what was done in ``masked`` (the field
names only), so a client can tell "withheld" from "unknown". The same rule applies to
every entity type (a dossier's or an organization's source keys are masked for a
client without that type's pii scope too): one rule, no per-route variants.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

MASK: Final = "********"

ID_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "citizen": ("personal_id", "old_id_number"),
    "organization": ("legal_representative_id",),
    "dossier": ("applicant_id",),
}
#: Fields masked like an identifier when their value has a personal ID's shape.
ID_SHAPED_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "citizen": (),
    "organization": ("tax_code",),
    "dossier": (),
}
WITHHELD_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "citizen": ("phone", "email"),
    "organization": (),
    "dossier": (),
}
YEAR_ONLY_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "citizen": ("date_of_birth",),
    "organization": (),
    "dossier": (),
}
#: Comparisons (matching_rules/<type>.yaml) whose weight a client without pii may see:
#: they compare only attributes it reads unmasked. An allow-list, so that a comparison
#: added later stays hidden until someone decides it reveals nothing.
EXPLAINABLE: Final[dict[str, frozenset[str]]] = {
    "citizen": frozenset({"name", "sex", "address", "ethnicity"}),
    "organization": frozenset({"name", "address", "legal_form", "founding"}),
    "dossier": frozenset({"dossier_code", "procedure", "submitted", "agency", "result_number"}),
}
#: Without pii, a match probability is given to two decimals and a match weight to
#: whole bits.
PROBABILITY_DECIMALS: Final = 2

_PERSONAL_ID_SHAPE = re.compile(r"^\d{12}$")


def mask_id(value: Any) -> str:
    text = str(value)
    return MASK + text[-4:] if len(text) > 4 else MASK


def mask_source_ref(ref: Any) -> Any:
    """``system/key`` with the key masked like an identifier."""
    if not isinstance(ref, str):
        return ref
    system, sep, key = ref.partition("/")
    return f"{system}/{mask_id(key)}" if sep else mask_id(ref)


@dataclass(frozen=True, slots=True)
class Masked:
    attributes: dict[str, Any]
    provenance: dict[str, Any]
    masked: list[str]


def _value_rule(entity_type: str, name: str, value: Any) -> str | None:
    """How one attribute's value is masked: ``id``, ``year``, ``withhold`` or None."""
    if name in ID_FIELDS.get(entity_type, ()):
        return "id"
    if name in WITHHELD_FIELDS.get(entity_type, ()):
        return "withhold"
    if name in YEAR_ONLY_FIELDS.get(entity_type, ()):
        return "year"
    if name in ID_SHAPED_FIELDS.get(entity_type, ()) and _PERSONAL_ID_SHAPE.match(str(value or "")):
        return "id"
    return None


def _mask_value(how: str, value: Any) -> Any:
    if value is None:
        return None
    return mask_id(value) if how == "id" else str(value)[:4]


def mask_attributes(
    entity_type: str, attributes: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """A masked copy of ``attributes`` and the names of the fields masked."""
    out: dict[str, Any] = {}
    masked: list[str] = []
    for name, value in attributes.items():
        how = _value_rule(entity_type, name, value) if value is not None else None
        if how is None:
            out[name] = value
        elif how == "withhold":
            masked.append(name)
        else:
            out[name] = _mask_value(how, value)
            masked.append(name)
    return out, masked


def _refs(refs: Any) -> Any:
    return [mask_source_ref(r) for r in refs] if isinstance(refs, list) else refs


def mask_provenance(
    entity_type: str, provenance: Mapping[str, Any], attributes: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Provenance names source records (``system/key``) and may quote candidate values
    (a conflict lists each value and its sources): keys are masked like identifiers,
    values like their attribute, withheld attributes' entries dropped. ``attributes``:
    the golden values, to decide value-shaped rules (an ID-shaped tax code)."""
    out: dict[str, Any] = {}
    for name, entry in provenance.items():
        value = (attributes or {}).get(name)
        how = _value_rule(entity_type, name, value)
        if how == "withhold":
            continue
        if not isinstance(entry, dict):
            out[name] = entry
            continue
        entry = dict(entry)
        if "source_records" in entry:
            entry["source_records"] = _refs(entry["source_records"])
        candidates = entry.get("candidates")
        if isinstance(candidates, list):
            masked_candidates = []
            for c in candidates:
                if not isinstance(c, dict):
                    masked_candidates.append(c)
                    continue
                c = dict(c)
                c_how = how or _value_rule(entity_type, name, c.get("value"))
                if c_how is not None:
                    c["value"] = _mask_value(c_how, c.get("value"))
                if "source_records" in c:
                    c["source_records"] = _refs(c["source_records"])
                masked_candidates.append(c)
            entry["candidates"] = masked_candidates
        out[name] = entry
    return out


def mask_entity(
    entity_type: str, attributes: Mapping[str, Any], provenance: Mapping[str, Any]
) -> Masked:
    """The golden record as a client without the type's pii scope sees it."""
    attrs, masked = mask_attributes(entity_type, attributes)
    return Masked(attrs, mask_provenance(entity_type, provenance, attributes), masked)


@dataclass(frozen=True, slots=True)
class Explanation:
    match_probability: float | None
    match_weight: float | None
    weights: dict[str, float]


def explain(
    entity_type: str,
    match_probability: float | None,
    match_weight: float | None,
    weights: Mapping[str, float],
    *,
    pii: bool,
) -> Explanation:
    """A match score as the client may see it. With pii: as computed (non-finite
    weights left out). Without: only the comparisons in :data:`EXPLAINABLE`, the
    probability to two decimals and the weight to whole bits."""
    finite = {k: float(v) for k, v in weights.items() if math.isfinite(v)}
    if pii:
        return Explanation(match_probability, match_weight, finite)
    allowed = EXPLAINABLE.get(entity_type, frozenset())
    return Explanation(
        None if match_probability is None else round(match_probability, PROBABILITY_DECIMALS),
        None
        if match_weight is None or not math.isfinite(match_weight)
        else float(round(match_weight)),
        {k: v for k, v in finite.items() if k in allowed},
    )
