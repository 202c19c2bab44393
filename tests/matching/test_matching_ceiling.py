"""scripts/matching_ceiling.py on a small synthetic world, through the real pipeline
(synth, ingest, train, run): it reads what the run stored and prints the oracle's
recall at each precision beside the model's own figures."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from mdm.synth import SynthParams, generate

ROOT = Path(__file__).resolve().parents[2]


def _mdm(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mdm", *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_ceiling_reports_the_oracle_beside_the_model(fresh_db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "synth"
    generate(
        out,
        SynthParams(provinces=2, citizens=1500, organizations=1, dossiers=1, seed=3, portal=False),
    )
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(ROOT / "matching_rules" / "citizen.yaml", rules)
    env = {**os.environ, "MDM_DATABASE_URL": fresh_db_url, "MDM_MATCHING_RULES_DIR": str(rules)}
    _mdm(env, "ingest", "--manifest", str(out / "manifest.json"), "--json")
    _mdm(env, "match", "train", "--entity", "citizen")
    _mdm(env, "match", "run", "--entity", "citizen")

    script = ROOT / "scripts" / "matching_ceiling.py"
    args = ["--database-url", fresh_db_url, "--synth-dir", str(out), "--rules-dir", str(rules)]
    result = subprocess.run(
        [sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout

    truth = (out / "truth.csv").read_text(encoding="utf-8").splitlines()[1:]
    sizes: dict[str, int] = {}
    for line in truth:
        _system, _key, entity_type, true_entity = line.split(",")
        if entity_type == "citizen":
            sizes[true_entity] = sizes.get(true_entity, 0) + 1
    true_pairs = sum(n * (n - 1) // 2 for n in sizes.values())
    # (rejected rows have a truth line but no record: the script counts the stored ones)
    stored = int(re.search(r"citizen: ([\d,]+) records", text)[1].replace(",", ""))  # type: ignore[index]
    reported = int(re.search(r"([\d,]+) true pairs", text)[1].replace(",", ""))  # type: ignore[index]
    assert 0 < stored <= sum(sizes.values())
    assert 0 < reported <= true_pairs

    oracle = {
        float(p): float(r)
        for p, r in re.findall(r"oracle, precision >= ([\d.]+): recall ([\d.]+)", text)
    }
    assert sorted(oracle) == [0.995, 0.997, 0.998, 0.999, 0.9995]
    # a looser precision never buys less recall
    recalls = [oracle[p] for p in sorted(oracle)]
    assert recalls == sorted(recalls, reverse=True)
    model = re.search(r"model at its threshold .*: precision ([\d.]+)\s+recall ([\d.]+)", text)
    assert model is not None
    precision, recall = float(model[1]), float(model[2])
    assert 0.9 < precision <= 1 and 0.5 < recall <= 1
    # the oracle links the cells the model links at least as well
    if precision >= 0.995:
        assert oracle[0.995] >= recall - 1e-9
