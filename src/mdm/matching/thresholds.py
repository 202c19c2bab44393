"""Thresholds from a precision target and a steward load, not a number fitted on a seed.

The rules file states what the registry wants (``thresholds.precision_target``:
the share of automatic links that must be right; ``thresholds.review_load``: the
share of records a run may put before stewards). Training then reads, on the data
it was trained on, where the trained model meets them:

* **auto-link**: the lowest match probability t such that the pairs scoring at
  least t that the model decides (pairs a guard forbids and pairs sharing a
  same-key rule's key, which the rule decides, left out) have an expected
  precision, the mean of their match probabilities, of at least the target. A
  calibrated model's probability of a pair is the chance it is right, so this is
  the precision the links will have, as far as the model can tell. Never
  below ``auto_link`` (a floor: a pair the model finds likelier two people than
  one is never linked, whatever the mix of easy pairs around it).
* **review**: the lowest probability such that the records of the pairs between it
  and t (those a guard or a rule decides included: stewards see them too) stay
  within the load; never below ``review`` (a pair less likely than that
  is not worth a steward's time).

At scale, training scores a uniform sample of the candidate pairs
(``thresholds.derive_max_pairs``): every pair is kept with the same chance, so the
mean probability above a threshold, the expected precision, is estimated without
bias, and the review band is sized against the same share of the load. The
sample is drawn in the blocking join itself, so the pairs left out cost nothing.

The result is saved in the model file (:data:`THRESHOLDS_KEY`) beside what it was
derived from, and :class:`~mdm.matching.model.MatchModel` applies it: retraining
re-derives it, so thresholds follow the model instead of drifting from it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from itertools import groupby
from typing import Any

import duckdb

from mdm.matching.linker import THRESHOLDS_KEY, count_pairs, make_linker, scored_pairs_sql
from mdm.matching.rules import MatchingRules
from mdm.matching.tables import compute_tf_tables


@dataclass(frozen=True, slots=True)
class DerivedThresholds:
    auto_link: float  # match probability
    review: float
    precision_target: float
    review_load: float
    #: the model's expected precision of the links at ``auto_link`` (training data)
    expected_precision: float
    #: pairs the model would link at ``auto_link`` and their expected false links
    linked_pairs: int
    expected_false_links: float
    #: share of the training records in the review band (pairs in [review, auto_link))
    review_share: float
    #: share of the candidate pairs scored to derive them (1.0: all)
    pair_share: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_thresholds(
    pairs: Iterable[tuple[float, str, str]],
    n_records: int,
    *,
    precision_target: float,
    review_load: float,
    auto_floor: float,
    review_floor: float,
    band: Iterable[tuple[float, str, str]] | None = None,
) -> DerivedThresholds:
    """The thresholds for scored ``pairs`` ``(match probability, left id, right id)``
    (the pairs the model decides) over ``n_records`` records. ``band``: the pairs
    that would fill the review band (default ``pairs``; the caller may add those a
    guard or a rule decides, which stewards see too).

    The reference of :func:`derive_thresholds`, which computes the same in DuckDB:
    a threshold takes all of a tie, so both walk groups of one probability."""
    decided = sorted(pairs, key=lambda q: -q[0])
    total, count, auto = 0.0, 0, 1.0
    for p, group in groupby(decided, key=lambda q: q[0]):
        size = sum(1 for _ in group)
        if (total + p * size) / (count + size) < precision_target:
            break
        total, count, auto = total + p * size, count + size, p
    auto = max(auto, auto_floor)
    linked = [p for p, _l, _r in decided if p >= auto]
    # each record enters the band at its best pair below the auto-link threshold
    enters: dict[str, float] = {}
    for p, left, right in decided if band is None else band:
        if review_floor <= p < auto:
            for record in (left, right):
                if p > enters.get(record, -1.0):
                    enters[record] = p
    budget = review_load * max(n_records, 1)
    review, queued = auto, 0
    for p, tied in groupby(sorted(enters.values(), reverse=True)):
        size = sum(1 for _ in tied)
        if queued + size > budget:
            break
        queued, review = queued + size, p
    return _derived(
        auto,
        review,
        precision_target=precision_target,
        review_load=review_load,
        review_floor=review_floor,
        linked_pairs=len(linked),
        linked_sum=sum(linked),
        queued=queued,
        n_records=n_records,
    )


def _derived(
    auto: float,
    review: float,
    *,
    precision_target: float,
    review_load: float,
    review_floor: float,
    linked_pairs: int,
    linked_sum: float,
    queued: int,
    n_records: int,
    pair_share: float = 1.0,
) -> DerivedThresholds:
    # Each threshold is some pair's probability: floored to 1e-6, so that the same
    # pair scored by another engine (Spark; a last bit of rounding) falls the same side
    auto = math.floor(auto * 1e6) / 1e6
    review = math.floor(max(min(review, auto), review_floor) * 1e6) / 1e6
    if review >= auto:  # the band must exist: just below the auto-link threshold
        review = max(review_floor, auto * 0.999)
    return DerivedThresholds(
        auto_link=auto,
        review=review,
        precision_target=precision_target,
        review_load=review_load,
        expected_precision=linked_sum / linked_pairs if linked_pairs else 1.0,
        linked_pairs=round(linked_pairs / pair_share),
        expected_false_links=(linked_pairs - linked_sum) / pair_share,
        review_share=queued / pair_share / max(n_records, 1),
        pair_share=pair_share,
    )


def derive_thresholds(
    rules: MatchingRules,
    settings: dict[str, Any],
    con: duckdb.DuckDBPyConnection,
    table: str = "mdm_features",
    candidates: int | None = None,
) -> DerivedThresholds | None:
    """Score the training data ``table`` with the trained model ``settings`` and
    choose the thresholds the rules' targets ask for (what :func:`choose_thresholds`
    does, aggregated in DuckDB: no pair leaves it); saved in ``settings``.
    ``candidates``: the prediction rules' pair counts summed, when the caller has them.
    ``None`` (and nothing saved) when the rules state fixed thresholds."""
    th = rules.thresholds
    if th.precision_target is None:
        return None
    tf_names = compute_tf_tables(con, table, rules.tf_columns)
    if candidates is None:
        candidates = sum(count_pairs(con, table, cols) for cols in rules.blocking.prediction)
    share = min(1.0, th.derive_max_pairs / candidates) if candidates else 1.0
    linker = make_linker(con, table, sampled_pairs(settings, share), tf_names)
    predictions = linker.inference.predict(
        threshold_match_probability=th.review, warning_mode="never"
    )
    scored = "__mdm_threshold_pairs"
    try:
        pairs = _pairs_sql(rules, predictions.physical_name, table)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {scored} AS {pairs}")
    finally:
        predictions.drop_table_from_database_and_remove_from_cache()
    try:
        auto = _one(
            con,
            f"WITH g AS (SELECT p, count(*) AS n FROM {scored} WHERE decided GROUP BY p), "
            "c AS (SELECT p, sum(p * n) OVER w / sum(n) OVER w AS mean FROM g "
            "WINDOW w AS (ORDER BY p DESC)) "
            f"SELECT min(p) FROM c WHERE mean >= {float(th.precision_target)!r}",
        )
        auto = max(1.0 if auto is None else float(auto), th.auto_link)
        linked = con.execute(
            f"SELECT count(*), coalesce(sum(p), 0) FROM {scored} WHERE decided AND p >= ?",
            [auto],
        ).fetchone()
        n_records = int(_one(con, f'SELECT count(*) FROM "{table}"') or 0)
        budget = th.review_load * max(n_records, 1) * share
        band = con.execute(
            f"WITH b AS (SELECT p, l, r FROM {scored} WHERE p < ? AND p >= ?), "
            "e AS (SELECT id, max(p) AS p FROM (SELECT l AS id, p FROM b UNION ALL "
            "SELECT r, p FROM b) GROUP BY id), "
            "g AS (SELECT p, count(*) AS n FROM e GROUP BY p), "
            "c AS (SELECT p, sum(n) OVER (ORDER BY p DESC) AS queued FROM g) "
            "SELECT min(p), coalesce(max(queued), 0) FROM c WHERE queued <= ?",
            [auto, th.review, budget],
        ).fetchone()
    finally:
        con.execute(f"DROP TABLE IF EXISTS {scored}")
    assert linked is not None and band is not None
    derived = _derived(
        auto,
        auto if band[0] is None else float(band[0]),
        precision_target=th.precision_target,
        review_load=th.review_load,
        review_floor=th.review,
        linked_pairs=int(linked[0]),
        linked_sum=float(linked[1]),
        queued=int(band[1]),
        n_records=n_records,
        pair_share=share,
    )
    settings[THRESHOLDS_KEY] = derived.as_dict()
    return derived


def sampled_pairs(settings: dict[str, Any], share: float) -> dict[str, Any]:
    """``settings`` whose prediction blocking keeps each candidate pair with chance
    ``share``, decided by a hash of the pair (either order): a pair two rules both
    find is kept or left out by both, as Splink counts it once."""
    if share >= 1.0:
        return settings
    keep = max(1, int(share * 1_000_000))
    sample = (
        "hash(least(l.unique_id, r.unique_id), greatest(l.unique_id, r.unique_id)) "
        f"% 1000000 < {keep}"
    )
    rules = []
    for rule in settings.get("blocking_rules_to_generate_predictions", []):
        sql = rule["blocking_rule"] if isinstance(rule, dict) else str(rule)
        rules.append(
            {**(rule if isinstance(rule, dict) else {}), "blocking_rule": f"({sql}) AND {sample}"}
        )
    return {**settings, "blocking_rules_to_generate_predictions": rules}


def _pairs_sql(rules: MatchingRules, predictions: str, table: str) -> str:
    """Every scored pair: ``p``, ``l``, ``r`` and ``decided`` (the model decides it:
    no guard forbids it and it shares no same-key rule's key, which the rule decides)."""
    by_rule = " OR ".join(
        "(" + " AND ".join(f'l."{c}" = r."{c}"' for c in rule.key) + ")"
        for rule in rules.deterministic.same_key
    )
    return (
        "SELECT s.match_probability AS p, s.unique_id_l AS l, s.unique_id_r AS r, "
        f"s.guard IS NULL AND NOT coalesce({by_rule or 'FALSE'}, FALSE) AS decided FROM ("
        + scored_pairs_sql(rules, predictions, table, "NULL AS none")
        + f') s JOIN "{table}" l ON l.unique_id = s.unique_id_l '
        f'JOIN "{table}" r ON r.unique_id = s.unique_id_r'
    )


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    return row[0] if row else None
