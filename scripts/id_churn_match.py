"""ID churn through the real pipeline: `mdm match run` + resolution, run twice, then on
grown data.

    .venv/bin/python scripts/id_churn_match.py [--citizens 2000] [--provinces 2]

1. `mdm synth` a data set and ingest it into a fresh SQLite database;
   `mdm match train` and `mdm match run` (per entity type): round 1.
2. `mdm match run` again on the same data: every record must keep its canonical ID
   (0 changed) and no entity version may be written.
3. Grow the data by about 10%: a second, smaller synth (another seed) ingested under
   renamed source systems (so its keys are new records, not new versions), then
   `mdm match run`: every canonical ID issued before must still resolve, either to
   itself or through a recorded redirect (0 disappeared without a redirect).
Prints the counts; exits 1 if a check fails. (`scripts/id_churn.py` does the same
with clusters taken from the ground truth, to force merges.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
TYPES = ("citizen", "organization")


def mdm(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "mdm", *args], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"mdm {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def snapshot(url: str) -> dict[str, object]:
    engine = create_engine(url)
    with engine.connect() as conn:
        xref = dict(
            conn.execute(
                text(
                    "SELECT l.source_record_id, e.canonical_id FROM links l "
                    "JOIN entities e ON e.id = l.entity_id WHERE l.active = 1"
                )
            ).all()
        )
        status = dict(conn.execute(text("SELECT canonical_id, status FROM entities")).all())
        redirected = {
            r[0]
            for r in conn.execute(
                text(
                    "SELECT f.canonical_id FROM redirects r "
                    "JOIN entities f ON f.id = r.from_entity_id"
                )
            )
        }
        versions = conn.execute(text("SELECT count(*) FROM entity_versions")).scalar_one()
        events = conn.execute(text("SELECT count(*) FROM outbox_events")).scalar_one()
    engine.dispose()
    return {
        "xref": xref,
        "status": status,
        "redirected": redirected,
        "versions": versions,
        "events": events,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--citizens", type=int, default=2000)
    ap.add_argument("--provinces", type=int, default=2)
    ap.add_argument("--seed", type=int, default=21)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mdm-churn-"))
    rules = work / "matching_rules"
    shutil.copytree(ROOT / "matching_rules", rules, ignore=shutil.ignore_patterns("models"))
    url = f"sqlite:///{work / 'churn.db'}"
    env = {**os.environ, "MDM_DATABASE_URL": url, "MDM_MATCHING_RULES_DIR": str(rules)}

    base, growth = work / "base", work / "growth"
    mdm(
        env,
        "synth",
        "--provinces",
        str(args.provinces),
        "--citizens",
        str(args.citizens),
        "--seed",
        str(args.seed),
        "--out",
        str(base),
    )
    mdm(
        env,
        "synth",
        "--provinces",
        str(args.provinces),
        "--citizens",
        str(max(10, args.citizens // 10)),
        "--seed",
        str(args.seed + 1),
        "--out",
        str(growth),
    )
    manifest = json.loads((growth / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["files"]:
        entry["source_system"] = f"{entry['source_system']}-2026"
    (growth / "manifest-renamed.json").write_text(json.dumps(manifest), encoding="utf-8")

    mdm(env, "ingest", "--manifest", str(base / "manifest.json"), "--json")
    for entity in TYPES:
        mdm(env, "match", "train", "--entity", entity)
        mdm(env, "match", "run", "--entity", entity)
    round1 = snapshot(url)

    for entity in TYPES:
        mdm(env, "match", "run", "--entity", entity)
    round2 = snapshot(url)
    changed = sum(
        1
        for rid, cid in round1["xref"].items()
        if round2["xref"].get(rid) != cid  # type: ignore[attr-defined]
    )
    new_versions = int(round2["versions"]) - int(round1["versions"])  # type: ignore[call-overload]

    ingest = json.loads(
        mdm(env, "ingest", "--manifest", str(growth / "manifest-renamed.json"), "--json")
    )
    for entity in TYPES:
        mdm(env, "match", "run", "--entity", entity)
    round3 = snapshot(url)
    rebuild = mdm(env, "resolve", "--rebuild")  # exits non-zero on any difference
    before = set(round1["status"])  # type: ignore[call-overload]
    after_status: dict[str, str] = round3["status"]  # type: ignore[assignment]
    kept = sum(1 for c in before if after_status.get(c) == "active")
    via_redirect = sum(1 for c in before if c in round3["redirected"])  # type: ignore[operator]
    retired = sum(1 for c in before if after_status.get(c) == "retired")
    vanished = sum(
        1
        for c in before
        if c not in after_status
        or (
            after_status[c] != "active"
            and c not in round3["redirected"]  # type: ignore[operator]
            and after_status[c] != "retired"
        )
    )
    new_ids = len(set(after_status) - before)

    print(
        f"data: synth {args.provinces} provinces x {args.citizens} citizens (seed {args.seed}); "
        f"types {', '.join(TYPES)}; SQLite"
    )
    print(
        f"round 1: {len(round1['xref']):,} linked records, "  # type: ignore[arg-type]
        f"{len(before):,} canonical IDs issued"
    )
    print(
        f"round 2 (same data): {changed} canonical IDs changed, "
        f"{new_versions} entity versions written"
    )
    print(
        f"round 3 (+{ingest['new']:,} new records, "
        f"{ingest['new'] / max(len(round1['xref']), 1):.1%}): "  # type: ignore[arg-type]
        f"{kept:,} IDs kept active, {via_redirect} gone through a recorded redirect, "
        f"{retired} retired, {vanished} disappeared without a redirect, {new_ids:,} new IDs"
    )
    print(f"mdm resolve --rebuild: {rebuild.strip().splitlines()[-1] if rebuild.strip() else 'ok'}")
    print(f"work directory: {work}")
    ok = changed == 0 and new_versions == 0 and vanished == 0
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
