"""Incremental matching: one new record against its candidates, no Splink linker.

The store keeps, per entity type, a table of blocking keys (see
:func:`blocking_keys`) indexed by key; for a new record it fetches the feature rows
of every record sharing at least one key (a :class:`CandidateSource`), and
:class:`IncrementalMatcher` scores them with the same weights Splink's ``predict``
would produce (parity is tested to 1e-6), then applies the deterministic rules
and the exclusive-key constraint exactly as the batch path does.

Term frequencies come from the last batch run (:func:`mdm.matching.batch.compute_tf_tables`)
and are persisted by the store; a value absent from the table (new since the batch)
has no frequency, which is exactly what Splink does with a registered lookup.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from mdm.matching.deterministic import (
    RuleDecision,
    decide_pair,
    exclusive_conflict,
    guard_conflict,
    worth_review,
)
from mdm.matching.features import FeatureRow, FeatureValue
from mdm.matching.memo import per_object
from mdm.matching.model import MatchModel, weight_to_prob
from mdm.matching.rules import MatchingRules

Row = Mapping[str, FeatureValue]
TfTables = Mapping[str, Mapping[FeatureValue, float]]

KEY_SEPARATOR = "\x1f"


def blocking_keys(features: Row, rules: MatchingRules) -> list[str]:
    """The keys the store indexes for this record: one per prediction blocking rule
    whose columns are all known, ``"<col>+<col>:<value>\\x1f<value>"``.

    Two records share a key exactly when Splink's blocking rule would pair them
    (equality on every column, NULL never equal), so candidate sets match the batch
    path. Keys name their columns, so reordering rules keeps existing keys valid.
    """
    keys: list[str] = []
    get = features.get
    for prefix, cols in _key_rules(rules.blocking.prediction):
        if len(cols) == 1:
            value = get(cols[0])
            if value is not None:
                keys.append(prefix + (value if type(value) is str else _render(value)))
            continue
        values = [get(c) for c in cols]
        if None in values:
            continue
        keys.append(
            prefix + KEY_SEPARATOR.join([v if type(v) is str else _render(v) for v in values])
        )
    return keys


def _render(value: FeatureValue) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


_KEY_RULES: dict[int, tuple[object, list[tuple[str, tuple[str, ...]]]]] = {}


def _key_rules(prediction: Sequence[Sequence[str]]) -> list[tuple[str, tuple[str, ...]]]:
    """``(key prefix, columns)`` per rule, computed once per rules object (a pass
    calls :func:`blocking_keys` for every record; rebuilding this each time cost a
    fifth of it)."""
    return per_object(_KEY_RULES, prediction, _compile_key_rules)


def _compile_key_rules(prediction: Sequence[Sequence[str]]) -> list[tuple[str, tuple[str, ...]]]:
    return [("+".join(cols) + ":", tuple(cols)) for cols in prediction]


@dataclass(frozen=True, slots=True)
class PairScore:
    match_weight: float
    match_probability: float
    #: per comparison: level weight + term-frequency adjustment (what explains the score)
    weights: dict[str, float]
    #: per comparison: Splink's gamma (comparison vector value), -1 for null
    gammas: dict[str, int]
    #: per comparison: the TF part alone (0 when none applied)
    tf_adjustments: dict[str, float]


class IncrementalScorer:
    """Scores pairs of feature rows with a :class:`MatchModel` and TF tables."""

    def __init__(self, model: MatchModel, tf_tables: TfTables | None = None) -> None:
        self.model = model
        self._tf: TfTables = tf_tables or {}
        self._prior = model.prior_weight

    def score(self, left: Row, right: Row) -> PairScore:
        total = self._prior
        weights: dict[str, float] = {}
        gammas: dict[str, int] = {}
        tf_parts: dict[str, float] = {}
        for comp in self.model.comparisons:
            for level in comp.levels:  # the first that matches; the last is "else"
                if level.matches(left, right):
                    break
            else:
                raise AssertionError(f"no level of {comp.name} matched")  # pragma: no cover
            tf_adj = 0.0
            if level.tf_column is not None and level.log2_u is not None:
                table = self._tf.get(level.tf_column, {})
                value_l, value_r = left[level.tf_column], right[level.tf_column]
                tf_l = table.get(value_l) if value_l is not None else None
                tf_r = table.get(value_r) if value_r is not None else None
                first = tf_l if tf_l is not None else tf_r
                second = tf_r if tf_r is not None else tf_l
                if first is not None and second is not None:
                    tf_u = max(first, second, level.tf_min_u)
                    tf_adj = level.tf_weight * (level.log2_u - math.log2(tf_u))
            total = total + level.weight
            if comp.has_tf:
                total = total + tf_adj
            weights[comp.name] = level.weight + tf_adj
            gammas[comp.name] = level.gamma
            tf_parts[comp.name] = tf_adj
        return PairScore(total, weight_to_prob(total), weights, gammas, tf_parts)


class CandidateSource(Protocol):
    """What the store provides: feature rows of records sharing any of ``keys``."""

    def candidates(self, keys: Sequence[str]) -> Iterable[Row]: ...


@dataclass
class InMemoryCandidateIndex:
    """A dict-backed :class:`CandidateSource` for tests and benchmarks.

    The store replaces it with its indexed ``(entity_type, blocking_key) →
    source_record`` table; the matcher only depends on the protocol.
    """

    rules: MatchingRules
    _rows: dict[str, Row] = field(default_factory=dict)
    _index: dict[str, list[str]] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        uid = str(row["unique_id"])
        self._rows[uid] = row
        for key in blocking_keys(row, self.rules):
            self._index.setdefault(key, []).append(uid)

    def add_many(self, rows: Iterable[Row]) -> None:
        for row in rows:
            self.add(row)

    def candidates(self, keys: Sequence[str]) -> Iterable[Row]:
        seen: set[str] = set()
        for key in keys:
            for uid in self._index.get(key, ()):
                if uid not in seen:
                    seen.add(uid)
                    yield self._rows[uid]


Decision = Literal["auto_link", "review", "none"]


@dataclass(frozen=True, slots=True)
class ScoredCandidate:
    unique_id: str
    score: PairScore | None
    rule: RuleDecision | None
    decision: Decision
    method: str  # "rule", "rule_conflict", "rule_review", "model"
    forbidden: str | None  # why an automatic link is not allowed, if it is not


class IncrementalMatcher:
    """Deterministic rules + model for one record; the store decides what to link.

    ``auto_link`` candidates may still belong to different entities; the store must
    check the exclusive keys and steward cannot-links at entity level before it
    links (the same constraint the batch clustering enforces).
    """

    def __init__(
        self,
        model: MatchModel,
        tf_tables: TfTables | None,
        source: CandidateSource,
    ) -> None:
        self.rules = model.rules
        self.scorer = IncrementalScorer(model, tf_tables)
        self.source = source
        self._auto = self.rules.thresholds.auto_link_weight
        self._review = self.rules.thresholds.review_weight

    def match(self, record: FeatureRow | Row) -> list[ScoredCandidate]:
        uid = str(record["unique_id"])
        out: list[ScoredCandidate] = []
        for cand in self.source.candidates(blocking_keys(record, self.rules)):
            cand_id = str(cand["unique_id"])
            if cand_id == uid:
                continue
            out.append(self.decide(record, cand))
        out.sort(key=lambda c: -(c.score.match_weight if c.score else math.inf))
        return out

    def decide(self, record: Row, cand: Row) -> ScoredCandidate:
        cand_id = str(cand["unique_id"])
        rule = decide_pair(self.rules, record, cand)
        forbidden = exclusive_conflict(self.rules, record, cand) or guard_conflict(
            self.rules, record, cand
        )
        if rule is not None and rule.outcome == "conflict":
            forbidden = forbidden or f"rule:{rule.rule}"
        score = self.scorer.score(record, cand)
        if rule is not None and rule.outcome == "link" and forbidden is None:
            return ScoredCandidate(cand_id, score, rule, "auto_link", "rule", None)
        weight = score.match_weight
        if weight >= self._auto and forbidden is None:
            decision: Decision = "auto_link"
        elif (
            weight >= self._review
            and rule is None
            and forbidden is not None
            and not worth_review(self.rules, forbidden, record, cand)
        ):
            decision = "none"  # two people: no clerical slip explains what forbids it
        elif weight >= self._review or rule is not None:
            decision = "review"
        else:
            decision = "none"
        method = rule.method if rule is not None and decision == "review" else "model"
        return ScoredCandidate(cand_id, score, rule, decision, method, forbidden)


def tf_tables_from_rows(
    rows: Iterable[tuple[str, FeatureValue, float]],
) -> dict[str, dict[FeatureValue, float]]:
    """Build TF lookups from ``(column, value, tf)`` rows, as the store returns them."""
    out: dict[str, dict[FeatureValue, float]] = {}
    for column, value, tf in rows:
        out.setdefault(column, {})[value] = tf
    return out
