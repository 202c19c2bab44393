"""Benchmark: `mdm ingest` of 1,000,000 (and 3,000,000) citizen rows into Postgres.

Prints rows/s end to end (read, map, standardize, write with COPY, commit per chunk),
the CPU seconds of each process group (the ingest, its workers, Postgres)
and the peak RSS of the ingest process and its worker processes, with the machine.
Memory must stay flat whatever the file size: compare the 1M and 3M figures.

    .venv/bin/python scripts/bench_ingest.py --rows 1000000 3000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    CpuSeconds,
    PeakRss,
    machine,
    replicate_csv,
    scratch_postgres,
    synth_citizen_file,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mdm-bench-ingest-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    source, mapping = synth_citizen_file(workdir)
    for rows in args.rows:
        data = replicate_csv(source, workdir / f"citizens-{rows}.csv", rows)
        size_mb = data.stat().st_size / 2**20
        with scratch_postgres("mdm_bench_ingest") as url:
            cmd = [
                sys.executable,
                "-m",
                "mdm",
                "ingest",
                "--source",
                "bench-province",
                "--mapping",
                str(mapping),
                str(data),
                "--json",
                "--report-dir",
                str(workdir / "reports"),
            ]
            if args.workers:
                cmd += ["--workers", str(args.workers)]
            env = {**os.environ, "MDM_DATABASE_URL": url}
            subprocess.run(
                [sys.executable, "-m", "mdm", "db", "upgrade"],
                env=env,
                check=True,
                capture_output=True,
            )
            started = time.monotonic()
            proc = subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            with PeakRss(proc.pid) as rss, CpuSeconds(proc.pid, url.rsplit("/", 1)[1]) as cpu:
                out, err = proc.communicate()
            elapsed = time.monotonic() - started
            if proc.returncode != 0:
                raise SystemExit(err[-3000:])
            summary = json.loads(out)
        print(
            f"{rows:>9,} rows ({size_mb:,.0f} MiB CSV): {elapsed:7.1f} s wall, "
            f"{rows / elapsed:8,.0f} rows/s end to end; new {summary['new']:,}, "
            f"rejected {summary['rejected']:,}; peak RSS (ingest + workers) "
            f"{rss.peak / 2**20:,.0f} MiB"
        )
        spent = cpu.totals()
        print(
            f"{'':>9}  CPU seconds: "
            + ", ".join(f"{group} {secs:,.1f}" for group, secs in spent.items())
            + f"; {sum(spent.values()) / rows * 1e6:,.0f} µs a row in all"
        )


if __name__ == "__main__":
    main()
