"""Crash test: kill -9 an ingest of 1,000,000 rows at random moments, resume each
time, and compare the final database with an uninterrupted run.

Both runs go to their own scratch databases on the local Postgres, cloned from one
migrated database. Compared, per table (source records, their versions, rejects,
ingest runs): the row count and an order-independent digest of every column that must
be identical (`_crash.INGEST_TABLES`). The kill loop and the digests are shared with
`crash_jobs.py`, which does the same for every long job at a smaller scale.

    .venv/bin/python scripts/crash_ingest.py --rows 1000000 --kills 5
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _crash
from _common import machine, replicate_csv, synth_citizen_file


def fingerprint(url: str) -> dict[str, object]:
    """Per table: rows and an order-independent digest (see `_crash.INGEST_TABLES`)."""
    return {
        name: f"{n:,} rows {d}"
        for name, (n, d) in _crash.digests(url, _crash.INGEST_TABLES).items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mdm-crash-ingest-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    source, mapping = synth_citizen_file(workdir)
    data = replicate_csv(source, workdir / f"citizens-{args.rows}.csv", args.rows)

    def command(label: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mdm",
            "ingest",
            "--source",
            "crash-province",
            "--mapping",
            str(mapping),
            str(data),
            "--json",
            "--report-dir",
            str(workdir / "reports" / label),
        ]

    with _crash.scratch("postgres", workdir, "mdm_crash_ingest") as dbs:
        empty = dbs.create("empty")
        env = {**os.environ, "MDM_DATABASE_URL": empty}
        _crash.timed_run(
            [sys.executable, "-m", "mdm", "db", "upgrade"], env, cwd=workdir, log=workdir / "log"
        )
        ref_url, url = dbs.create("ref", empty), dbs.create("run", empty)
        full = _crash.timed_run(
            command("ref"),
            {**os.environ, "MDM_DATABASE_URL": ref_url},
            cwd=workdir,
            log=workdir / "ref.log",
        )
        print(f"uninterrupted run: {args.rows:,} rows in {full:.0f} s")
        reference = fingerprint(ref_url)

        def committed() -> int:
            return int(_crash.scalar(url, "SELECT count(*) FROM source_records") or 0)

        log = _crash.kill_and_resume(
            command("run"),
            {**os.environ, "MDM_DATABASE_URL": url},
            cwd=workdir,
            log=workdir / "run.log",
            kills=args.kills,
            rng=rng,
            full_seconds=full,
            remaining=lambda: 1.0 - committed() / max(1, args.rows),
            min_delay=3.0,
            on_kill=lambda k: print(f"  kill -9 #{k}: {committed():,} source records committed"),
        )
        if log.error is not None:
            print(log.error)
            raise SystemExit(1)
        final = fingerprint(url)

    print(f"uninterrupted: {reference}")
    print(f"after {log.kills} kills and {len(log.runs)} runs: {final}")
    same = final == reference
    print("IDENTICAL" if same else "DIFFERENT")
    raise SystemExit(0 if same else 1)


if __name__ == "__main__":
    main()
