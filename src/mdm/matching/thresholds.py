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

The result is saved in the model file (:data:`THRESHOLDS_KEY`) beside what it was
derived from, and :class:`~mdm.matching.model.MatchModel` applies it: retraining
re-derives it, so thresholds follow the model instead of drifting from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from itertools import groupby
from typing import Any

import duckdb

from mdm.matching.linker import THRESHOLDS_KEY, make_linker, scored_pairs_sql
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
    guard or a rule decides, which stewards see too)."""
    ordered = sorted(pairs, key=lambda p: -p[0])
    # whole groups of one probability at a time: a threshold links all of a tie
    total, count, auto = 0.0, 0, 1.0
    for p, group in groupby(ordered, key=lambda pair: pair[0]):
        size = sum(1 for _ in group)
        if (total + p * size) / (count + size) < precision_target:
            break
        total, count, auto = total + p * size, count + size, p
    auto = max(auto, auto_floor)
    linked = [p for p, _l, _r in ordered if p >= auto]
    expected = sum(linked) / len(linked) if linked else 1.0
    budget = review_load * max(n_records, 1)
    seen: set[str] = set()
    review = auto
    for p, left, right in ordered if band is None else sorted(band, key=lambda q: -q[0]):
        if p >= auto:
            continue
        if p < review_floor:
            break
        grown = len(seen) + (left not in seen) + (right not in seen)
        if grown > budget:
            break
        seen.update((left, right))
        review = p
    review = max(min(review, auto), review_floor)
    if review >= auto:  # the band must exist: just below the auto-link threshold
        review = max(review_floor, auto * 0.999)
    return DerivedThresholds(
        auto_link=auto,
        review=review,
        precision_target=precision_target,
        review_load=review_load,
        expected_precision=expected,
        linked_pairs=len(linked),
        expected_false_links=sum(1.0 - p for p in linked),
        review_share=len(seen) / max(n_records, 1),
    )


def derive_thresholds(
    rules: MatchingRules,
    settings: dict[str, Any],
    con: duckdb.DuckDBPyConnection,
    table: str = "mdm_features",
) -> DerivedThresholds | None:
    """Score the training data ``table`` with the trained model ``settings`` and
    choose the thresholds the rules' targets ask for; saved in ``settings``.
    ``None`` (and nothing saved) when the rules state fixed thresholds."""
    th = rules.thresholds
    if th.precision_target is None:
        return None
    tf_names = compute_tf_tables(con, table, rules.tf_columns)
    linker = make_linker(con, table, settings, tf_names)
    predictions = linker.inference.predict(
        threshold_match_probability=th.review, warning_mode="never"
    )
    # the pairs the model decides: not those a guard forbids, nor those sharing a
    # same-key rule's key (the rule links or refuses them, whatever they score)
    decided_by_rule = " OR ".join(
        "(" + " AND ".join(f'l."{c}" = r."{c}"' for c in rule.key) + ")"
        for rule in rules.deterministic.same_key
    )
    try:
        scored = con.sql(
            "SELECT s.match_probability, s.unique_id_l, s.unique_id_r, "
            f"s.guard IS NULL AND NOT coalesce({decided_by_rule or 'FALSE'}, FALSE) FROM ("
            + scored_pairs_sql(rules, predictions.physical_name, table, "NULL AS none")
            + f') s JOIN "{table}" l ON l.unique_id = s.unique_id_l '
            f'JOIN "{table}" r ON r.unique_id = s.unique_id_r'
        ).fetchall()
    finally:
        predictions.drop_table_from_database_and_remove_from_cache()
    row = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    derived = choose_thresholds(
        ((float(p), str(a), str(b)) for p, a, b, model in scored if model),
        int(row[0]) if row else 0,
        band=[(float(p), str(a), str(b)) for p, a, b, _model in scored],
        precision_target=th.precision_target,
        review_load=th.review_load,
        auto_floor=th.auto_link,
        review_floor=th.review,
    )
    settings[THRESHOLDS_KEY] = derived.as_dict()
    return derived
