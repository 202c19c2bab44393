"""`mdm ingest --manifest` killed with kill -9 after its first file, then run again
(found by scripts/crash_jobs.py): the command used to read the finished file a second
time (a second run, its rejects twice, a summary of unchanged rows); now it resumes,
and the runs, the rejects and the summary are those of an uninterrupted command. An
ordinary second command (nothing interrupted) still re-ingests every file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from mdm.store.db import make_engine
from mdm.synth import SynthParams, generate


def _cmd(manifest: Path, report_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mdm",
        "ingest",
        "--manifest",
        str(manifest),
        "--json",
        "--report-dir",
        str(report_dir),
    ]


def _ingest(url: str, manifest: Path, report_dir: Path) -> dict[str, Any]:
    result = subprocess.run(
        _cmd(manifest, report_dir),
        env={**os.environ, "MDM_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _state(url: str) -> tuple[list[tuple[Any, ...]], int, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            runs = [
                tuple(r)
                for r in conn.execute(
                    text(
                        "SELECT file_sha256, status, rows_committed FROM ingest_runs "
                        "ORDER BY file_sha256, id"
                    )
                )
            ]
            rejects = conn.execute(text("SELECT count(*) FROM rejects")).scalar_one()
            records = conn.execute(text("SELECT count(*) FROM source_records")).scalar_one()
    finally:
        engine.dispose()
    return runs, int(rejects), int(records)


def _counts(summary: dict[str, Any]) -> list[tuple[Any, ...]]:
    keys = ("read", "new", "changed", "unchanged", "rejected", "withdrawn")
    return [(Path(f["file"]).name, *(f[k] for k in keys)) for f in summary["files"]]


def _kill_after_first_file(url: str, manifest: Path, report_dir: Path) -> None:
    proc = subprocess.Popen(
        _cmd(manifest, report_dir),
        env={**os.environ, "MDM_DATABASE_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    engine = make_engine(url)
    sql = text("SELECT count(*) FROM ingest_runs WHERE status = 'completed'")
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with engine.connect() as conn:
                    if conn.execute(sql).scalar_one() >= 1:
                        break
            except Exception:  # the command is still creating the schema
                pass
            time.sleep(0.05)
        assert proc.poll() is None, "the command finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        engine.dispose()


def test_a_manifest_killed_between_files_resumes_as_if_uninterrupted(
    backend: str, databases: Any, tmp_path: Path
) -> None:
    out = tmp_path / "synth"
    generate(
        out,
        SynthParams(
            provinces=1, citizens=800, organizations=200, dossiers=1000, seed=5, portal=False
        ),
    )
    manifest = out / "manifest.json"
    reference_url, crashed_url = databases.fresh(backend), databases.fresh(backend)

    reference = _ingest(reference_url, manifest, tmp_path / "ref")
    _kill_after_first_file(crashed_url, manifest, tmp_path / "crash")
    resumed = _ingest(crashed_url, manifest, tmp_path / "crash")

    assert _counts(resumed) == _counts(reference)
    assert _state(crashed_url) == _state(reference_url)
    runs, _rejects, records = _state(crashed_url)
    assert [status for _sha, status, _rows in runs] == ["completed"] * len(reference["files"])

    again = _ingest(crashed_url, manifest, tmp_path / "again")  # nothing interrupted
    assert again["unchanged"] == records and again["new"] == 0
    assert len(_state(crashed_url)[0]) == 2 * len(reference["files"])
