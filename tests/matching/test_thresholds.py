"""Thresholds derived from the rules' precision target and review load."""

from __future__ import annotations

import copy

import duckdb
import pytest

from mdm.exceptions import ConfigError
from mdm.matching.linker import THRESHOLDS_KEY, make_linker
from mdm.matching.model import MatchModel
from mdm.matching.tables import compute_tf_tables, load_features
from mdm.matching.thresholds import (
    _pairs_sql,
    choose_thresholds,
    derive_thresholds,
    sampled_pairs,
)
from mdm.matching.training import TrainedModel
from tests.matching.synthetic import Generated


def _pairs(probabilities: list[float]) -> list[tuple[float, str, str]]:
    return [(p, f"l{i}", f"r{i}") for i, p in enumerate(probabilities)]


def test_auto_link_is_the_lowest_threshold_whose_links_meet_the_target() -> None:
    # 990 sure pairs, then 10 at 0.9, 10 at 0.6: expected precision of everything at
    # or above 0.9 is (990 + 9) / 1000 = 0.999; adding the 0.6s drops it to 0.9950
    pairs = _pairs([1.0] * 990 + [0.9] * 10 + [0.6] * 10 + [0.3] * 5)
    derived = choose_thresholds(
        pairs,
        2_000,
        precision_target=0.998,
        review_load=0.5,
        auto_floor=0.5,
        review_floor=0.2,
    )
    assert derived.auto_link == 0.9
    assert derived.linked_pairs == 1_000
    assert derived.expected_precision == pytest.approx(0.999)
    assert derived.expected_false_links == pytest.approx(1.0)
    # the band below takes the 0.6s and the 0.3s: 15 pairs, 30 records of 2,000
    assert derived.review == 0.3
    assert derived.review_share == pytest.approx(30 / 2_000)
    # a stricter target stops above the 0.9s
    strict = choose_thresholds(
        pairs, 2_000, precision_target=0.9995, review_load=0.5, auto_floor=0.5, review_floor=0.2
    )
    assert strict.auto_link == 1.0


def test_the_review_band_is_as_deep_as_the_steward_load_allows() -> None:
    pairs = _pairs([1.0] * 100 + [0.7] * 10 + [0.4] * 10 + [0.25] * 10)
    # 1,000 records and a load of 2%: 20 records, the ten 0.7 pairs
    derived = choose_thresholds(
        pairs, 1_000, precision_target=0.99, review_load=0.02, auto_floor=0.8, review_floor=0.2
    )
    assert derived.auto_link == 1.0
    assert derived.review == 0.7
    assert derived.review_share == pytest.approx(0.02)


def test_floors_hold_whatever_the_mix_of_easy_pairs() -> None:
    # a million sure pairs would let a 0.3 pair through a cumulative target: the
    # floor says a pair likelier two people than one is never linked
    pairs = _pairs([1.0] * 10_000 + [0.3])
    derived = choose_thresholds(
        pairs, 20_000, precision_target=0.998, review_load=0.1, auto_floor=0.5, review_floor=0.2
    )
    assert derived.auto_link == 0.5
    assert 0.2 <= derived.review < derived.auto_link


def test_training_saves_the_thresholds_and_the_model_applies_them(
    trained: TrainedModel,
) -> None:
    rules = trained.rules
    assert rules.thresholds.precision_target is not None
    saved = trained.settings[THRESHOLDS_KEY]
    assert trained.report.thresholds == saved
    assert saved["precision_target"] == rules.thresholds.precision_target
    assert saved["expected_precision"] >= rules.thresholds.precision_target
    model = MatchModel.from_settings(trained.settings, rules)
    assert model.rules.thresholds.auto_link == saved["auto_link"] >= rules.thresholds.auto_link
    assert model.rules.thresholds.review == saved["review"] >= rules.thresholds.review
    # a model trained without them (or for another target) is refused: retrain
    bare = copy.deepcopy(trained.settings)
    del bare[THRESHOLDS_KEY]
    with pytest.raises(ConfigError, match="retrain"):
        MatchModel.from_settings(bare, rules)
    other = copy.deepcopy(trained.settings)
    other[THRESHOLDS_KEY]["precision_target"] = 0.99
    with pytest.raises(ConfigError, match="retrain"):
        MatchModel.from_settings(other, rules)


