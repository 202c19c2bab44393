"""Train + predict + cluster on a few thousand generated records; then incremental."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import duckdb
import pytest

from mdm.matching.batch import BatchResult, predict_and_cluster, tf_lookup_from_arrow
from mdm.matching.deterministic import constraint_values, exclusive_values_clash
from mdm.matching.features import build_features
from mdm.matching.incremental import IncrementalMatcher, InMemoryCandidateIndex, blocking_keys
from mdm.matching.model import MatchModel
from mdm.matching.training import TrainedModel
from tests.matching.synthetic import Generated


@pytest.fixture(scope="module")
def batch(trained: TrainedModel, citizen_data: Generated) -> BatchResult:
    con = duckdb.connect()
    con.execute("SET threads = 2")
    return predict_and_cluster(trained.rules, trained.settings, citizen_data.records, con=con)


def _pairs(clusters: list[frozenset[str]]) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for c in clusters for p in combinations(c, 2)}  # type: ignore[misc]


def test_model_saves_and_reloads(trained: TrainedModel, tmp_path: Path) -> None:
    path = trained.save_model(tmp_path / "citizen.json")
    model = MatchModel.load(path, trained.rules)
    assert model.probability_two_random_records_match == pytest.approx(
        trained.report.probability_two_random_records_match
    )
    assert trained.report.pairs_per_prediction_rule["personal_id"] > 0
    assert all(lv.m_probability is not None for lv in trained.report.levels if lv.level != "null")


def test_clusters_are_accurate(batch: BatchResult, citizen_data: Generated) -> None:
    truth = citizen_data.truth
    by_entity: dict[int, set[str]] = {}
    for uid, entity in truth.items():
        by_entity.setdefault(entity, set()).add(uid)
    true_pairs = _pairs([frozenset(v) for v in by_entity.values() if len(v) > 1])
    found = _pairs(batch.clusters)
    precision = len(found & true_pairs) / max(len(found), 1)
    recall = len(found & true_pairs) / len(true_pairs)
    assert precision >= 0.98, precision
    assert recall >= 0.7, recall
    assert {e.method for e in batch.edges} >= {"model", "rule"}


def test_twins_and_parent_child_never_auto_linked(
    batch: BatchResult, citizen_data: Generated
) -> None:
    where = {m: i for i, c in enumerate(batch.clusters) for m in c}
    for a, b in [*citizen_data.twins, *citizen_data.parent_child]:
        assert a not in where or where.get(a) != where.get(b), (a, b)


def test_no_cluster_holds_two_personal_ids(
    batch: BatchResult, citizen_data: Generated, trained: TrainedModel
) -> None:
    """Two sure IDs more than one typo apart never share a cluster (an ID whose own
    digits contradict its record is in doubt and constrains nothing)."""
    rules = trained.rules
    (key,) = rules.deterministic.exclusive
    sure = {
        uid: value
        for uid, source, std in citizen_data.records
        if (
            value := constraint_values(rules, build_features("citizen", uid, source, std))[
                "personal_id"
            ]
        )
        is not None
    }
    held = 0
    for c in batch.clusters:
        values = sorted({sure[m] for m in c if m in sure})
        held += len(values) > 1
        for a, b in combinations(values, 2):
            assert not exclusive_values_clash(a, b, key.typo_edits), (a, b, sorted(c))
    assert len(sure) > 100 and held < len(batch.clusters)


def test_candidates_carry_explanations(batch: BatchResult, trained: TrainedModel) -> None:
    names = {c.name for c in trained.rules.comparisons}
    scored = [c for c in batch.candidates if c.match_weight is not None]
    assert scored
    for cand in scored:
        assert set(cand.weights) == names
        assert cand.match_weight >= trained.rules.thresholds.review_weight or cand.method != "model"


def test_incremental_matches_batch_decisions(
    batch: BatchResult, trained: TrainedModel, citizen_data: Generated
) -> None:
    rules = trained.rules
    rows = [build_features("citizen", u, s, std) for u, s, std in citizen_data.records]
    new, existing = rows[::10], [r for i, r in enumerate(rows) if i % 10]
    index = InMemoryCandidateIndex(rules)
    index.add_many(existing)
    matcher = IncrementalMatcher(trained.match_model(), tf_lookup_from_arrow(batch.tf_table), index)
    auto_edges = {(min(e.left, e.right), max(e.left, e.right)) for e in batch.edges}
    checked = 0
    for row in new:
        assert blocking_keys(row, rules) == blocking_keys(dict(row), rules)
        for cand in matcher.match(row):
            pair: Any = tuple(sorted((str(row["unique_id"]), cand.unique_id)))
            if cand.decision == "auto_link" and cand.method == "model":
                # batch: either an accepted edge or refused by a cluster constraint
                refused = {(min(a, b), max(a, b)) for a, b, *_ in batch.stats["refused"]}
                assert pair in auto_edges or pair in refused
                checked += 1
    assert checked > 10
