"""Deterministic rules, applied before (and over) the probabilistic model.

Two kinds, both configured in the rules file (``deterministic:``):

* **same-key rules** (``same_key``): records sharing a key (a valid personal ID, a
  tax code including its branch suffix, a dossier code with its procedure) are the
  same thing when the listed attributes agree → a must-link edge with method
  ``rule``. When an attribute known on both sides disagrees (same personal ID,
  different date of birth or sex) the pair goes to review with method
  ``rule_conflict`` and becomes a *cannot-auto-link* pair: no automatic run may put
  the two records in one entity; only a steward can.
* **exclusive keys** (``exclusive``): two different non-null values never end up in
  one automatically built cluster, even through a chain of other links. This is
  how "different valid personal IDs are never merged automatically" and "a branch
  is a different organization from its parent" hold; the clustering enforces it
  per cluster (see :mod:`mdm.matching.clustering`), so no quadratic pair list is
  ever built.
* **maximum gaps** (``max_gap``): numeric values further apart than the gap never
  meet in one automatic cluster, also through chains (a birth year, from the date
  or from the personal ID, more than 14 years away: parent and child).
* **guards** (``guards``): pair-level vetoes on an automatic link, in the level
  predicates' vocabulary (twins' different given names, a record without any birth
  year), lifted only by an identifier. The batch path evaluates them in DuckDB
  (:meth:`mdm.matching.rules.Guard.sql`), the incremental path here; both agree.

:func:`decide_pair` is the single implementation used by the batch path (over the
groups DuckDB finds) and by the incremental path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

from rapidfuzz.distance import DamerauLevenshtein

from mdm.matching.features import FeatureValue
from mdm.matching.memo import per_object
from mdm.matching.model import PredicateFn, compile_predicate
from mdm.matching.rules import Deterministic, Guard, MatchingRules, SameKeyRule

Outcome = Literal["link", "review", "conflict"]


@dataclass(frozen=True, slots=True)
class RuleDecision:
    """The verdict of one same-key rule on one pair.

    ``link``: same thing, auto-link (method ``rule``). ``conflict``: the key agrees
    but an attribute contradicts it: review, and never auto-linked. ``review``: the
    key agrees but the attributes cannot confirm it (missing): review, while the
    model may still link the pair on its own evidence.
    """

    rule: str
    outcome: Outcome
    detail: str

    @property
    def method(self) -> str:
        return "rule" if self.outcome == "link" else f"rule_{self.outcome}"


def _key(row: Mapping[str, FeatureValue], cols: Sequence[str]) -> tuple[FeatureValue, ...] | None:
    values = tuple(row.get(c) for c in cols)
    return None if any(v is None for v in values) else values


def apply_same_key_rule(
    rule: SameKeyRule, left: Mapping[str, FeatureValue], right: Mapping[str, FeatureValue]
) -> RuleDecision | None:
    key_l = _key(left, rule.key)
    if key_l is None or key_l != _key(right, rule.key):
        return None
    conflicts = [
        c
        for c in (*rule.agree, *rule.agree_when_known)
        if left.get(c) is not None and right.get(c) is not None and left.get(c) != right.get(c)
    ]
    compiled = _compiled_rule(rule)
    if (
        conflicts
        and set(conflicts) & compiled.slip_columns
        and any(all(p(left, right) for p in group) for group in compiled.slips)
    ):
        conflicts = [c for c in conflicts if c not in compiled.slip_columns]
    required = [
        label
        for columns, predicate, label in compiled.require
        if all(left.get(c) is not None and right.get(c) is not None for c in columns)
        and not predicate(left, right)
    ]
    if required or (conflicts and rule.on_disagreement == "conflict"):
        found = [*conflicts, *required]
        return RuleDecision(rule.name, "conflict", f"same {'+'.join(rule.key)}, {found} differ")
    if conflicts:
        return RuleDecision(rule.name, "review", f"same {'+'.join(rule.key)}, {conflicts} differ")
    unknown = [c for c in rule.agree if left.get(c) is None or right.get(c) is None]
    if unknown:
        return RuleDecision(rule.name, "review", f"same {'+'.join(rule.key)}, {unknown} unknown")
    return RuleDecision(rule.name, "link", f"same {'+'.join(rule.key)}")


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    slip_columns: frozenset[str]
    slips: tuple[tuple[PredicateFn, ...], ...]
    require: tuple[tuple[tuple[str, ...], PredicateFn, str], ...]


_RULES: dict[int, tuple[object, _CompiledRule]] = {}


def _compiled_rule(rule: SameKeyRule) -> _CompiledRule:
    return per_object(_RULES, rule, _compile_rule)


def _compile_rule(rule: SameKeyRule) -> _CompiledRule:
    slips = rule.slips
    return _CompiledRule(
        frozenset(slips.columns) if slips is not None else frozenset(),
        tuple(tuple(compile_predicate(p) for p in g) for g in slips.when_any)
        if slips is not None
        else (),
        tuple(
            (tuple(p.columns), compile_predicate(p), f"{p.op}:{'+'.join(p.columns)}")
            for p in rule.require_when_known
        ),
    )


def decide_pair(
    rules: MatchingRules, left: Mapping[str, FeatureValue], right: Mapping[str, FeatureValue]
) -> RuleDecision | None:
    """First applicable verdict, conflicts first: a contradiction outranks any link."""
    decisions = [
        d
        for rule in rules.deterministic.same_key
        if (d := apply_same_key_rule(rule, left, right)) is not None
    ]
    for outcome in ("conflict", "link", "review"):
        for decision in decisions:
            if decision.outcome == outcome:
                return decision
    return None


def constraint_values(
    rules: MatchingRules, row: Mapping[str, FeatureValue]
) -> dict[str, FeatureValue]:
    """The values a record brings to the cluster constraints: each exclusive key's
    value (``None`` where the record flags it as in doubt) and each ``max_gap``
    column's. The batch clustering and the one-record path read the same."""
    out: dict[str, FeatureValue] = {}
    for key in rules.deterministic.exclusive:
        value = row.get(key.column)
        if key.unless_flagged is not None and row.get(key.unless_flagged):
            value = None
        out[key.column] = value
    for gap in rules.deterministic.max_gap:
        out[gap.column] = row.get(gap.column)
    return out


