"""Summarize a `mdm synth` output directory from its truth files (independent of the manifest).

Usage: python scripts/synth_stats.py DIR
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path


def main(out: Path) -> None:
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for f in manifest["files"]:
        print(
            f"{f['rows']:>9}  {f['invalid_rows']:>5}  {f['format']:<7} {f['encoding']:<9} "
            f"{f['source_system']:<24} {f['path']}"
        )
    truth = list(csv.DictReader((out / "truth.csv").open(encoding="utf-8")))
    by_type = Counter(t["entity_type"] for t in truth)
    print("rows by entity type:", dict(by_type))
    for etype in ("citizen", "organization", "dossier"):
        systems: dict[str, set[str]] = defaultdict(set)
        rows = [t for t in truth if t["entity_type"] == etype]
        for t in rows:
            systems[t["true_entity"]].add(t["source_system"])
        legacy = [t for t in rows if t["source_system"] != "national-portal"]
        legacy_systems: dict[str, set[str]] = defaultdict(set)
        for t in legacy:
            legacy_systems[t["true_entity"]].add(t["source_system"])
        cross = sum(len(legacy_systems[t["true_entity"]]) > 1 for t in legacy)
        multi = sum(len(s) > 1 for s in systems.values())
        print(
            f"{etype}: {len(rows)} rows, {len(systems)} entities, "
            f"{multi} entities in >1 system, legacy cross-province duplicate rate "
            f"{cross / max(1, len(legacy)):.1%}"
        )
    pairs = list(csv.DictReader((out / "hard_negatives.csv").open(encoding="utf-8")))
    print("hard negative pairs:", dict(Counter(p["kind"] for p in pairs)))
    rejects = list(csv.DictReader((out / "expected_rejects.csv").open(encoding="utf-8")))
    print("expected rejects:", dict(Counter(r["reason"] for r in rejects)))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
