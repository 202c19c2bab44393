"""The Spark backend decides exactly what the DuckDB backend decides.

10,000 generated citizens (with twins and same-name parent/child pairs), the
session's trained model, a few steward decisions: ``predict_and_cluster`` on
DuckDB and on Spark (Splink's ``SparkAPI``, local mode) must give the same
automatic links, the same clusters, the same review candidates (and why each is
one), the same refused links, and match probabilities and per-comparison weights
equal to 1e-6.

Needs pyspark and Java (the ``spark`` extra, installed by ``scripts/bootstrap``);
skipped without them, except under ``CI=true`` where their absence fails.
"""

from __future__ import annotations

import math
import pathlib
import sys
import time
from typing import Any

import duckdb
import pytest

from mdm.exceptions import ConfigError
from mdm.matching.batch import BatchResult, predict_and_cluster
from mdm.matching.rules import Level
from mdm.matching.spark import (
    SparkOptions,
    SparkUnavailable,
    check_staging,
    parse_conf,
    require_spark,
    spark_settings,
)
from mdm.matching.training import TrainedModel
from tests.matching.synthetic import Generated, generate

TOL = 1e-6


@pytest.fixture(scope="module")
def data() -> Generated:
    return generate(10_000, seed=23, n_twins=25)


@pytest.fixture(scope="module")
def decisions(data: Generated) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Steward decisions: two must-links across true entities, two cannot-links inside."""
    by_entity: dict[int, list[str]] = {}
    for uid, entity in data.truth.items():
        by_entity.setdefault(entity, []).append(uid)
    groups = [sorted(ids) for ids in by_entity.values() if len(ids) >= 2]
    must = [(groups[0][0], groups[1][0]), (groups[2][0], groups[3][0])]
    cannot = [(groups[4][0], groups[4][1]), (groups[5][0], groups[5][1])]
    return must, cannot


def _run(
    trained: TrainedModel, data: Generated, decisions: Any, **backend: Any
) -> tuple[BatchResult, float]:
    con = duckdb.connect()
    con.execute("SET threads = 2")
    must, cannot = decisions
    t0 = time.perf_counter()
    result = predict_and_cluster(
        trained.rules,
        trained.settings,
        data.records,
        con=con,
        must_link=must,
        cannot_link=cannot,
        **backend,
    )
    seconds = time.perf_counter() - t0
    con.close()
    return result, seconds


@pytest.fixture(scope="module")
def duck(trained: TrainedModel, data: Generated, decisions: Any) -> BatchResult:
    return _run(trained, data, decisions)[0]


@pytest.fixture(scope="module")
def on_spark(
    trained: TrainedModel, data: Generated, decisions: Any, spark: Any, tmp_path_factory: Any
) -> BatchResult:
    result, seconds = _run(
        trained,
        data,
        decisions,
        backend="spark",
        spark=spark,
        spark_staging=tmp_path_factory.mktemp("spark-staging"),
    )
    print(f"\nspark predict_and_cluster on {len(data.records):,} records: {seconds:.1f}s")
    return result


def test_spark_settings_change_only_the_sql(trained: TrainedModel) -> None:
    translated = spark_settings(trained.rules, trained.settings)
    assert translated["sql_dialect"] == "spark"
    for comp, saved, rule in zip(
        translated["comparisons"],
        trained.settings["comparisons"],
        trained.rules.comparisons,
        strict=True,
    ):
        for new, old, level in zip(
            comp["comparison_levels"], saved["comparison_levels"], rule.levels, strict=True
        ):
            assert {k: v for k, v in new.items() if k != "sql_condition"} == {
                k: v for k, v in old.items() if k != "sql_condition"
            }
            assert new["sql_condition"] == level.sql("spark")
            assert '"' not in new["sql_condition"]
    assert len(translated["blocking_rules_to_generate_predictions"]) == len(
        trained.rules.blocking.prediction
    )
    for rule in translated["blocking_rules_to_generate_predictions"]:
        assert '"' not in rule["blocking_rule"] and "`" in rule["blocking_rule"]


def test_spark_sql_of_every_predicate() -> None:
    level = Level.model_validate(
        {
            "when": [
                {"exact": "a"},
                {"cross": ["b", "c"]},
                {"jaro_winkler": "d", "min": 0.94},
                {"jaro": "d", "min": 0.9},
                {"levenshtein": "e", "max": 2},
                {"damerau_levenshtein": "f", "max": 1},
                {"abs_diff": "g", "max": 1},
                {"either_true": "h"},
            ]
        }
    )
    assert level.sql("spark") == (
        "`a_l` = `a_r` AND `b_l` = `c_r` AND mdm_jaro_winkler_similarity(`d_l`, `d_r`) >= 0.94"
        " AND mdm_jaro_similarity(`d_l`, `d_r`) >= 0.9 AND levenshtein(`e_l`, `e_r`) <= 2"
        " AND damerau_levenshtein(`f_l`, `f_r`) <= 1 AND abs(`g_l` - `g_r`) <= 1"
        " AND (`h_l` OR `h_r`)"
    )
    assert level.sql() == level.sql("duckdb")
    assert level.sql().startswith('"a_l" = "a_r"')


def _edges(result: BatchResult) -> dict[tuple[str, str, str], float]:
    return {(*sorted((e.left, e.right)), e.method): e.score for e in result.edges}  # type: ignore[misc]


def test_same_links_and_clusters(duck: BatchResult, on_spark: BatchResult) -> None:
    assert duck.stats["scored_pairs"] == on_spark.stats["scored_pairs"]
    assert duck.stats["rule_pairs"] == on_spark.stats["rule_pairs"]
    mine, theirs = _edges(duck), _edges(on_spark)
    assert set(mine) == set(theirs)
    assert sum(1 for k in mine if k[2] == "model") > 1000  # a real workload
    for key, score in mine.items():
        other = theirs[key]
        assert (math.isinf(score) and math.isinf(other)) or abs(score - other) <= TOL, key
    assert set(duck.clusters) == set(on_spark.clusters)
    assert sorted(map(sorted, duck.stats["refused"])) == sorted(
        map(sorted, on_spark.stats["refused"])
    )


def test_same_review_candidates(duck: BatchResult, on_spark: BatchResult) -> None:
    mine = {(c.left, c.right): c for c in duck.candidates}
    theirs = {(c.left, c.right): c for c in on_spark.candidates}
    assert set(mine) == set(theirs)
    assert len(mine) > 20
    for key, c in mine.items():
        o = theirs[key]
        assert (c.method, c.forbidden) == (o.method, o.forbidden), key
        if c.match_probability is None:
            assert o.match_probability is None, key
            continue
        assert o.match_probability is not None and o.match_weight is not None
        assert abs(c.match_probability - o.match_probability) <= TOL, key
        assert abs((c.match_weight or 0.0) - o.match_weight) <= TOL, key
        assert set(c.weights) == set(o.weights)
        for comp, w in c.weights.items():
            assert abs(w - o.weights[comp]) <= TOL, (key, comp)


def test_same_term_frequencies(duck: BatchResult, on_spark: BatchResult) -> None:
    """What the store persists for the incremental scorer is what Spark scored with."""
    order = [("column_name", "ascending"), ("value", "ascending")]
    assert duck.tf_table.sort_by(order).equals(on_spark.tf_table.sort_by(order))


# ------------------------------------------------------------ clear refusals


def test_missing_pyspark_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark → ImportError
    with pytest.raises(SparkUnavailable, match=r"needs pyspark: pip install 'mdm\[spark\]'"):
        require_spark()


def test_missing_java_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SparkUnavailable, match="needs a Java runtime"):
        require_spark()


def test_cluster_needs_a_shared_staging_directory(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="--spark-staging"):
        check_staging(SparkOptions(master="spark://host:7077"))
    with pytest.raises(ConfigError, match="not a directory"):
        check_staging(SparkOptions(master="yarn", staging_dir=str(tmp_path / "missing")))
    check_staging(SparkOptions(master="yarn", staging_dir=str(tmp_path)))
    check_staging(SparkOptions(master="local[2]"))


def test_spark_conf_items() -> None:
    assert parse_conf(["spark.executor.memory=8g", " a.b = c=d "]) == {
        "spark.executor.memory": "8g",
        "a.b": "c=d",
    }
    with pytest.raises(ConfigError, match="key=value"):
        parse_conf(["spark.executor.memory"])