def exclusive_values_clash(a: FeatureValue, b: FeatureValue, typo_edits: int) -> bool:
    """Two known values of an exclusive key that name two different things: not
    equal, and further apart than ``typo_edits`` (one ID typed twice is one ID)."""
    if a is None or b is None or a == b:
        return False
    if typo_edits <= 0:
        return True
    return DamerauLevenshtein.distance(str(a), str(b), score_cutoff=typo_edits) > typo_edits


def exclusive_conflict(
    rules: MatchingRules, left: Mapping[str, FeatureValue], right: Mapping[str, FeatureValue]
) -> str | None:
    """Why these two records may never be in one automatic cluster: the exclusive
    column whose two different values forbid it, or ``max_gap:<column>`` when two
    values are further apart than the rule allows (birth years a generation apart).

    These are cluster constraints: an entity refuses a record that conflicts with
    any of its members. The pair-level vetoes are :func:`guard_conflict`.
    """
    for key in rules.deterministic.exclusive:
        a, b = left.get(key.column), right.get(key.column)
        if key.unless_flagged is not None and (
            left.get(key.unless_flagged) or right.get(key.unless_flagged)
        ):
            continue
        if exclusive_values_clash(a, b, key.typo_edits):
            return key.column
    for gap in rules.deterministic.max_gap:
        x, y = left.get(gap.column), right.get(gap.column)
        if isinstance(x, int | float) and isinstance(y, int | float) and abs(x - y) > gap.max:
            return f"max_gap:{gap.column}"
    return None


