"""Benchmark: the whole registry end to end on Postgres, from legacy files to golden records.

For each size: ``mdm synth`` writes citizen exports of ``--provinces`` former provinces
(``size / provinces`` records each; about a quarter of the people appear in several
provinces' systems, with the differences legacy systems have), then on a fresh
Postgres database, each stage as the real command in its own process:

    ingest  mdm ingest --manifest        (read, map, standardize, COPY)
    train   mdm match train --entity citizen
    match   mdm match run --entity citizen   (features, blocking, scoring, clustering,
                                              links, review candidates, entities)
    resolve mdm resolve                   (golden records by survivorship)

It prints each stage's wall time, records/s and peak RSS (the process and its
workers), the total, the database's peak-free size, and the matching accuracy
against the generator's ground truth (pairwise precision/recall of the automatic
links, as ``scripts/eval_matching.py``). Generating the files is timed apart: it is
not part of the registry's work.

    .venv/bin/python scripts/bench_e2e.py                          # 1,000,000 records
    .venv/bin/python scripts/bench_e2e.py --records 100000 300000 1000000 \\
        --results docs/bench/e2e.json
    .venv/bin/python scripts/plot_e2e.py docs/bench/e2e.json       # the PNG in docs/

Targets (issue 10) at 1,000,000 records on the 2-core machine: total <= 5 minutes,
peak RSS <= 8 GB, and the matching issue's accuracy held (precision >= 0.998,
recall >= 0.99).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    CpuSeconds,
    PeakRss,
    bench_postgres,
    machine,
    run_synth,
    scratch_postgres,
)
from eval_matching import evaluate

from mdm.store import migrate

STAGES = ("ingest", "train", "match", "resolve")


def run_stage(name: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """One ``mdm`` command in its own process: wall time, peak RSS, CPU seconds by
    process group (the command, its workers, Postgres), its stdout."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mdm", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    database = env["MDM_DATABASE_URL"].rsplit("/", 1)[1]
    with PeakRss(proc.pid) as rss, CpuSeconds(proc.pid, database) as cpu:
        out, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name}: mdm {' '.join(args)} failed:\n{err[-4000:]}")
    return {"seconds": seconds, "peak_rss": rss.peak, "cpu": cpu.totals(), "stdout": out}


def synth(out: Path, records: int, provinces: int, seed: int) -> float:
    if (out / "manifest.json").exists():
        return 0.0
    started = time.perf_counter()
    run_synth(
        out,
        provinces=provinces,
        citizens=records // provinces,
        seed=seed,
        organizations=1,
        dossiers=1,
    )
    return time.perf_counter() - started


