"""Training a Splink 5 model on DuckDB from the rules file.

The recipe, in order (each step is Splink's, configured from the rules):

1. the prior (probability two random records match) from the near-certain
   deterministic rules in ``prior:`` and their assumed recall: deterministic, no
   sampling, so it does not drift between runs;
2. u by random sampling (``training.u_max_pairs`` pairs, fixed seed);
3. m by expectation maximisation, one session per ``blocking.training`` rule,
   each estimating every comparison its rule does not fix, capped at
   ``training.em_max_pairs`` pairs per session.

Term-frequency tables are computed from the training data (Splink's formula) and
registered, so training and prediction see the same frequencies.

The saved model is a Splink settings JSON in which every level carries explicit m
and u (Splink leaves defaults or "not observed" implicit): this makes the file a
complete description that both Splink and the incremental scorer read the same way.
Probabilities are clamped to [1e-9, 1] so that no level gets an infinite weight
from a level EM never saw.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from mdm.matching.linker import count_pairs, make_linker
from mdm.matching.model import MatchModel
from mdm.matching.rules import MatchingRules, blocking_rule_sql, default_rules_dir
from mdm.matching.tables import (
    FeatureSource,
    compute_tf_tables,
    load_features,
)
from mdm.matching.thresholds import derive_thresholds

logger = logging.getLogger(__name__)

PROBABILITY_FLOOR = 1e-9
#: m of a level that no EM session saw a pair in, although the sessions that
#: estimated its comparison were made of (mostly) matching pairs: evidence that
#: matches rarely fall there, not absence of evidence (Splink would keep its starting
#: value, about 1/120, and a date one digit off would weigh +3 bits).
UNOBSERVED_M = 1e-6


@dataclass
class LevelParameters:
    comparison: str
    level: str
    m_probability: float | None
    u_probability: float | None
    match_weight: float


@dataclass
class TrainingReport:
    records: int
    probability_two_random_records_match: float
    #: pairs each blocking rule generates on the training data (before dedup across rules)
    pairs_per_prediction_rule: dict[str, int]
    pairs_per_training_rule: dict[str, int]
    levels: list[LevelParameters]
    seconds: float
    step_seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: the thresholds derived from the rules' precision target and review load
    thresholds: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainedModel:
    rules: MatchingRules
    settings: dict[str, Any]
    report: TrainingReport

    def save_model(self, path: str | Path | None = None) -> Path:
        """Write the Splink settings JSON (default ``matching_rules/models/<entity>.json``)."""
        target = (
            Path(path)
            if path is not None
            else default_rules_dir() / "models" / f"{self.rules.entity_type}.json"
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.settings, indent=2, sort_keys=False), encoding="utf-8")
        return target

    def match_model(self) -> MatchModel:
        return MatchModel.from_settings(self.settings, self.rules)


@contextmanager
def _em_probability_floor() -> Iterator[None]:
    """Clamp EM's m/u estimates at :data:`PROBABILITY_FLOOR` while training.

    Splink 5 rejects an m or u below 1e-300, yet its EM produces an exact 0 when a
    level is only ever seen on pairs whose match probability underflows (a level
    that true matches never show in clean data, e.g. a sex mismatch). Raising such
    values to the floor is what :func:`complete_settings` does for the saved model
    anyway; without it one clean column aborts the whole session.
    """
    from splink.internals import expectation_maximisation as em

    original = em.populate_m_u_from_lookup

    def clamped(fixed: Any, level: Any, column: str, lookup: dict[str, dict[int, Any]]) -> None:
        for records in lookup.values():
            for record in records.values():
                for key in ("m_probability", "u_probability"):
                    value = record.get(key)
                    if isinstance(value, int | float) and value < PROBABILITY_FLOOR:
                        record[key] = PROBABILITY_FLOOR
        original(fixed, level, column, lookup)

    em.populate_m_u_from_lookup = clamped  # type: ignore[assignment]
    try:
        yield
    finally:
        em.populate_m_u_from_lookup = original


def train(
    rules: MatchingRules,
    source: FeatureSource | None,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    table: str = "mdm_features",
) -> TrainedModel:
    """Train on ``source`` (or on ``table`` already in ``con`` when ``source`` is None)."""
    started = time.perf_counter()
    con = con if con is not None else duckdb.connect()
    if source is not None:
        records = load_features(con, rules.entity_type, source, table)
    else:
        row = con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0]
        records = int(row[0]) if row else 0
    tf_tables = compute_tf_tables(con, table, rules.tf_columns)
    linker = make_linker(con, table, rules.splink_settings(), tf_tables)
    warnings: list[str] = []

    t0 = time.perf_counter()
    linker.training.estimate_probability_two_random_records_match(
        [blocking_rule_sql(cols) for cols in rules.prior.deterministic_rules],
        recall=rules.prior.recall,
    )
    linker.training.estimate_u_using_random_sampling(
        max_pairs=rules.training.u_max_pairs, seed=rules.training.seed
    )
    timings = {"prior_and_u": time.perf_counter() - t0}
    training_pairs = {"+".join(c): count_pairs(con, table, c) for c in rules.blocking.training}
    prediction_pairs = {"+".join(c): count_pairs(con, table, c) for c in rules.blocking.prediction}
    for cols in rules.blocking.training:
        t0 = time.perf_counter()
        if training_pairs["+".join(cols)] == 0:
            warnings.append(f"EM blocking rule {cols} yields no pairs; skipped")
            continue
        try:
            with _em_probability_floor():
                linker.training.estimate_parameters_using_expectation_maximisation(
                    blocking_rule_sql(cols),
                    max_pairs=rules.training.em_max_pairs,
                )
        except ValueError as exc:  # e.g. an m that underflows to 0 in a degenerate block
            warnings.append(f"EM session on {cols} failed: {exc}")
            logger.warning("EM session on %s failed: %s", cols, exc)
        timings["em:" + "+".join(cols)] = time.perf_counter() - t0

    unseen = levels_no_session_observed(linker)
    settings = complete_settings(linker, unseen)
    make_honest(settings, unseen, rules.training.m_floor, rules.training.u_floor_value)
    t0 = time.perf_counter()
    derived = derive_thresholds(
        rules, settings, con, table, candidates=sum(prediction_pairs.values())
    )
    if derived is not None:
        timings["thresholds"] = time.perf_counter() - t0
    warnings += [
        f"level {level!r} of {comp} was seen in no EM session: m set to the prior "
        f"{rules.training.m_floor:g}"
        for comp, level in sorted(unseen)
    ]
    report = TrainingReport(
        records=records,
        probability_two_random_records_match=settings["probability_two_random_records_match"],
        pairs_per_prediction_rule=prediction_pairs,
        pairs_per_training_rule=training_pairs,
        levels=_level_parameters(settings),
        seconds=time.perf_counter() - started,
        step_seconds=timings,
        warnings=warnings,
        thresholds=derived.as_dict() if derived is not None else None,
    )
    return TrainedModel(rules, settings, report)


def levels_no_session_observed(linker: Any) -> set[tuple[str, str]]:
    """``(comparison, level label)`` of the levels no EM session found a pair in,
    although at least one session that estimated their comparison found pairs in
    its other levels.

    A session says nothing about a comparison it fixes (its blocking columns: no
    record) or whose every pair is null on it (a column the data lacks: no level
    observed); those leave Splink's value."""
    by_session: dict[tuple[str, str], dict[str, bool]] = {}
    for record in linker._settings_obj._parameter_estimates_as_records:
        if record["m_or_u"] != "m" or not str(record["estimate_description"]).startswith("EM"):
            continue
        levels = by_session.setdefault(
            (str(record["estimate_description"]), str(record["comparison_name"])), {}
        )
        # an unobserved level's estimate is the text "level not observed in training dataset"
        levels[str(record["comparison_level_label"])] = not isinstance(
            record["estimated_probability"], str
        )
    seen: dict[tuple[str, str], bool] = {}
    for (_session, comparison), levels in by_session.items():
        if not any(levels.values()):
            continue
        for label, observed in levels.items():
            key = (comparison, label)
            seen[key] = seen.get(key, False) or observed
    return {key for key, observed in seen.items() if not observed}


