"""The trained model as plain Python: rules + m/u + prior, compiled for scoring.

The saved model (``matching_rules/models/<entity>.json``) is an ordinary Splink
settings file, so the batch path loads it into a linker unchanged. This module
reads the same file *without* Splink and compiles every comparison level into
Python predicates generated from the rules file, so the incremental scorer
reproduces Splink's SQL:

* levels are tried in order; the first whose predicates are all TRUE wins. A
  predicate on a NULL value is never TRUE (SQL three-valued logic inside ``CASE
  WHEN``), except ``either_true`` where ``NULL OR TRUE`` is TRUE;
* a level's weight is ``log2(max(m, 1e-300) / max(u, 1e-300))``, 0 for null levels;
* the term-frequency adjustment is ``w · (log2 u_level − log2 max(tf_l', tf_r',
  min_u))`` with ``tf_l' = coalesce(tf_l, tf_r)``, 0 if both are unknown;
* the total is the prior weight plus the per-comparison terms summed in Splink's
  order (``mw_c`` then ``mw_tf_adj_c``), and the probability uses Splink's
  numerically stable form.

String functions: rapidfuzz's Jaro, Jaro-Winkler, Levenshtein and (unrestricted)
Damerau-Levenshtein return exactly DuckDB's values on every input we tested
(50,000 random pairs) except empty strings, where DuckDB's Jaro(-Winkler) is 0;
that case is reproduced here (features never hold empty strings anyway).

The model refuses to load when the saved levels' SQL differs from the rules file:
a model trained on other rules must be retrained, not silently reused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rapidfuzz.distance import DamerauLevenshtein, Jaro, JaroWinkler, Levenshtein

from mdm.exceptions import ConfigError
from mdm.matching.features import FeatureValue
from mdm.matching.rules import Level, MatchingRules, Predicate

Row = Mapping[str, FeatureValue]
PredicateFn = Callable[[Row, Row], bool]

M_U_CLAMP_MIN = 1e-300  # splink.internals.comparison_level.M_U_CLAMP_MIN


def prob_to_weight(probability: float) -> float:
    return math.log2(probability / (1 - probability))


def weight_to_prob(weight: float) -> float:
    """Splink's stable form: never overflows for large |weight|."""
    if weight >= 0:
        return 1.0 / (1.0 + math.pow(2.0, -weight))
    power = math.pow(2.0, weight)
    return power / (1.0 + power)


def _string_fn(
    a_col: str, b_col: str, measure: Callable[[str, str], float], ok: Callable[[float], bool]
) -> PredicateFn:
    def fn(left: Row, right: Row) -> bool:
        a, b = left[a_col], right[b_col]
        if a is None or b is None:
            return False
        return ok(measure(str(a), str(b)))

    return fn


def _similar(col: str, scorer: Callable[[str, str], float], minimum: float) -> PredicateFn:
    """``scorer(a, b) >= minimum`` with DuckDB's empty-string rule (an empty side
    scores 0, which never reaches a minimum in (0, 1]). Scoring every candidate of
    a search goes through here: one call, no wrapper per comparison."""

    def fn(left: Row, right: Row) -> bool:
        a, b = left[col], right[col]
        if a is None or b is None:
            return False
        if type(a) is not str:
            a = str(a)
        if type(b) is not str:
            b = str(b)
        if not a or not b:
            return False
        return scorer(a, b) >= minimum

    return fn


def compile_predicate(pred: Predicate) -> PredicateFn:
    op = pred.op
    cols = pred.columns
    c = cols[0]
    if op in ("exact", "cross"):
        a_col, b_col = (c, c) if op == "exact" else cols

        def equal(left: Row, right: Row) -> bool:
            a = left[a_col]
            return a is not None and a == right[b_col]

        return equal
    if op in ("jaro_winkler", "jaro"):
        minimum = pred.min
        assert minimum is not None
        scorer = JaroWinkler.similarity if op == "jaro_winkler" else Jaro.similarity
        return _similar(c, scorer, minimum)
    if op in ("levenshtein", "damerau_levenshtein"):
        assert pred.max is not None
        limit: float = pred.max
        dist = Levenshtein.distance if op == "levenshtein" else DamerauLevenshtein.distance
        return _string_fn(c, c, dist, lambda d: d <= limit)
    if op == "abs_diff":
        maximum = pred.max
        assert maximum is not None

        def close(left: Row, right: Row) -> bool:
            a, b = left[c], right[c]
            if a is None or b is None:
                return False
            return abs(int(a) - int(b)) <= maximum

        return close

    def either(left: Row, right: Row) -> bool:  # either_true
        return left[c] is True or right[c] is True

    return either


@dataclass(frozen=True, slots=True)
class CompiledLevel:
    label: str
    kind: str  # "null" | "when" | "else"
    gamma: int
    weight: float
    predicates: tuple[PredicateFn, ...]
    null_columns: tuple[str, ...]
    tf_column: str | None
    tf_weight: float
    tf_min_u: float
    log2_u: float | None

    def matches(self, left: Row, right: Row) -> bool:
        # Plain loops, not any()/all() over generators: every candidate of a search
        # runs this for every level of every comparison, and the generators made
        # scoring 2.5x slower (25 against 9 µs a pair, measured).
        if self.kind == "null":
            for c in self.null_columns:  # noqa: SIM110
                if left[c] is None or right[c] is None:
                    return True
            return False
        for p in self.predicates:  # noqa: SIM110 ("else" has none)
            if not p(left, right):
                return False
        return True


