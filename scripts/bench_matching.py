"""Benchmark the matching engine on generated standardized citizens.

(a) train + predict + cluster on N records: seconds per step and peak RSS;
(b) incremental matching of ``--new`` records against the N: p50/p95 latency with an
    in-memory candidate index (swap ``InMemoryCandidateIndex`` for the store's
    blocking-key table later: the matcher only needs ``CandidateSource``), and
    Splink's own per-record path (``linker.inference.predict_between``) on a
    sample of the same records, with the ratio.

Usage: .venv/bin/python scripts/bench_matching.py --n 100000
The generator is the test one (tests/matching/synthetic.py) until ``mdm synth`` lands.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from itertools import islice
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.matching.synthetic import iter_people  # noqa: E402

from mdm.matching import (  # noqa: E402
    IncrementalMatcher,
    InMemoryCandidateIndex,
    build_features,
    load_rules,
    predict_and_cluster,
    rows_to_arrow,
    tf_lookup_from_arrow,
    train,
)
from mdm.matching.training import make_linker  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--splink-sample", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    rules = load_rules("citizen")
    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")

    stream = iter_people(args.n + args.new, seed=2025)
    registry = ((u, s, std) for u, s, std, _ in islice(stream, args.n))

    t0 = time.perf_counter()
    trained = train(rules, registry, con=con)
    t_train = time.perf_counter() - t0
    print(f"(a) load+features+train: {t_train:.1f} s  steps={trained.report.step_seconds}")
    t0 = time.perf_counter()
    result = predict_and_cluster(rules, trained.settings, None, con=con)
    t_batch = time.perf_counter() - t0
    print(
        f"(a) predict+cluster: {t_batch:.1f} s  steps={result.stats['step_seconds']} "
        f"pairs={result.stats['scored_pairs']} clusters={len(result.clusters)} "
        f"candidates={len(result.candidates)}"
    )
    print(f"(a) total {t_train + t_batch:.1f} s, peak RSS {peak_rss_mb():.0f} MB")

    # (b) incremental
    new_rows = [build_features("citizen", u, s, std) for u, s, std, _ in stream]
    t0 = time.perf_counter()
    index = InMemoryCandidateIndex(rules)
    reader = con.sql("SELECT * FROM mdm_features").to_arrow_reader(100_000)
    for batch in reader:
        index.add_many(batch.to_pylist())
    print(f"(b) in-memory index built in {time.perf_counter() - t0:.1f} s")
    tf = tf_lookup_from_arrow(result.tf_table)
    matcher = IncrementalMatcher(trained.match_model(), tf, index)
    latencies = []
    for row in new_rows:
        start = time.perf_counter()
        matcher.match(row)
        latencies.append((time.perf_counter() - start) * 1000)
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    print(f"(b) incremental: p50 {p50:.2f} ms, p95 {p95:.2f} ms over {len(latencies)} records")

    linker = make_linker(
        con,
        "mdm_features",
        trained.settings,
        {c: f"mdm_tf_{c}" for c in rules.tf_columns},
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
    splink_ms.sort()
    s50 = statistics.median(splink_ms)
    print(
        f"(b) splink predict_between: p50 {s50:.1f} ms over {len(splink_ms)} records; "
        f"ratio splink/incremental p50 = {s50 / p50:.0f}x"
    )
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
