"""Crash test: kill -9 an ingest of 1,000,000 rows at random moments, resume each
time, and compare the final database with an uninterrupted run.

Both runs go to their own scratch databases on the local Postgres. Compared: the
counts of source records, versions and rejects, and a digest over every (source key,
current version, status, version, content hash) and every reject (line, reasons).

    .venv/bin/python scripts/crash_ingest.py --rows 1000000 --kills 5
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, replicate_csv, scratch_postgres, synth_citizen_file


def fingerprint(url: str) -> dict[str, object]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    digest = hashlib.sha256()
    with engine.connect() as conn:
        counts = {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("source_records", "source_record_versions", "rejects")
        }
        rows = conn.execution_options(stream_results=True, yield_per=50_000).execute(
            text(
                "SELECT r.source_key, r.current_version, r.status, v.version, v.content_hash "
                "FROM source_records r JOIN source_record_versions v ON v.source_record_id = r.id "
                "ORDER BY r.source_key, v.version"
            )
        )
        for row in rows:
            digest.update("|".join(map(str, row)).encode())
        for row in conn.execute(
            text("SELECT location, source_key, reasons FROM rejects ORDER BY source_key, id")
        ):
            digest.update(repr(tuple(row)).encode())
    engine.dispose()
    return {**counts, "digest": digest.hexdigest()[:16]}


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

    def command(url: str) -> tuple[list[str], dict[str, str]]:
        cmd = [
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
            str(workdir / "reports"),
        ]
        return cmd, {**os.environ, "MDM_DATABASE_URL": url}

    with scratch_postgres("mdm_crash_ref") as ref_url, scratch_postgres("mdm_crash") as url:
        cmd, env = command(ref_url)
        started = time.monotonic()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        full = time.monotonic() - started
        print(f"uninterrupted run: {args.rows:,} rows in {full:.0f} s")
        reference = fingerprint(ref_url)

        cmd, env = command(url)
        subprocess.run(
            [sys.executable, "-m", "mdm", "db", "upgrade"], env=env, check=True, capture_output=True
        )
        kills = 0
        while kills < args.kills:
            proc = subprocess.Popen(
                cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            delay = rng.uniform(3, max(4.0, full / (args.kills + 1)))
            time.sleep(delay)
            if proc.poll() is not None:
                print("  the run finished before the kill; stopping the kill loop")
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            committed = fingerprint(url)["source_records"]
            print(f"  kill -9 #{kills} after {delay:.1f} s: {committed:,} source records committed")
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        final = fingerprint(url)

    print(f"uninterrupted: {reference}")
    print(f"after {kills} kills and resumes: {final}")
    same = final == reference
    print("IDENTICAL" if same else "DIFFERENT")
    raise SystemExit(0 if same else 1)


if __name__ == "__main__":
    main()