@dataclass(frozen=True, slots=True)
class CompiledComparison:
    name: str
    levels: tuple[CompiledLevel, ...]
    has_tf: bool


@dataclass(frozen=True)
class MatchModel:
    """A trained model, independent of Splink and of any database."""

    rules: MatchingRules
    probability_two_random_records_match: float
    comparisons: tuple[CompiledComparison, ...]
    settings: dict[str, Any]

    @property
    def prior_weight(self) -> float:
        return prob_to_weight(self.probability_two_random_records_match)

    @classmethod
    def load(cls, path: str | Path, rules: MatchingRules) -> MatchModel:
        path = Path(path)
        try:
            settings = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the trained model ({exc})") from exc
        return cls.from_settings(settings, rules, where=str(path))

    @classmethod
    def from_settings(
        cls, settings: dict[str, Any], rules: MatchingRules, where: str = "<model>"
    ) -> MatchModel:
        saved = {c.get("output_column_name"): c for c in settings.get("comparisons", [])}
        expected = [c.name for c in rules.comparisons]
        if list(saved) != expected:
            raise ConfigError(
                f"{where}: comparisons {list(saved)} differ from the rules {expected}; retrain"
            )
        compiled = tuple(
            _compile_comparison(comp.name, comp.levels, saved[comp.name], where)
            for comp in rules.comparisons
        )
        prior = settings.get("probability_two_random_records_match")
        if not isinstance(prior, int | float) or not 0 < prior < 1:
            raise ConfigError(f"{where}: probability_two_random_records_match missing or invalid")
        return cls(
            _with_derived_thresholds(rules, settings, where), float(prior), compiled, settings
        )


def _with_derived_thresholds(
    rules: MatchingRules, settings: dict[str, Any], where: str
) -> MatchingRules:
    """The rules with the thresholds training derived from their precision target
    (saved under ``mdm_thresholds``); the rules as they are when they state fixed
    thresholds. A model trained for a target the rules no longer state, or without
    the thresholds the rules' target needs, must be retrained."""
    derived = settings.get("mdm_thresholds")
    target = rules.thresholds.precision_target
    if target is None:
        return rules
    if not isinstance(derived, dict) or derived.get("precision_target") != target:
        raise ConfigError(
            f"{where}: the model holds no thresholds for precision_target {target}; retrain"
        )
    if derived.get("review_load") != rules.thresholds.review_load:
        raise ConfigError(f"{where}: the model's thresholds are for another review_load; retrain")
    try:
        thresholds = rules.thresholds.model_copy(
            update={"auto_link": float(derived["auto_link"]), "review": float(derived["review"])}
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: invalid derived thresholds ({exc}); retrain") from exc
    return rules.model_copy(update={"thresholds": thresholds})


def _compile_comparison(
    name: str, levels: list[Level], saved: dict[str, Any], where: str
) -> CompiledComparison:
    saved_levels = saved.get("comparison_levels", [])
    if len(saved_levels) != len(levels):
        raise ConfigError(f"{where}: comparison {name!r} has a different number of levels; retrain")
    non_null = sum(1 for lv in levels if lv.kind != "null")
    out: list[CompiledLevel] = []
    rank = 0
    for i, (level, stored) in enumerate(zip(levels, saved_levels, strict=True)):
        key = f"{where}: comparisons.{name}.levels[{i}]"
        if stored.get("sql_condition") != level.sql():
            raise ConfigError(f"{key}: SQL differs from the rules file; retrain")
        if level.kind == "null":
            out.append(
                CompiledLevel(
                    level.display_label(),
                    "null",
                    -1,
                    0.0,
                    (),
                    tuple(level.columns),
                    None,
                    0.0,
                    0.0,
                    None,
                )
            )
            continue
        m, u = stored.get("m_probability"), stored.get("u_probability")
        if not isinstance(m, int | float) or not isinstance(u, int | float):
            raise ConfigError(f"{key}: m_probability/u_probability missing; save with save_model")
        weight = math.log2(max(float(m), M_U_CLAMP_MIN) / max(float(u), M_U_CLAMP_MIN))
        tf = level.tf if level.kind == "when" else None
        tf_on = tf is not None and tf.weight != 0
        out.append(
            CompiledLevel(
                label=level.display_label(),
                kind=level.kind,
                gamma=non_null - 1 - rank,
                weight=weight,
                predicates=tuple(compile_predicate(p) for p in level.when or []),
                null_columns=(),
                tf_column=tf.column if tf_on and tf else None,
                tf_weight=tf.weight if tf else 0.0,
                tf_min_u=tf.minimum_u if tf else 0.0,
                log2_u=math.log2(float(u)) if tf_on else None,
            )
        )
        rank += 1
    return CompiledComparison(name, tuple(out), any(lv.tf for lv in levels))
