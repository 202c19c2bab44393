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


def test_the_delivery_check_tells_explained_repeats_from_unexplained_ones() -> None:
    """The webhook check of the relay job: a repeat is allowed after a killed relay
    (until the next relay started: the receiver time-stamps what it has read, maybe
    a moment after the kill) or when the relay retried with a higher attempt number;
    any other repeat, a missing event or a sequence out of order is reported."""
    cj = _crash_jobs()
    from _crash import KillLog, Run

    log = KillLog(runs=[Run(0.0, 10.0, "killed"), Run(12.0, 20.0, "exit 0")])
    expected = {"e1": ("P-1", 1), "e2": ("P-1", 2), "e3": ("P-2", 1)}

    def arrival(event: str, at: float, attempt: int = 1) -> Any:
        cid, seq = expected[event]
        return cj.Arrival("x", event, cid, seq, at, attempt)

    clean = [arrival("e1", 1), arrival("e2", 2), arrival("e3", 13)]
    assert cj.check_deliveries(clean, expected, log)[0] == []
    after_kill = [arrival("e1", 1), arrival("e2", 11.5), arrival("e2", 13), arrival("e3", 14)]
    assert cj.check_deliveries(after_kill, expected, log)[0] == []
    retried = [arrival("e1", 1), arrival("e2", 2), arrival("e3", 13), arrival("e3", 15, 2)]
    assert cj.check_deliveries(retried, expected, log)[0] == []
    unexplained = [arrival("e1", 1), arrival("e2", 2), arrival("e3", 13), arrival("e3", 15)]
    assert cj.check_deliveries(unexplained, expected, log)[0] == [
        "1 events repeated without a kill between POST and commit"
    ]
    missing = [arrival("e1", 1), arrival("e3", 13)]
    assert "1 events never delivered" in cj.check_deliveries(missing, expected, log)[0]
    disorder = [arrival("e2", 1), arrival("e1", 2), arrival("e3", 13)]
    assert cj.check_deliveries(disorder, expected, log)[0] == [
        "1 entities received out of order or with gaps"
    ]
