"""Crash-resume of the long jobs, CI-sized: ``scripts/crash_jobs.py`` at a small scale
with one ``kill -9`` per job, on the Postgres at 127.0.0.1:5432.

For ``mdm ingest``, ``mdm match run``, ``mdm resolve`` and ``mdm relay`` (webhooks):
an uninterrupted reference run and a run killed at a seeded random moment then run
again to the end start from clones of one database; the tables each job writes must be
identical (counts and order-independent digests), and the webhook receiver must have
seen every event at least once, in order per entity, repeated only after a kill.

The long loop (every job, ``mdm resolve --rebuild`` and ``mdm relay --nats`` too,
5 kills each, thousands of citizens) is run by hand; see docs/reliability.md.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _crash_jobs() -> Any:
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module("crash_jobs")
    finally:
        sys.path.remove(str(SCRIPTS))


@pytest.mark.slow
def test_killed_jobs_resume_to_the_state_of_an_uninterrupted_run(
    backend: str, databases: Any, tmp_path: Path
) -> None:
    if backend != "postgres":
        pytest.skip("runs on Postgres (the long loop covers SQLite: --backend sqlite)")
    databases.template("postgres")  # skips (or fails in CI) when Postgres is unreachable
    crash_jobs = _crash_jobs()
    args = crash_jobs.parse_args(
        [
            "--jobs",
            "ingest,match,resolve,relay",
            "--kills-per-job",
            "1",
            "--provinces",
            "1",
            "--citizens",
            "600",
            "--no-portal",
            "--seed",
            "11",
            "--min-delay",
            "1.5",
            "--relay-lease",
            "3",
            "--workdir",
            str(tmp_path),
            "--quiet",
        ]
    )
    outcomes = crash_jobs.run(args)
    report = crash_jobs.table(outcomes)
    print(report)
    assert [o.job for o in outcomes] == ["ingest", "match", "resolve", "relay"], report
    assert all(o.result.startswith("identical") for o in outcomes), report
    assert sum(o.runs for o in outcomes) >= len(outcomes) + 1, report
