"""`mdm synth` then `mdm ingest --manifest`: every row written is a source record or
a reject, the rejects are exactly the generator's deliberately invalid rows, and a
second ingest adds nothing."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from mdm.store.db import make_engine
from mdm.synth import SynthParams, generate


def _ingest(url: str, manifest: Path, report_dir: Path) -> dict:  # type: ignore[type-arg]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mdm",
            "ingest",
            "--manifest",
            str(manifest),
            "--json",
            "--report-dir",
            str(report_dir),
        ],
        env={**os.environ, "MDM_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_synth_then_ingest_accounts_for_every_row(fresh_db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "synth"
    manifest = generate(out, SynthParams(provinces=2, citizens=1500, seed=3))
    first = _ingest(fresh_db_url, out / "manifest.json", tmp_path / "rep")
    assert first["failed"] == []

    by_path = {Path(f["path"]).name: f for f in manifest["files"]}
    assert len(first["files"]) == len(by_path)
    for summary in first["files"]:
        expected = by_path[Path(summary["file"]).name]
        assert summary["read"] == expected["rows"], summary["file"]
        assert (
            summary["new"] + summary["changed"] + summary["unchanged"] + summary["rejected"]
            == expected["rows"]
        )
        assert summary["rejected"] == expected["invalid_rows"], (summary["file"], summary)

    # every reject has a reason, and the rejected keys are exactly the generator's
    expected_keys = {
        (r["source_system"], r["source_key"])
        for r in csv.DictReader((out / "expected_rejects.csv").open(encoding="utf-8"))
    }
    engine = make_engine(fresh_db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.name, r.source_key, r.reasons FROM rejects r "
                "JOIN source_systems s ON s.id = r.source_system_id"
            )
        ).all()
        records = conn.execute(text("SELECT count(*) FROM source_records")).scalar_one()
    engine.dispose()
    assert {(name, key) for name, key, _ in rows} == expected_keys
    for _, _, reasons in rows:
        parsed = reasons if isinstance(reasons, list) else json.loads(reasons)
        assert parsed and all(r["code"] and r["message"] for r in parsed)
    total_rows = sum(f["rows"] for f in manifest["files"])
    assert records + len(rows) == total_rows == first["read"]

    second = _ingest(fresh_db_url, out / "manifest.json", tmp_path / "rep2")
    assert (second["new"], second["changed"]) == (0, 0)
    assert second["unchanged"] == records
