"""Golden-record computation: one pure function of records, rules and overrides.

``build_golden(records, rules, overrides)`` depends on nothing else (no clock, no
database, no iteration order of its inputs): the same inputs give the same golden
record, byte for byte. That is DESIGN.md invariant 6, and why ``mdm resolve --rebuild``
can verify the store.

Per attribute:

1. a steward override wins (rule ``steward_override``), even over an empty value;
2. the linked records' non-empty values are grouped into candidates (equal values,
   compared as canonical JSON, are one candidate supported by several records);
3. one candidate only: rule ``unanimous``;
4. otherwise the attribute's strategies run in order, each keeping the candidates
   with its best score; the first that leaves one candidate is the rule recorded;
5. still tied after the chain: the candidate whose canonical JSON sorts first
   (rule ``tie_break``). Arbitrary, but deterministic and documented.

Strategies score a candidate by its supporting records: ``source_trust`` the highest
trust of a supporting source for the attribute (``trust[attr]``, else
``trust["default"]``); ``most_recent`` the latest ``observed_at`` (the stored time the
record's current version was received, never "now"); ``most_frequent`` the number of
supporting records; ``most_complete`` how much the value says (date parts, filled
fields of an address, length of a text); ``valid_over_flagged`` whether any
supporting record is free of the attribute's ``flagged_by`` issue codes.

Conflicts: for attributes with ``conflict: true``, two candidates supported by
unflagged records that are *incompatible* (different values; for partial dates, one
not a prefix of the other, so ``1990`` and ``1990-05-12`` agree) mark the attribute
``conflict: true`` with all candidates listed. The chain still picks a value (the
golden record must say something), but stewards see the disagreement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mdm.domain.canonical_json import canonical_json
from mdm.survivorship.rules import AttributeRule, SurvivorshipRules

_PARTIAL_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


@dataclass(frozen=True, slots=True)
class RecordInput:
    """One linked source record as survivorship sees it."""

    ref: str  # "source_system/source_key": stable across databases and rebuilds
    values: Mapping[str, Any]  # the standardized form
    trust: Mapping[str, float] = field(default_factory=dict)  # {attr | "default": trust}
    observed_at: datetime | None = None  # when its current version was received
    issue_codes: frozenset[str] = frozenset()


@dataclass(slots=True)
class GoldenRecord:
    attributes: dict[str, Any]
    provenance: dict[str, dict[str, Any]]

    @property
    def conflicts(self) -> dict[str, list[dict[str, Any]]]:
        return {
            attr: list(p.get("candidates", []))
            for attr, p in self.provenance.items()
            if p.get("conflict")
        }


@dataclass(slots=True)
class _Candidate:
    key: str
    value: Any
    records: list[RecordInput]


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def completeness(value: Any) -> int:
    """How much a value says: date parts, filled leaves of a structure, text length."""
    if isinstance(value, str):
        if _PARTIAL_DATE.match(value):
            return value.count("-") + 1
        return len(value)
    if isinstance(value, Mapping):
        return sum(completeness(v) > 0 for v in value.values() if v is not False)
    if isinstance(value, list | tuple):
        return len(value)
    return 0 if value is None else 1


def _compatible(a: Any, b: Any) -> bool:
    if (
        isinstance(a, str)
        and isinstance(b, str)
        and _PARTIAL_DATE.match(a)
        and _PARTIAL_DATE.match(b)
    ):
        return a.startswith(b) or b.startswith(a)
    return canonical_json(a) == canonical_json(b)


def _trust(record: RecordInput, attribute: str) -> float:
    t = record.trust.get(attribute, record.trust.get("default", 0.0))
    return float(t)


def _flagged(record: RecordInput, rule: AttributeRule) -> bool:
    return bool(rule.flagged_by) and not record.issue_codes.isdisjoint(rule.flagged_by)


def _score(strategy: str, cand: _Candidate, attribute: str, rule: AttributeRule) -> Any:
    if strategy == "source_trust":
        return max(_trust(r, attribute) for r in cand.records)
    if strategy == "most_recent":
        stamps = [r.observed_at.isoformat() for r in cand.records if r.observed_at is not None]
        return max(stamps, default="")
    if strategy == "most_frequent":
        return len(cand.records)
    if strategy == "most_complete":
        return completeness(cand.value)
    if strategy == "valid_over_flagged":
        return any(not _flagged(r, rule) for r in cand.records)
    raise ValueError(f"unknown strategy {strategy!r}")


def _refs(records: Iterable[RecordInput]) -> list[str]:
    return sorted({r.ref for r in records})


def _choose(
    attribute: str, candidates: list[_Candidate], rule: AttributeRule
) -> tuple[_Candidate, str]:
    if len(candidates) == 1:
        return candidates[0], "unanimous"
    remaining = candidates
    for strategy in rule.strategies:
        if strategy == "steward_override":
            continue
        scores = [_score(strategy, c, attribute, rule) for c in remaining]
        best = max(scores)
        narrowed = [c for c, s in zip(remaining, scores, strict=True) if s == best]
        if len(narrowed) == 1:
            return narrowed[0], strategy
        remaining = narrowed
    return min(remaining, key=lambda c: c.key), "tie_break"


def _conflict(candidates: list[_Candidate], rule: AttributeRule) -> bool:
    if not rule.conflict or len(candidates) < 2:
        return False
    valid = [c for c in candidates if any(not _flagged(r, rule) for r in c.records)]
    for i, a in enumerate(valid):
        for b in valid[i + 1 :]:
            if not _compatible(a.value, b.value):
                return True
    return False


def build_golden(
    records: Sequence[RecordInput],
    rules: SurvivorshipRules,
    overrides: Mapping[str, Any] | None = None,
) -> GoldenRecord:
    """The golden record of one entity. Pure and order-independent (see module doc)."""
    if len(records) == 1 and not overrides:
        return _single(records[0])
    return _general(records, rules, overrides or {})


def _general(
    records: Sequence[RecordInput], rules: SurvivorshipRules, overrides: Mapping[str, Any]
) -> GoldenRecord:
    by_attr: dict[str, dict[str, _Candidate]] = {}
    for record in sorted(records, key=lambda r: r.ref):
        for attribute, value in record.values.items():
            if _is_empty(value):
                continue
            key = canonical_json(value)
            cands = by_attr.setdefault(attribute, {})
            cand = cands.get(key)
            if cand is None:
                cands[key] = _Candidate(key, value, [record])
            else:
                cand.records.append(record)

    attributes: dict[str, Any] = {}
    provenance: dict[str, dict[str, Any]] = {}
    for attribute in sorted(set(by_attr) | set(overrides)):
        if attribute in overrides:
            attributes[attribute] = overrides[attribute]
            provenance[attribute] = {
                "rule": "steward_override",
                "source_records": [],
                "conflict": False,
            }
            continue
        rule = rules.rule_for(attribute)
        candidates = sorted(by_attr[attribute].values(), key=lambda c: c.key)
        chosen, how = _choose(attribute, candidates, rule)
        attributes[attribute] = chosen.value
        entry: dict[str, Any] = {
            "rule": how,
            "source_records": _refs(chosen.records),
            "conflict": False,
        }
        if _conflict(candidates, rule):
            entry["conflict"] = True
            entry["candidates"] = [
                {"value": c.value, "source_records": _refs(c.records)} for c in candidates
            ]
        provenance[attribute] = entry
    return GoldenRecord(attributes, provenance)


def _single(record: RecordInput) -> GoldenRecord:
    """The golden record of an entity with one record and no override.

    Exactly what the general path gives (a single candidate per attribute is
    ``unanimous`` and cannot conflict), without building candidates: most entities
    of a national load have one record, so this is the common case. Every attribute
    shares one provenance entry (they are equal; nothing changes a golden record's
    provenance in place), and the emptiness test of :func:`_is_empty` is inlined.
    """
    values = record.values
    attributes = {
        a: v
        for a in sorted(values)
        if (v := values[a]) is not None and v != "" and v != [] and v != {}
    }
    entry = {"rule": "unanimous", "source_records": [record.ref], "conflict": False}
    return GoldenRecord(attributes, dict.fromkeys(attributes, entry))


def changed_attributes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Names (never values: events carry no personal data) of attributes that differ."""
    return sorted(
        k
        for k in set(before) | set(after)
        if canonical_json(before.get(k)) != canonical_json(after.get(k))
    )