def one_size(records: int, args: argparse.Namespace, workdir: Path, admin: str) -> dict[str, Any]:
    data = workdir / f"synth-{records}-{args.provinces}-{args.seed}"
    gen = synth(data, records, args.provinces, args.seed)
    print(f"\n== {records:,} citizen records, {args.provinces} former provinces", flush=True)
    if gen:
        print(f"generated the legacy exports in {gen:.1f} s (not counted below)")
    result: dict[str, Any] = {"records": records, "provinces": args.provinces, "stages": {}}
    result["postgres"] = args.postgres_label
    with scratch_postgres("mdm_bench_e2e", admin) as url:
        migrate.upgrade(url)
        env = {**os.environ, "MDM_DATABASE_URL": url, "MDM_LOG_LEVEL": "WARNING"}
        if args.rules_dir is not None:
            env["MDM_MATCHING_RULES_DIR"] = str(args.rules_dir)
        commands = {
            "ingest": ["ingest", "--manifest", str(data / "manifest.json"), "--json"],
            "train": ["match", "train", "--entity", "citizen"],
            "match": ["match", "run", "--entity", "citizen"],
            "resolve": ["resolve"],
        }
        total = 0.0
        peak = 0
        for stage in STAGES:
            r = run_stage(stage, commands[stage], env)
            total += r["seconds"]
            peak = max(peak, r["peak_rss"])
            result["stages"][stage] = {
                "seconds": r["seconds"],
                "peak_rss": r["peak_rss"],
                "cpu_seconds": {k: round(v, 1) for k, v in r["cpu"].items()},
            }
            print(
                f"  {stage:<8} {r['seconds']:8.1f} s  {records / r['seconds']:10,.0f} records/s"
                f"  peak RSS {r['peak_rss'] / 2**20:8,.0f} MiB  CPU s: "
                + ", ".join(f"{k} {v:,.1f}" for k, v in r["cpu"].items()),
                flush=True,
            )
            if stage in ("train", "match") and args.verbose:
                for line in r["stdout"].splitlines():
                    print(f"           | {line}")
        result["total_seconds"] = total
        result["peak_rss"] = peak
        print(
            f"  {'total':<8} {total:8.1f} s  {records / total:10,.0f} records/s"
            f"  peak RSS {peak / 2**20:8,.0f} MiB (largest stage)"
        )
        quality = evaluate(url, data, "citizen")
        result["accuracy"] = {
            k: quality[k]
            for k in (
                "active_records",
                "precision",
                "recall",
                "f1",
                "review_rate",
                "entities_wrongly_merged",
                "entities_split",
                "hard_negatives",
            )
        }
        hard = ", ".join(
            f"{kind} {v['linked']}/{v['pairs']}" for kind, v in quality["hard_negatives"].items()
        )
        print(
            f"  accuracy: precision {quality['precision']:.5f}  recall {quality['recall']:.5f}"
            f"  F1 {quality['f1']:.5f}  review band {quality['review_rate']:.2%}"
            f"  hard negatives linked: {hard or 'none in data'}"
        )
        if args.ceiling:
            import matching_ceiling

            ceiling = matching_ceiling.compute(url, data, args.rules_dir, "citizen")
            result["ceiling"] = ceiling
            print("  ceiling (the best any link rule over this evidence does):")
            for line in matching_ceiling.format_result(ceiling):
                print(f"    {line}")
    if not args.keep:
        import shutil

        shutil.rmtree(data, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--provinces", type=int, default=10)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument(
        "--verbose", action="store_true", help="print train's and match's own step timings"
    )
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="after the run, matching_ceiling.py's oracle on the same database (not timed)",
    )
    parser.add_argument(
        "--rules-dir", type=Path, default=None, help="MDM_MATCHING_RULES_DIR for the stages"
    )
    parser.add_argument(
        "--results", type=Path, default=None, help="append the figures (JSON) for plot_e2e.py"
    )
    parser.add_argument(
        "--shared-buffers",
        default=None,
        help="run on a Postgres cluster of the bench's own with this shared_buffers "
        "(e.g. 4GB; also effective_cache_size, and max_wal_size = 4GB as for a bulk load), "
        "sized as a deployment would size it; default: the machine's server as it is",
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mdm-bench-e2e-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.rules_dir is None:
        # Train into a scratch copy of the rules: the shipped directory's models/ must
        # not be overwritten by a benchmark.
        import shutil

        rules = workdir / "matching_rules"
        if not rules.exists():
            shutil.copytree(Path(__file__).resolve().parents[1] / "matching_rules", rules)
            shutil.rmtree(rules / "models", ignore_errors=True)
        args.rules_dir = rules
    print(f"machine: {machine()}")
    with bench_postgres(args.shared_buffers) as (admin, args.postgres_label):
        print(f"postgres: {args.postgres_label}")
        runs = [one_size(n, args, workdir, admin) for n in args.records]
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    if args.results is not None:
        existing: list[dict[str, Any]] = []
        if args.results.exists():
            existing = json.loads(args.results.read_text(encoding="utf-8"))
        for r in runs:
            r["at"] = stamp
            r["machine"] = machine()
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(existing + runs, indent=1), encoding="utf-8")
        print(f"\nfigures appended to {args.results}")
    print("targets at 1,000,000: total <= 300 s, peak RSS <= 8 GiB, precision >= 0.998,")
    print("                      recall >= 0.99")


if __name__ == "__main__":
    main()
