"""Batch matching: Splink predict + deterministic rules + constrained clustering.

Input is a feature source (see :mod:`mdm.matching.tables`): the store streams
``(unique_id, source_system, standardized)`` rows, or hands over parquet/Arrow, and
they land in a DuckDB table; no Python dict per record survives the load.

Output (:class:`BatchResult`):

* ``clusters``: sets of record ids that are one entity (records in none are alone);
* ``edges``: the links that built them, each with its method (``steward``, ``rule``,
  ``model``) and score (match weight; ``inf`` for rules and stewards);
* ``candidates``: pairs for the review queue, each with its match weight and the
  per-comparison weights that explain it, and why it is not an automatic link;
* ``tf_table``: the term frequencies used, ``(column_name, value, tf)``, for the
  store to persist so that the incremental scorer uses the same values.

Pairs scoring at least ``thresholds.auto_link`` become edges unless a constraint
forbids them (they are then candidates with ``forbidden`` set). Pairs in
``[review, auto_link)`` are candidates unless the clustering already put both
records in one entity.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa

from mdm.matching.clustering import ClusterResult, Edge, cluster
from mdm.matching.deterministic import (
    RulePair,
    constraint_values,
    decide_groups,
    exclusive_conflict,
    worth_review,
)
from mdm.matching.features import FeatureValue
from mdm.matching.linker import make_linker, scored_pairs_sql
from mdm.matching.model import MatchModel
from mdm.matching.rules import MatchingRules
from mdm.matching.tables import (
    FeatureSource,
    compute_tf_tables,
    load_features,
    tf_tables_to_arrow,
)

Backend = Literal["duckdb", "spark"]


@dataclass(frozen=True, slots=True)
class Candidate:
    left: str
    right: str
    match_weight: float | None
    match_probability: float | None
    weights: dict[str, float]
    method: str  # "model", "rule_conflict", "rule_review"
    forbidden: str | None = None


@dataclass
class BatchResult:
    clusters: list[frozenset[str]]
    edges: list[Edge]
    candidates: list[Candidate]
    tf_table: pa.Table
    stats: dict[str, Any] = field(default_factory=dict)


def _model_settings(model: MatchModel | dict[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(model, MatchModel):
        return model.settings
    if isinstance(model, dict):
        return model
    loaded: dict[str, Any] = json.loads(Path(model).read_text(encoding="utf-8"))
    return loaded


def _iter_rows(table: pa.Table) -> Iterator[dict[str, Any]]:
    for batch in table.to_batches(max_chunksize=65_536):
        yield from batch.to_pylist()


def _rule_groups(
    con: duckdb.DuckDBPyConnection, rules: MatchingRules, table: str
) -> Iterator[list[dict[str, FeatureValue]]]:
    """Groups of rows sharing a same-key rule key (only groups of two or more)."""
    for rule in rules.deterministic.same_key:
        cols = list(dict.fromkeys(["unique_id", *rule.columns]))
        key = ", ".join(f'"{c}"' for c in rule.key)
        not_null = " AND ".join(f'"{c}" IS NOT NULL' for c in rule.key)
        select = ", ".join(f't."{c}"' for c in cols)
        rows = con.sql(
            f'SELECT {select} FROM "{table}" t JOIN ('
            f'  SELECT {key} FROM "{table}" WHERE {not_null} GROUP BY {key} HAVING count(*) > 1'
            f") g USING ({key}) ORDER BY {', '.join(f't.{chr(34)}{c}{chr(34)}' for c in rule.key)}"
        ).to_arrow_table()
        group: list[dict[str, FeatureValue]] = []
        current: tuple[Any, ...] | None = None
        for row in _iter_rows(rows):
            k = tuple(row[c] for c in rule.key)
            if k != current and group:
                yield group
                group = []
            current = k
            group.append(row)
        if group:
            yield group


def _exclusive_values(
    con: duckdb.DuckDBPyConnection, rules: MatchingRules, table: str, ids: set[str]
) -> dict[str, dict[str, Any]]:
    cols = rules.deterministic.constrained_columns
    if not cols or not ids:
        return {}
    rows = _rows_of(con, table, ids, cols)
    return {uid: constraint_values(rules, r) for uid, r in rows.items()}


def _rows_of(
    con: duckdb.DuckDBPyConnection, table: str, ids: Iterable[str], cols: list[str]
) -> dict[str, dict[str, Any]]:
    """``cols`` of the rows of ``table`` whose ``unique_id`` is in ``ids``, by id."""
    con.register("__mdm_ids", pa.table({"unique_id": pa.array(sorted(ids), pa.string())}))
    try:
        select = ", ".join(f't."{c}"' for c in cols)
        rows = con.sql(
            f'SELECT t.unique_id, {select} FROM "{table}" t JOIN __mdm_ids USING (unique_id)'
        ).to_arrow_table()
    finally:
        con.unregister("__mdm_ids")
    return {str(r["unique_id"]): r for r in _iter_rows(rows)}


def predict_and_cluster(
    rules: MatchingRules,
    model: MatchModel | dict[str, Any] | str | Path,
    source: FeatureSource | None,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    table: str = "mdm_features",
    must_link: Iterable[tuple[str, str]] = (),
    cannot_link: Iterable[tuple[str, str]] = (),
    backend: Backend = "duckdb",
    spark: Any = None,
    spark_staging: str | Path | None = None,
) -> BatchResult:
    """Score every blocked pair, apply the rules and cluster under constraints.

    ``must_link``/``cannot_link`` are the steward decisions (record-id pairs); they
    are obeyed absolutely (a must-link that contradicts a cannot-link is refused and
    reported in ``stats["refused"]`` rather than resolved by the machine).

    ``backend="spark"`` generates and scores the blocked pairs with Splink on the
    SparkSession ``spark`` (see :mod:`mdm.matching.spark`), staging Parquet in a
    fresh directory under ``spark_staging`` (default: the system's temporary
    directory; it must be visible to the executors); all the rest is the same.
    """
    if backend not in ("duckdb", "spark"):
        raise ValueError(f"unknown backend {backend!r}; expected duckdb or spark")
    if backend == "spark" and spark is None:
        raise ValueError("backend 'spark' needs a SparkSession (spark=...)")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    con = con if con is not None else duckdb.connect()
    if source is not None:
        load_features(con, rules.entity_type, source, table)
    timings["load"] = time.perf_counter() - started

    t0 = time.perf_counter()
    scored = _score(con, rules, model, table, backend, spark, spark_staging)
    timings["predict"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rule_pairs: list[RulePair] = list(decide_groups(rules, _rule_groups(con, rules, table)))
    timings["rules"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    auto_w = rules.thresholds.auto_link_weight
    model_pairs, guarded = _model_pairs(rules, scored)
    conflicts = [(p.left, p.right) for p in rule_pairs if p.decision.outcome == "conflict"]
    edges = [
        Edge(p.left, p.right, math.inf, "rule") for p in rule_pairs if p.decision.outcome == "link"
    ]
    edges += [
        Edge(c.left, c.right, c.match_weight or 0.0, "model")
        for key, c in model_pairs.items()
        if c.match_weight is not None and c.match_weight >= auto_w and key not in guarded
    ]
    must = list(must_link)
    nodes = {n for e in edges for n in (e.left, e.right)} | {n for p in must for n in p}
    exclusive = _exclusive_values(con, rules, table, nodes)
    result = cluster(
        edges,
        must_link=must,
        cannot_link=[*cannot_link, *conflicts],
        exclusive=exclusive,
        max_gap={g.column: g.max for g in rules.deterministic.max_gap},
        typo_edits={k.column: k.typo_edits for k in rules.deterministic.exclusive},
    )
    candidates = _model_candidates(model_pairs, guarded, result, auto_w)
    not_queued = _drop_unexplainable(con, rules, table, candidates)
    for pair in rule_pairs:
        if pair.decision.outcome == "link":
            continue
        key = (pair.left, pair.right)
        forbidden = f"rule:{pair.decision.rule}" if pair.decision.outcome == "conflict" else None
        base = model_pairs.get(key) or Candidate(key[0], key[1], None, None, {}, "model")
        candidates[key] = _with(base, method=pair.decision.method, forbidden=forbidden)
    timings["cluster"] = time.perf_counter() - t0
    return BatchResult(
        clusters=result.clusters,
        edges=result.accepted,
        candidates=list(candidates.values()),
        tf_table=tf_tables_to_arrow(con, rules.tf_columns),
        stats={
            "scored_pairs": len(model_pairs),
            "rule_pairs": len(rule_pairs),
            "refused": [(e.left, e.right, e.method, why) for e, why in result.refused],
            # refused pairs no clerical slip explains, by reason: not queued for review
            "not_queued": not_queued,
            "seconds": time.perf_counter() - started,
            "step_seconds": timings,
        },
    )


def _score(
    con: duckdb.DuckDBPyConnection,
    rules: MatchingRules,
    model: MatchModel | dict[str, Any] | str | Path,
    table: str,
    backend: Backend,
    spark: Any,
    spark_staging: str | Path | None,
) -> pa.Table:
    """Every blocked pair scoring at least the review edge, with its per-comparison
    weights (``w_<comparison>``) and the guard that forbids it (``guard``)."""
    tf_names = compute_tf_tables(con, table, rules.tf_columns)
    review_w = rules.thresholds.review_weight
    tf_comps = {c.name for c in rules.comparisons if any(lv.tf for lv in c.levels)}
    mw_cols = ", ".join(
        f'p."mw_{c}"' + (f' + p."mw_tf_adj_{c}"' if c in tf_comps else "") + f' AS "w_{c}"'
        for c in (c.name for c in rules.comparisons)
    )
    if backend == "spark":
        staging = Path(tempfile.mkdtemp(prefix="mdm-spark-", dir=spark_staging))
        try:
            found = _predict_on_spark(
                con, rules, _model_settings(model), table, tf_names, review_w, spark, staging
            )
            return con.sql(scored_pairs_sql(rules, found, table, mw_cols)).to_arrow_table()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    linker = make_linker(con, table, _model_settings(model), tf_names)
    predictions = linker.inference.predict(threshold_match_weight=review_w, warning_mode="never")
    scored = con.sql(
        scored_pairs_sql(rules, predictions.physical_name, table, mw_cols)
    ).to_arrow_table()
    predictions.drop_table_from_database_and_remove_from_cache()
    return scored


def _model_pairs(
    rules: MatchingRules, scored: pa.Table
) -> tuple[dict[tuple[str, str], Candidate], dict[tuple[str, str], str]]:
    """The scored pairs as candidates, and the pairs a guard forbids to link
    automatically (with the guard)."""
    comparisons = [c.name for c in rules.comparisons]
    model_pairs: dict[tuple[str, str], Candidate] = {}
    guarded: dict[tuple[str, str], str] = {}
    for row in _iter_rows(scored):
        key = _key(str(row["unique_id_l"]), str(row["unique_id_r"]))
        if row["guard"] is not None:
            guarded[key] = str(row["guard"])
        model_pairs[key] = Candidate(
            key[0],
            key[1],
            float(row["match_weight"]),
            float(row["match_probability"]),
            {c: float(row[f"w_{c}"]) for c in comparisons},
            "model",
        )
    return model_pairs, guarded


def _model_candidates(
    model_pairs: dict[tuple[str, str], Candidate],
    guarded: dict[tuple[str, str], str],
    result: ClusterResult,
    auto_w: float,
) -> dict[tuple[str, str], Candidate]:
    """The scored pairs left for stewards: above the auto-link edge but forbidden (a
    guard, or refused by clustering), or in the band and not in one cluster."""
    where = result.cluster_of()

    def same_cluster(a: str, b: str) -> bool:
        return a in where and where.get(a) == where.get(b)

    candidates: dict[tuple[str, str], Candidate] = {}
    refused = {(min(e.left, e.right), max(e.left, e.right)): why for e, why in result.refused}
    for key, cand in model_pairs.items():
        if key in guarded and (cand.match_weight or 0.0) >= auto_w:
            candidates[key] = _with(cand, forbidden=guarded[key])
        elif key in refused:
            candidates[key] = _with(cand, forbidden=refused[key])
        elif (cand.match_weight or 0.0) < auto_w and not same_cluster(*key):
            # in the band a guard still says why it could never be linked
            candidates[key] = _with(cand, forbidden=guarded[key]) if key in guarded else cand
    return candidates


def _drop_unexplainable(
    con: duckdb.DuckDBPyConnection,
    rules: MatchingRules,
    table: str,
    candidates: dict[tuple[str, str], Candidate],
) -> dict[str, int]:
    """Remove the model's candidates that a constraint refuses (a guard, two valid
    IDs, a generation between birth years; at auto-link strength or in the band)
    and that :func:`~mdm.matching.deterministic.worth_review` does not send to a
    steward (their rows read from ``table``); returns how many per reason."""
    cols = list(
        dict.fromkeys(
            [*rules.deterministic.review_columns, *rules.deterministic.constrained_columns]
        )
    )
    refused = [
        k
        for k, c in candidates.items()
        if c.method == "model"
        and (c.forbidden is None or rules.deterministic.review_when(c.forbidden))
    ]
    if not cols or not refused or not rules.deterministic.review_columns:
        return {}
    by_id = _rows_of(con, table, {n for k in refused for n in k}, cols)
    dropped: dict[str, int] = {}
    for key in refused:
        left, right = by_id[key[0]], by_id[key[1]]
        # a band pair two valid IDs or a generation keep apart is refused as well
        reason = candidates[key].forbidden or exclusive_conflict(rules, left, right)
        if reason is None:
            continue
        if ":" not in reason:
            reason = f"exclusive:{reason}"
        if not worth_review(rules, reason, left, right):
            del candidates[key]
            dropped[reason] = dropped.get(reason, 0) + 1
    return dict(sorted(dropped.items()))


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _predict_on_spark(
    con: duckdb.DuckDBPyConnection,
    rules: MatchingRules,
    settings: dict[str, Any],
    table: str,
    tf_names: Mapping[str, str],
    review_w: float,
    spark: Any,
    staging: Path,
) -> str:
    """Features and TF tables out to Parquet, Splink on Spark, predictions back:
    returns a DuckDB relation (``read_parquet(...)``) over the scored pairs."""
    from mdm.matching.spark import spark_predictions

    features = staging / "features.parquet"
    con.execute(f"COPY \"{table}\" TO '{_sql_path(features)}' (FORMAT parquet)")
    tf_paths: dict[str, Path] = {}
    for column, name in tf_names.items():
        tf_paths[column] = staging / f"tf_{column}.parquet"
        con.execute(f"COPY \"{name}\" TO '{_sql_path(tf_paths[column])}' (FORMAT parquet)")
    out = spark_predictions(spark, rules, settings, features, tf_paths, review_w, staging)
    return f"read_parquet('{_sql_path(out / '*.parquet')}')"


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _with(c: Candidate, **changes: Any) -> Candidate:
    values: dict[str, Any] = {
        "left": c.left,
        "right": c.right,
        "match_weight": c.match_weight,
        "match_probability": c.match_probability,
        "weights": c.weights,
        "method": c.method,
        "forbidden": c.forbidden,
    }
    values.update(changes)
    return Candidate(**values)


def tf_lookup_from_arrow(table: pa.Table) -> Mapping[str, Mapping[Any, float]]:
    """The persisted ``(column_name, value, tf)`` table → lookups for the scorer."""
    out: dict[str, dict[Any, float]] = {}
    for row in _iter_rows(table):
        out.setdefault(row["column_name"], {})[row["value"]] = float(row["tf"])
    return out
