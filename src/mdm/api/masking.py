"""Field masking for clients without the ``<type>:pii`` scope.

* personal identifiers (citizen ``personal_id`` / ``old_id_number``, organization
  ``legal_representative_id``, dossier ``applicant_id``) keep their last four
  characters behind a fixed ``********`` (fixed, so the length does not tell a
  9-digit CMND from a 12-digit personal ID);
* ``phone`` and ``email`` are withheld (the key is absent);
* ``date_of_birth`` is reduced to its year.

Every response that carries attributes lists what was done in ``masked`` (the field
names only), so a client can tell "withheld" from "unknown".
"""

from __future__ import annotations

from typing import Any, Final

MASK: Final = "********"

ID_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "citizen": ("personal_id", "old_id_number"),
    "organization": ("legal_representative_id",),
    "dossier": ("applicant_id",),
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


def mask_id(value: Any) -> str:
    text = str(value)
    return MASK + text[-4:] if len(text) > 4 else MASK


def mask_attributes(
    entity_type: str, attributes: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """A masked copy of ``attributes`` and the names of the fields masked."""
    out = dict(attributes)
    masked: list[str] = []
    for name in ID_FIELDS.get(entity_type, ()):
        value = out.get(name)
        if value is not None:
            out[name] = mask_id(value)
            masked.append(name)
    for name in WITHHELD_FIELDS.get(entity_type, ()):
        if out.pop(name, None) is not None:
            masked.append(name)
    for name in YEAR_ONLY_FIELDS.get(entity_type, ()):
        value = out.get(name)
        if value is not None:
            out[name] = str(value)[:4]
            masked.append(name)
    return out, masked


def mask_provenance(entity_type: str, provenance: dict[str, Any]) -> dict[str, Any]:
    """Provenance may quote candidate values (a conflict lists each value and its
    sources): those are masked like the attribute, withheld attributes' entries dropped."""
    ids = ID_FIELDS.get(entity_type, ())
    withheld = WITHHELD_FIELDS.get(entity_type, ())
    year_only = YEAR_ONLY_FIELDS.get(entity_type, ())
    out: dict[str, Any] = {}
    for name, entry in provenance.items():
        if name in withheld:
            continue
        if (name in ids or name in year_only) and isinstance(entry, dict):
            entry = dict(entry)
            candidates = entry.get("candidates")
            if isinstance(candidates, list):
                entry["candidates"] = [
                    {**c, "value": _masked_value(name in ids, c.get("value"))}
                    if isinstance(c, dict)
                    else c
                    for c in candidates
                ]
        out[name] = entry
    return out


def _masked_value(is_id: bool, value: Any) -> Any:
    if value is None:
        return None
    return mask_id(value) if is_id else str(value)[:4]