def worth_review(
    rules: MatchingRules,
    reason: str,
    left: Mapping[str, FeatureValue],
    right: Mapping[str, FeatureValue],
) -> bool:
    """Whether a pair an automatic link was refused for (``reason`` as the clustering
    or :func:`exclusive_conflict`/:func:`guard_conflict` gives it) goes to a steward:
    only when the constraint's ``review_when`` says a clerical slip could explain
    the disagreement (twins' names three letters apart, birth years 30 years and
    two digits apart are two people, not a question). No ``review_when``: always."""
    predicates = _compiled_review(rules.deterministic).get(reason)
    if predicates is None:
        kind, _, name = reason.partition(":")
        if kind == "exclusive":  # the incremental path names the bare column
            predicates = _compiled_review(rules.deterministic).get(name)
    if not predicates:
        return True
    return any(p(left, right) for p in predicates)


_REVIEW: dict[int, tuple[object, dict[str, tuple[PredicateFn, ...]]]] = {}


def _compiled_review(det: Deterministic) -> dict[str, tuple[PredicateFn, ...]]:
    return per_object(_REVIEW, det, _compile_review)


def _compile_review(det: Deterministic) -> dict[str, tuple[PredicateFn, ...]]:
    out: dict[str, tuple[PredicateFn, ...]] = {}
    for guard in det.guards:
        out[f"guard:{guard.name}"] = tuple(compile_predicate(p) for p in guard.review_when)
    for key in det.exclusive:
        compiled = tuple(compile_predicate(p) for p in key.review_when)
        out[f"exclusive:{key.column}"] = out[key.column] = compiled
    for gap in det.max_gap:
        out[f"max_gap:{gap.column}"] = tuple(compile_predicate(p) for p in gap.review_when)
    return out


def guard_conflict(
    rules: MatchingRules, left: Mapping[str, FeatureValue], right: Mapping[str, FeatureValue]
) -> str | None:
    """``guard:<name>`` of the first guard that forbids this pair, else ``None``;
    the same verdict as :meth:`mdm.matching.rules.Guard.sql` gives in DuckDB."""
    for guard in _compiled_guards(rules.deterministic.guards):
        if guard.known:
            if any(left.get(c) is None or right.get(c) is None for c in guard.known):
                continue
        elif all(left.get(c) is not None and right.get(c) is not None for c in guard.unknown):
            continue
        row_l = {c: left.get(c) for c in guard.columns}
        row_r = {c: right.get(c) for c in guard.columns}
        if not all(p(row_l, row_r) for p in guard.when):
            continue
        if not any(p(row_l, row_r) for p in guard.unless):
            return guard.verdict
    return None


@dataclass(frozen=True, slots=True)
class _CompiledGuard:
    verdict: str  # "guard:<name>"
    known: tuple[str, ...]
    unknown: tuple[str, ...]
    columns: tuple[str, ...]
    when: tuple[PredicateFn, ...]
    unless: tuple[PredicateFn, ...]


_GUARDS: dict[int, tuple[object, tuple[_CompiledGuard, ...]]] = {}


def _compiled_guards(guards: Sequence[Guard]) -> tuple[_CompiledGuard, ...]:
    """The guards with their predicates compiled, once per rules object (compiling
    them per pair was half the cost of scoring a search's candidates)."""
    return per_object(_GUARDS, guards, _compile_guards)


def _compile_guards(guards: Sequence[Guard]) -> tuple[_CompiledGuard, ...]:
    return tuple(
        _CompiledGuard(
            f"guard:{g.name}",
            tuple(g.known),
            tuple(g.unknown),
            g.columns,
            tuple(compile_predicate(p) for p in g.when),
            tuple(compile_predicate(p) for p in g.unless),
        )
        for g in guards
    )


@dataclass(frozen=True, slots=True)
class RulePair:
    left: str
    right: str
    decision: RuleDecision


def decide_groups(
    rules: MatchingRules, groups: Iterable[Sequence[Mapping[str, FeatureValue]]]
) -> Iterator[RulePair]:
    """Decide every pair inside groups of rows that share some rule key.

    Groups come from the store or DuckDB (``GROUP BY key HAVING count(*) > 1``); they
    are small (duplicates of one thing), so pairwise work inside them is cheap.
    """
    for group in groups:
        for a, b in combinations(group, 2):
            decision = decide_pair(rules, a, b)
            if decision is not None:
                ida, idb = str(a["unique_id"]), str(b["unique_id"])
                left, right = (ida, idb) if ida < idb else (idb, ida)
                yield RulePair(left, right, decision)
