"""scripts/eval_matching.py's robustness matrix on a tiny synthetic world, end to end
(synth, ingest, train, run on SQLite; the plain Splink model on the same files): the
printed matrix has both sides, with figures in [0, 1]."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NUM = r"([01]\.\d{5})"


def test_matrix_prints_mdm_beside_the_anchor(tmp_path: Path) -> None:
    results = tmp_path / "matrix.json"
    args = ["--profiles", "standard", "--seeds", "1", "--seed-base", "5"]
    args += ["--provinces", "1", "--citizens", "300", "--workdir", str(tmp_path / "work")]
    args += ["--results", str(results)]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "eval_matching.py"), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "seeds used: 5" in out
    assert "machine: " in out and "--provinces 1 --citizens 300" in out

    matrix = out.split("== matrix ==", 1)[1]
    row = re.search(
        rf"^standard\s+5 \|\s+{NUM}\s+{NUM}\s+{NUM}\s+([\d.]+)%\s+(\d+)/(\d+)\s+{NUM} \|\s+"
        rf"{NUM}\s+{NUM}\s+{NUM} \| ([+-]\d\.\d{{5}})$",
        matrix,
        re.MULTILINE,
    )
    assert row is not None, matrix
    mdm_p, mdm_r, mdm_f1 = (float(row[i]) for i in (1, 2, 3))
    review = float(row[4]) / 100
    linked, pairs = int(row[5]), int(row[6])
    ceiling = float(row[7])  # the oracle's recall at precision 0.998 (matching_ceiling.py)
    anchor_p, anchor_r, anchor_f1 = (float(row[i]) for i in (8, 9, 10))
    for value in (mdm_p, mdm_r, mdm_f1, review, ceiling, anchor_p, anchor_r, anchor_f1):
        assert 0.0 <= value <= 1.0
    assert 0 <= linked <= pairs
    assert float(row[11]) == pytest.approx(mdm_f1 - anchor_f1, abs=2e-5)
    # a tiny world is still easy: both sides find most pairs
    assert mdm_f1 > 0.5 and anchor_f1 > 0.5
    assert "n/a" in out  # the anchor has no review band

    saved = json.loads(results.read_text(encoding="utf-8"))
    assert saved["seeds"] == [5] and saved["profiles"] == ["standard"]
    (run,) = saved["runs"]
    # both sides are counted over the same records and the same true pairs
    assert run["anchor"]["true_pairs"] == run["mdm"]["true_pairs"] > 0
    assert run["anchor"]["evaluated_records"] == run["mdm"]["evaluated_records"]
    assert run["anchor"]["f1"] == pytest.approx(anchor_f1, abs=1e-5)
    assert set(run["anchor"]["hard_negatives"]) == set(run["mdm"]["hard_negatives"])


def test_no_profile_links_a_hard_negative(tmp_path: Path) -> None:
    """On every hazard profile, through the real pipeline (synth, ingest, train, run):
    twins, parent and child, namesakes, a relative's ID, a son named after his father
    and families sharing a phone or an address are never auto-linked."""
    results = tmp_path / "matrix.json"
    args = ["--profiles", "all", "--seeds", "1", "--seed-base", "9", "--no-anchor"]
    args += ["--no-ceiling", "--provinces", "1", "--citizens", "1000"]
    args += ["--workdir", str(tmp_path / "work"), "--results", str(results)]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "eval_matching.py"), *args],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(results.read_text(encoding="utf-8"))["runs"]
    assert {r["profile"] for r in runs} == {
        "standard",
        "clerical",
        "household",
        "migration",
        "sparse",
    }
    for run in runs:
        hard = run["mdm"]["hard_negatives"]
        assert {"twins", "parent_child", "namesakes"} <= set(hard), run["profile"]
        if run["profile"] == "household":
            assert {"household_twins", "relative_id", "father_son_same_name"} <= set(hard)
        for kind, counts in hard.items():
            assert counts["pairs"] > 0, (run["profile"], kind)
            assert counts["linked"] == 0, (run["profile"], kind, counts)
