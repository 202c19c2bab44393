""":func:`run_batch`: every active record of a type scored and clustered under the
stewards' must-link / cannot-link decisions.

The run keeps in the store what the incremental path needs (feature rows, blocking
keys, term frequencies), queues the review band as ``match_candidates`` and hands
the partition to the identity service. Idempotent and resumable: every step writes
only differences from what the store already holds, so a rerun on unchanged data
changes nothing and a run killed at any point is finished by running it again.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mdm.matching import (
    BatchResult,
    Candidate,
    IncrementalScorer,
    MatchModel,
    load_features,
    load_rules,
    predict_and_cluster,
    tf_lookup_from_arrow,
)
from mdm.matching.model import weight_to_prob
from mdm.matching.spark import SparkOptions, check_staging, start_session
from mdm.services.identity import apply_partition as identity_apply_partition
from mdm.services.matching.common import (
    ACTOR,
    METHOD_RANK,
    check_backend,
    duckdb_connection,
    file_sha256,
    load_model,
)
from mdm.services.matching.features import FeaturePass, write_features
from mdm.store.db import Engine, Session
from mdm.store.repositories import candidates as candidate_repo
from mdm.store.repositories import feature_index
from mdm.store.repositories.candidates import CandidateRow
from mdm.store.repositories.matching import finish_run, start_run, steward_pairs

PartitionFn = Callable[..., Any]
Pairs = list[tuple[int, int]]


@dataclass
class BatchSummary:
    entity_type: str
    run_id: int
    records: int = 0
    features_written: int = 0
    features_removed: int = 0
    features_reused: int = 0
    scored_pairs: int = 0
    clusters: int = 0
    records_in_clusters: int = 0
    links_by_method: dict[str, int] = field(default_factory=dict)
    refused_links: int = 0
    tf_changed: bool = False
    candidates: dict[str, int] = field(default_factory=dict)
    records_in_review: int = 0
    identity: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    step_seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _OwnedSession:
    """A Spark session the run started (and stops, once)."""

    session: Any = None

    def stop(self) -> None:
        if self.session is not None:
            self.session.stop()  # no JVM outlives the scoring
            self.session = None


@dataclass(frozen=True)
class _Scoring:
    """How the run scores: the backend and its resources."""

    backend: str
    threads: int | None
    memory_limit: str | None
    spark_session: Any
    spark_staging: Any
    owned: _OwnedSession


@dataclass(frozen=True)
class _Scored:
    features: FeaturePass
    must: Pairs
    cannot: Pairs
    result: BatchResult
    queued: dict[tuple[int, int], CandidateRow]


def run_batch(
    engine: Engine,
    entity_type: str,
    backend: str = "duckdb",
    *,
    rules_dir: Path | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    apply_partition: PartitionFn | None = None,
    spark: SparkOptions | None = None,
    spark_session: Any = None,
) -> BatchSummary:
    """Deduplicate every active record of ``entity_type``; see the module docstring.

    ``backend="spark"``: blocked pairs are generated and scored by Splink on Spark
    (``spark_session``, else one started from ``spark`` and stopped at the end);
    everything else, and what is written, is the DuckDB backend's.
    """
    check_backend(backend)
    started = time.perf_counter()
    model, path = load_model(load_rules(entity_type, rules_dir), rules_dir)
    spark_options = spark or SparkOptions()
    owned = _OwnedSession()
    if backend == "spark":
        check_staging(spark_options)
        if spark_session is None:
            spark_session = owned.session = start_session(spark_options)
    apply = apply_partition or identity_apply_partition
    run_id = start_run(engine, entity_type, "run", backend)
    summary = BatchSummary(entity_type, run_id)
    steps = summary.step_seconds
    try:
        scoring = _Scoring(
            backend, threads, memory_limit, spark_session, spark_options.staging_dir, owned
        )
        scored = _score(engine, entity_type, model, summary, scoring)
        result, queued = scored.result, scored.queued

        t0 = time.perf_counter()
        summary.tf_changed, tf_hash = _persist_tf(engine, entity_type, result.tf_table)
        steps["tf"] = time.perf_counter() - t0

        summary.scored_pairs = int(result.stats["scored_pairs"])
        summary.clusters = len(result.clusters)
        summary.records_in_clusters = sum(len(c) for c in result.clusters)
        summary.refused_links = len(result.stats["refused"])

        t0 = time.perf_counter()
        summary.candidates = candidate_repo.replace_review_band(
            engine, entity_type, queued, datetime.now(UTC)
        )
        summary.records_in_review = len({x for key in queued for x in key})
        steps["candidates"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        groups, methods = _partition(scored.features.record_ids, result, scored.must)
        summary.links_by_method = dict(Counter(m for m, _score in methods.values()))
        conflicts = [
            (int(c.left), int(c.right)) for c in result.candidates if c.method == "rule_conflict"
        ]
        with Session(engine, expire_on_commit=False) as session, session.begin():
            outcome = apply(
                session,
                entity_type,
                groups,
                methods=methods,
                actor=ACTOR,
                cannot_link=[*scored.cannot, *conflicts],
                # the default identity step reads beside its writes (its transaction
                # holds no entity writes before it); a substitute gets the plain call
                **({"reader": engine} if apply_partition is None else {}),
            )
        summary.identity = outcome.as_dict() if hasattr(outcome, "as_dict") else {}
        steps["identity"] = time.perf_counter() - t0
        summary.seconds = time.perf_counter() - started
        finish_run(
            engine,
            run_id,
            "completed",
            model_hash=file_sha256(path),
            tf_hash=tf_hash,
            counts=_json_safe(summary.as_dict()),
        )
        return summary
    except BaseException as exc:
        finish_run(engine, run_id, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    finally:
        owned.stop()


def _score(
    engine: Engine, entity_type: str, model: MatchModel, summary: BatchSummary, how: _Scoring
) -> _Scored:
    """The feature pass, then pairs scored and clustered in DuckDB (or Spark) under
    the stewards' decisions, and the review band with every pair's weights."""
    rules = model.rules  # with the thresholds training derived, if the rules ask for it
    steps = summary.step_seconds
    with tempfile.TemporaryDirectory(prefix="mdm-match-") as tmp:
        parquet = Path(tmp) / "features.parquet"
        fp = write_features(engine, entity_type, rules, parquet, persist=True)
        steps["features"] = fp.seconds
        summary.records = len(fp.record_ids)
        summary.features_written = fp.written
        summary.features_removed = fp.removed
        summary.features_reused = fp.reused
        with engine.connect() as conn:
            must, cannot = steward_pairs(conn, entity_type)
        con = duckdb_connection(how.threads, how.memory_limit)
        try:
            t0 = time.perf_counter()
            load_features(con, entity_type, str(parquet))
            steps["load"] = time.perf_counter() - t0
            result = predict_and_cluster(
                rules,
                model,
                None,
                con=con,
                must_link=[(str(a), str(b)) for a, b in must],
                cannot_link=[(str(a), str(b)) for a, b in cannot],
                backend="spark" if how.backend == "spark" else "duckdb",
                spark=how.spark_session,
                spark_staging=how.spark_staging,
            )
            steps.update({f"batch:{k}": v for k, v in result.stats["step_seconds"].items()})
            queued = _review_band(con, model, result, must, cannot)
        finally:
            con.close()
            how.owned.stop()
    return _Scored(fp, must, cannot, result, queued)


def _persist_tf(engine: Engine, entity_type: str, table: Any) -> tuple[bool, str]:
    """Replace the stored term frequencies when they changed; returns (changed, hash)."""
    digest = _tf_digest(table)
    return feature_index.replace_term_frequencies(engine, entity_type, table), digest


def _tf_digest(table: Any) -> str:
    """The run's ``tf_hash``, which tells an API process its loaded frequencies are
    stale (:func:`mdm.matching.tables.tf_digest`)."""
    from mdm.matching.tables import tf_digest

    return tf_digest(table)


def _score_missing(
    con: Any, model: MatchModel, tf: Mapping[str, Mapping[Any, float]], pairs: list[Candidate]
) -> dict[tuple[str, str], Candidate]:
    """Rule pairs the model did not put in the review band still need their weights
    (every queued pair explains itself): score them with the same model."""
    if not pairs:
        return {}
    from mdm.matching.tables import feature_rows

    by_id = feature_rows(con, (x for c in pairs for x in (c.left, c.right)))
    scorer = IncrementalScorer(model, tf)
    out: dict[tuple[str, str], Candidate] = {}
    for c in pairs:
        s = scorer.score(by_id[c.left], by_id[c.right])
        out[(c.left, c.right)] = Candidate(
            c.left, c.right, s.match_weight, s.match_probability, s.weights, c.method, c.forbidden
        )
    return out


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _review_band(
    con: Any, model: MatchModel, result: BatchResult, must: Pairs, cannot: Pairs
) -> dict[tuple[int, int], CandidateRow]:
    """Candidates for stewards: not already decided by a steward, not already in
    one entity, each with its per-comparison weights."""
    where = (result.clusters and {m: i for i, c in enumerate(result.clusters) for m in c}) or {}
    decided = {(min(a, b), max(a, b)) for a, b in (*must, *cannot)}
    keep: list[Candidate] = []
    for c in result.candidates:
        a, b = int(c.left), int(c.right)
        key = (min(a, b), max(a, b))
        if key in decided:
            continue
        if c.left in where and where.get(c.left) == where.get(c.right):
            continue
        keep.append(c)
    missing = [c for c in keep if c.match_weight is None]
    scored = _score_missing(con, model, tf_lookup_from_arrow(result.tf_table), missing)
    out: dict[tuple[int, int], CandidateRow] = {}
    for c in keep:
        full = scored.get((c.left, c.right), c)
        assert full.match_weight is not None and full.match_probability is not None
        a, b = int(c.left), int(c.right)
        key = (min(a, b), max(a, b))
        out[key] = CandidateRow(
            key[0],
            key[1],
            full.match_probability,
            full.match_weight,
            dict(full.weights),
            candidate_repo.candidate_reason(c.method, c.forbidden),
        )
    return out


def _partition(
    record_ids: list[int], result: BatchResult, must: Pairs
) -> tuple[list[list[int]], dict[int, tuple[str, float | None]]]:
    """Clusters plus singletons (every active record once), and per record the
    strongest accepted edge that put it in its cluster.

    Steward must-links always hold (DESIGN.md invariant 4): the clustering refuses
    a must-link that an exclusive key forbids (two personal IDs), but a steward has
    the last word, so groups joined by a must-link are united here.
    """
    best: dict[int, tuple[int, float]] = {}
    method_of: dict[int, tuple[str, float | None]] = {}
    for edge in result.edges:
        prob = weight_to_prob(edge.score) if math.isfinite(edge.score) else 1.0
        rank = (METHOD_RANK.get(edge.method, 0), prob)
        for node in (int(edge.left), int(edge.right)):
            if node not in best or rank > best[node]:
                best[node] = rank
                method_of[node] = (edge.method, prob)
    active = set(record_ids)
    for a, b in must:
        if a in active and b in active:
            method_of[a] = method_of[b] = ("steward", 1.0)
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for c in result.clusters:
        first, *rest = (int(m) for m in c)
        for m in rest:
            union(first, m)
    for a, b in must:
        if a in active and b in active:
            union(a, b)
    members: dict[int, list[int]] = {}
    for r in record_ids:
        members.setdefault(find(r), []).append(r)
    groups = [sorted(g) for g in members.values()]
    methods: dict[int, tuple[str, float | None]] = {
        r: method_of.get(r, ("new", None)) for r in record_ids
    }
    return groups, methods