def complete_settings(linker: Any, unseen: Collection[tuple[str, str]] = ()) -> dict[str, Any]:
    """The linker's settings with explicit, clamped m/u on every non-null level;
    the levels in ``unseen`` (see :func:`levels_no_session_observed`) get
    :data:`UNOBSERVED_M`."""
    settings: dict[str, Any] = linker.misc.save_model_to_json()
    live = linker._settings_obj.comparisons
    for comp_dict, comp in zip(settings["comparisons"], live, strict=True):
        for level_dict, level in zip(
            comp_dict["comparison_levels"], comp.comparison_levels, strict=True
        ):
            if level_dict.get("is_null_level"):
                continue
            for key in ("m_probability", "u_probability"):
                value = getattr(level, key)
                value = 1e-6 if value is None else float(value)  # Splink's "not observed"
                label = (comp_dict["output_column_name"], level_dict.get("label_for_charts"))
                if key == "m_probability" and label in unseen:
                    value = UNOBSERVED_M
                level_dict[key] = min(1.0, max(PROBABILITY_FLOOR, value))
    settings.pop("linker_uid", None)
    return settings


@dataclass(frozen=True, slots=True)
class LevelEstimate:
    m: float
    u: float
    observed: bool = True


def honest_levels(
    levels: Sequence[LevelEstimate], m_floor: float, u_floor: float
) -> list[tuple[float, float]]:
    """(m, u) per level of one comparison, listed closest first, made honest about
    what training saw:

    * floors: m >= ``m_floor`` (a clerical slip can put a true match in any level)
      and u >= ``u_floor`` (what random sampling can tell from zero), so no level
      weighs beyond what the data supports;
    * a level no EM session observed gets the prior m = ``m_floor``: its weight is
      then log2(m_floor / u), near neutral for a level random pairs rarely reach
      (one digit off in a date), clearly negative for one they usually do (two
      different dates), never -20 bits;
    * monotone: down the list a level never weighs more than the one before it
      (a closer agreement is never worse evidence than a looser one). Violators are
      pooled (pool-adjacent-violators on the likelihood ratio: the pooled levels
      share log2(sum m / sum u), each keeping its u), which keeps the m mass.
    """
    floored = [
        (max(level.m if level.observed else m_floor, m_floor), max(level.u, u_floor))
        for level in levels
    ]
    blocks: list[tuple[float, float, list[int]]] = []  # (sum m, sum u, members)
    for i, (m, u) in enumerate(floored):
        blocks.append((m, u, [i]))
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            m2, u2, i2 = blocks.pop()
            m1, u1, i1 = blocks.pop()
            blocks.append((m1 + m2, u1 + u2, i1 + i2))
    out: list[tuple[float, float]] = [(0.0, 0.0)] * len(floored)
    for m_sum, u_sum, members in blocks:
        for i in members:
            u = floored[i][1]
            out[i] = (min(1.0, u * m_sum / u_sum), u)
    return out


def make_honest(
    settings: dict[str, Any],
    unseen: Collection[tuple[str, str]],
    m_floor: float,
    u_floor: float,
) -> None:
    """Apply :func:`honest_levels` to every comparison of a completed settings JSON."""
    for comp in settings["comparisons"]:
        name = comp["output_column_name"]
        levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        estimates = [
            LevelEstimate(
                float(lv["m_probability"]),
                float(lv["u_probability"]),
                (name, lv.get("label_for_charts")) not in unseen,
            )
            for lv in levels
        ]
        for lv, (m, u) in zip(levels, honest_levels(estimates, m_floor, u_floor), strict=True):
            lv["m_probability"], lv["u_probability"] = m, u


def _level_parameters(settings: dict[str, Any]) -> list[LevelParameters]:
    out: list[LevelParameters] = []
    for comp in settings["comparisons"]:
        for level in comp["comparison_levels"]:
            m, u = level.get("m_probability"), level.get("u_probability")
            weight = 0.0 if m is None or u is None else math.log2(m / u)
            out.append(
                LevelParameters(
                    comp["output_column_name"], level.get("label_for_charts", ""), m, u, weight
                )
            )
    return out