def test_the_duckdb_derivation_chooses_what_the_reference_does(
    trained: TrainedModel, citizen_data: Generated
) -> None:
    """derive_thresholds aggregates in DuckDB; choose_thresholds, over the same
    scored pairs, is the reference: the two agree."""
    rules = trained.rules
    con = duckdb.connect()
    load_features(con, "citizen", citizen_data.records)
    settings = copy.deepcopy(trained.settings)
    derived = derive_thresholds(rules, settings, con)
    assert derived is not None and settings[THRESHOLDS_KEY] == derived.as_dict()
    tf_names = compute_tf_tables(con, "mdm_features", rules.tf_columns)
    linker = make_linker(con, "mdm_features", settings, tf_names)
    predictions = linker.inference.predict(
        threshold_match_probability=rules.thresholds.review, warning_mode="never"
    )
    rows = con.sql(_pairs_sql(rules, predictions.physical_name, "mdm_features")).fetchall()
    assert any(not decided for *_, decided in rows)  # guards and same-key pairs exist
    reference = choose_thresholds(
        [(p, str(a), str(b)) for p, a, b, decided in rows if decided],
        len(citizen_data.records),
        band=[(p, str(a), str(b)) for p, a, b, _ in rows],
        precision_target=rules.thresholds.precision_target or 0.0,
        review_load=rules.thresholds.review_load,
        auto_floor=rules.thresholds.auto_link,
        review_floor=rules.thresholds.review,
    )
    assert derived.auto_link == reference.auto_link
    assert derived.review == reference.review
    assert derived.linked_pairs == reference.linked_pairs
    assert derived.expected_precision == pytest.approx(reference.expected_precision)
    assert derived.review_share == pytest.approx(reference.review_share)


def test_a_pair_sample_keeps_each_pair_whole_and_the_share_it_names(
    trained: TrainedModel, citizen_data: Generated
) -> None:
    """Past ``derive_max_pairs`` training scores a sample of the candidate pairs: a
    subset of the full set (a pair two blocking rules find is kept or dropped by
    both, never counted twice), of about the share asked for."""
    rules = trained.rules
    con = duckdb.connect()
    load_features(con, "citizen", citizen_data.records)
    tf_names = compute_tf_tables(con, "mdm_features", rules.tf_columns)

    def scored(settings: dict[str, object]) -> list[tuple[str, str]]:
        linker = make_linker(con, "mdm_features", settings, tf_names)
        predictions = linker.inference.predict(warning_mode="never")
        rows = con.sql(
            f"SELECT unique_id_l, unique_id_r FROM {predictions.physical_name}"
        ).fetchall()
        predictions.drop_table_from_database_and_remove_from_cache()
        return [(str(a), str(b)) for a, b in rows]

    full = scored(trained.settings)
    half = scored(sampled_pairs(trained.settings, 0.5))
    assert len(set(full)) == len(full) > 500
    assert len(set(half)) == len(half)
    assert set(half) < set(full)
    assert 0.42 < len(half) / len(full) < 0.58
    assert sampled_pairs(trained.settings, 1.0) is trained.settings


def test_derived_from_a_sample_the_figures_speak_for_every_pair(
    trained: TrainedModel, citizen_data: Generated
) -> None:
    """With a sample, the counts are scaled back to all pairs and the share is saved;
    the thresholds still meet the target on the pairs scored."""
    con = duckdb.connect()
    load_features(con, "citizen", citizen_data.records)
    rules = trained.rules
    full = derive_thresholds(rules, copy.deepcopy(trained.settings), con)
    few = rules.model_copy(
        update={"thresholds": rules.thresholds.model_copy(update={"derive_max_pairs": 500})}
    )
    sampled = derive_thresholds(few, copy.deepcopy(trained.settings), con)
    assert full is not None and sampled is not None
    assert full.pair_share == 1.0 and 0 < sampled.pair_share < 1
    assert sampled.expected_precision >= (rules.thresholds.precision_target or 1.0)
    # a few thousand sampled pairs estimate the linked count within a fifth
    assert sampled.linked_pairs == pytest.approx(full.linked_pairs, rel=0.2)
