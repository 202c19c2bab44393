"""Benchmark matching: the batch path and the incremental path through the store.

(a) train + predict + cluster on N generated standardized citizens (Splink on
    DuckDB, the production recipe from ``matching_rules/citizen.yaml``): seconds
    per step and peak RSS;
(b) incremental matching of ``--new`` records against the N through the store:
    the registry's feature rows and blocking keys are written to the real tables
    (``match_features``, ``blocking_keys``) of a migrated database, and each new
    record is scored by ``SqlCandidateSource`` (one indexed query) +
    ``IncrementalMatcher`` with the trained model and the stored term
    frequencies: p50 / p95 latency. In the same run, Splink's own
    ``linker.inference.predict_between`` for a sample of the same records against
    the same registry, and the ratio.

Records come from the standardized-record generator in tests/matching/synthetic.py
(the shape the standardizers produce; ingesting a million raw ``mdm synth`` rows
would benchmark the standardizers, not matching).

Usage: .venv/bin/python scripts/bench_matching.py --n 1000000 [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import duckdb
import psutil
from sqlalchemy import insert
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.matching.synthetic import iter_people  # noqa: E402

from mdm.matching import (  # noqa: E402
    IncrementalMatcher,
    blocking_keys,
    build_features,
    load_rules,
    predict_and_cluster,
    rows_to_arrow,
    tf_lookup_from_arrow,
    train,
)
from mdm.matching.linker import make_linker  # noqa: E402
from mdm.services.matching.online import SqlCandidateSource  # noqa: E402
from mdm.store import migrate  # noqa: E402
from mdm.store.db import make_engine  # noqa: E402
from mdm.store.models import (  # noqa: E402
    BlockingKey,
    MatchFeatures,
    SourceRecord,
    SourceSystem,
    TermFrequency,
)
from mdm.store.models.match import blocking_key_hashes  # noqa: E402
from mdm.store.repositories.entities import bulk_insert  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


def _store_registry(url: str, con: Any, tf_table: Any, rules: Any) -> float:
    """Write the registry's features, blocking keys and TF rows to the store."""
    started = time.perf_counter()
    migrate.upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        system = conn.execute(
            insert(SourceSystem.__table__)
            .values(name="bench", trust={})
            .returning(SourceSystem.__table__.c.id)
        ).scalar_one()
    reader = con.sql("SELECT * FROM mdm_features ORDER BY unique_id").to_arrow_reader(50_000)
    for batch in reader:
        rows = batch.to_pylist()
        with engine.begin() as conn:
            bulk_insert(
                conn,
                SourceRecord.__table__,  # type: ignore[arg-type]
                [
                    {
                        "id": int(r["unique_id"]),
                        "source_system_id": system,
                        "source_key": r["unique_id"],
                        "entity_type": "citizen",
                        "current_version": 1,
                        "status": "active",
                        "first_seen_at": now,
                        "updated_at": now,
                    }
                    for r in rows
                ],
            )
            bulk_insert(
                conn,
                MatchFeatures.__table__,  # type: ignore[arg-type]
                [
                    {
                        "source_record_id": int(r["unique_id"]),
                        "entity_type": "citizen",
                        "record_version": 1,
                        "content_hash": "-",
                        "features": r,
                    }
                    for r in rows
                ],
            )
            bulk_insert(
                conn,
                BlockingKey.__table__,  # type: ignore[arg-type]
                [
                    {
                        "entity_type": "citizen",
                        "key_hash": h,
                        "source_record_id": int(r["unique_id"]),
                    }
                    for r in rows
                    for h in blocking_key_hashes("citizen", blocking_keys(r, rules))
                ],
            )
    with engine.begin() as conn:
        bulk_insert(
            conn,
            TermFrequency.__table__,  # type: ignore[arg-type]
            [
                {"entity_type": "citizen", "column_name": c, "value": v, "tf": tf}
                for c, v, tf in zip(
                    tf_table.column("column_name").to_pylist(),
                    tf_table.column("value").to_pylist(),
                    tf_table.column("tf").to_pylist(),
                    strict=True,
                )
            ],
        )
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE blocking_keys; ANALYZE match_features")
        else:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--splink-sample", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--database-url", default=None, help="empty database (default SQLite)")
    args = parser.parse_args()

    mem = psutil.virtual_memory().total / 2**30
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores "
        f"(DuckDB threads {args.threads}), {mem:.0f} GB RAM, load average "
        f"{os.getloadavg()[0]:.1f}; n={args.n:,} new={args.new:,}"
    )
    rules = load_rules("citizen")
    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")

    # unique ids are the source record ids the store will use (1..n, then n+1..)
    stream = iter_people(args.n + args.new, seed=2025)
    registry = ((str(i + 1), s, std) for i, (_u, s, std, _e) in enumerate(islice(stream, args.n)))

    t0 = time.perf_counter()
    trained = train(rules, registry, con=con)
    t_train = time.perf_counter() - t0
    steps = {k: round(v, 1) for k, v in trained.report.step_seconds.items()}
    print(f"(a) load+features+train: {t_train:.1f} s  steps={steps}")
    t0 = time.perf_counter()
    result = predict_and_cluster(rules, trained.settings, None, con=con)
    t_batch = time.perf_counter() - t0
    steps = {k: round(v, 1) for k, v in result.stats["step_seconds"].items()}
    print(
        f"(a) predict+cluster: {t_batch:.1f} s  steps={steps} "
        f"pairs={result.stats['scored_pairs']:,} clusters={len(result.clusters):,} "
        f"candidates={len(result.candidates):,}"
    )
    print(f"(a) total {t_train + t_batch:.1f} s, peak RSS {peak_rss_mb():.0f} MB")

    # (b) incremental, through the store
    new_rows = [
        build_features("citizen", str(args.n + 1 + i), s, std)
        for i, (_u, s, std, _e) in enumerate(stream)
    ]
    with tempfile.TemporaryDirectory(prefix="mdm-bench-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        t_store = _store_registry(url, con, result.tf_table, rules)
        print(f"(b) registry written to the store ({url.split(':', 1)[0]}) in {t_store:.1f} s")
        engine = make_engine(url)
        model = trained.match_model()
        tf = tf_lookup_from_arrow(result.tf_table)
        latencies: list[float] = []
        decisions: dict[str, int] = {}
        with Session(engine) as session:
            source = SqlCandidateSource(session, "citizen")
            for row in new_rows[:20]:  # warm up caches and the connection
                IncrementalMatcher(model, tf, source).match(row)
            for row in new_rows:
                start = time.perf_counter()
                scored = IncrementalMatcher(model, tf, source).match(row)
                latencies.append((time.perf_counter() - start) * 1000)
                best = scored[0].decision if scored else "created"
                decisions[best] = decisions.get(best, 0) + 1
        engine.dispose()
    p50, p95 = statistics.median(latencies), _pct(latencies, 0.95)
    print(
        f"(b) incremental (store): p50 {p50:.2f} ms, p95 {p95:.2f} ms, max "
        f"{max(latencies):.1f} ms over {len(latencies):,} records; best decision {decisions}"
    )

    linker = make_linker(
        con, "mdm_features", trained.settings, {c: f"mdm_tf_{c}" for c in rules.tf_columns}
    )
    db_api = linker._db_api
    existing = db_api.register("mdm_features", table_name="bench_existing")
    splink_ms = []
    for i, row in enumerate(new_rows[: args.splink_sample]):
        start = time.perf_counter()
        new = db_api.register(rows_to_arrow("citizen", [row]), table_name=f"bench_new_{i}")
        out = linker.inference.predict_between(new, existing, warning_mode="never")
        out.as_duckdbpyrelation().fetchall()
        splink_ms.append((time.perf_counter() - start) * 1000)
    s50, s95 = statistics.median(splink_ms), _pct(splink_ms, 0.95)
    print(
        f"(b) splink predict_between: p50 {s50:.1f} ms, p95 {s95:.1f} ms over "
        f"{len(splink_ms)} of the same records; ratio splink/incremental p50 "
        f"{s50 / p50:.0f}x, p95 {s95 / p95:.0f}x"
    )
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
