"""Measure matching against the generator's ground truth, through the real pipeline.

``mdm synth`` → a fresh database → ``mdm ingest --manifest`` → ``mdm match train``
→ ``mdm match run``, then compare the store's active links with ``truth.csv``:

* pairwise precision, recall and F1 of the automatic links (two records in one
  entity = a predicted pair; two records of one true entity = a true pair);
* cluster level: true entities split over several entities, entities that wrongly
  merge records of several true entities;
* the review band: records with a pending match candidate, and how many true
  pairs the band holds (what stewards will recover);
* hard negatives (``hard_negatives.csv``): twins and same-name parent/child pairs
  linked into one entity (must be 0), and namesakes for information.

Usage (the acceptance run):
    .venv/bin/python scripts/eval_matching.py --provinces 5 --citizens 100000 --seed 11 \
        --entity citizen organization
Add ``--workdir DIR`` to keep the data, ``--reuse`` to skip synth/ingest when DIR
already has them, ``--database-url`` for Postgres (a fresh, empty database).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from mdm.config import normalize_database_url


def _run(args: list[str], env: dict[str, str], quiet_stderr: bool = True) -> None:
    cmd = [sys.executable, "-m", "mdm", *args]
    print(f"$ mdm {' '.join(args)}", flush=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, text=True, capture_output=True, check=False)
    for line in proc.stdout.splitlines():
        print(f"  {line}")
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"mdm {args[0]} failed with exit code {proc.returncode}")
    if not quiet_stderr:
        print(proc.stderr[-2000:], file=sys.stderr)
    print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def evaluate(url: str, synth_dir: Path, entity_type: str) -> dict[str, Any]:
    truth: dict[tuple[str, str], str] = {}
    with (synth_dir / "truth.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["entity_type"] == entity_type:
                truth[(row["source_system"], row["source_key"])] = row["true_entity"]
    engine = create_engine(normalize_database_url(url))
    # spelled like the partial index's predicate, so SQLite uses it
    active = "l.active = 1" if engine.dialect.name == "sqlite" else "l.active"
    with engine.connect() as conn:
        linked = conn.execute(
            text(
                "SELECT ss.name, sr.source_key, l.entity_id, l.method, sr.id "
                "FROM links l JOIN source_records sr ON sr.id = l.source_record_id "
                "JOIN source_systems ss ON ss.id = sr.source_system_id "
                f"WHERE {active} AND sr.entity_type = :e AND sr.status = 'active'"
            ),
            {"e": entity_type},
        ).all()
        active = conn.execute(
            text(
                "SELECT count(*) FROM source_records WHERE entity_type = :e AND status = 'active'"
            ),
            {"e": entity_type},
        ).scalar_one()
        review = conn.execute(
            text(
                "SELECT left_record_id, right_record_id FROM match_candidates "
                "WHERE entity_type = :e AND status = 'pending'"
            ),
            {"e": entity_type},
        ).all()
    engine.dispose()

    record_truth: dict[int, str] = {}
    record_entity: dict[int, int] = {}
    by_ref: dict[tuple[str, str], int] = {}
    methods: Counter[str] = Counter()
    unknown = 0
    for system, key, entity_id, method, rid in linked:
        t = truth.get((system, key))
        if t is None:
            unknown += 1
            continue
        record_truth[int(rid)] = t
        record_entity[int(rid)] = int(entity_id)
        by_ref[(system, key)] = int(rid)
        methods[method] += 1

    pred_sizes = Counter(record_entity.values())
    true_sizes = Counter(record_truth.values())
    both = Counter((record_entity[r], record_truth[r]) for r in record_entity)
    tp = sum(_pairs(n) for n in both.values())
    predicted = sum(_pairs(n) for n in pred_sizes.values())
    actual = sum(_pairs(n) for n in true_sizes.values())
    precision = tp / predicted if predicted else 1.0
    recall = tp / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    entities_of_truth: dict[str, set[int]] = defaultdict(set)
    truths_of_entity: dict[int, set[str]] = defaultdict(set)
    for r, e in record_entity.items():
        entities_of_truth[record_truth[r]].add(e)
        truths_of_entity[e].add(record_truth[r])
    split = sum(1 for es in entities_of_truth.values() if len(es) > 1)
    merged = sum(1 for ts in truths_of_entity.values() if len(ts) > 1)
    multi = sum(1 for n in true_sizes.values() if n > 1)

    in_review = {r for pair in review for r in pair}
    review_true = sum(
        1 for a, b in review if a in record_truth and record_truth.get(a) == record_truth.get(b)
    )
    review_missed = sum(
        1
        for a, b in review
        if a in record_truth
        and record_truth.get(a) == record_truth.get(b)
        and record_entity.get(a) != record_entity.get(b)
    )

    hard: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    negatives = synth_dir / "hard_negatives.csv"
    if negatives.exists():
        with negatives.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                a = by_ref.get((row["source_system"], row["source_key_a"]))
                b = by_ref.get((row["source_system"], row["source_key_b"]))
                if a is None or b is None:
                    continue
                hard[row["kind"]][0] += 1
                hard[row["kind"]][1] += record_entity[a] == record_entity[b]

    return {
        "entity_type": entity_type,
        "active_records": int(active),
        "evaluated_records": len(record_entity),
        "records_without_truth": unknown,
        "links_by_method": dict(sorted(methods.items())),
        "true_entities": len(true_sizes),
        "true_entities_with_duplicates": multi,
        "predicted_entities": len(pred_sizes),
        "true_pairs": actual,
        "predicted_pairs": predicted,
        "true_positive_pairs": tp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "entities_split": split,
        "entities_wrongly_merged": merged,
        "review_candidates": len(review),
        "review_candidates_true": review_true,
        "review_true_pairs_not_linked": review_missed,
        "records_in_review": len(in_review),
        "review_rate": len(in_review) / max(int(active), 1),
        "hard_negatives": {k: {"pairs": v[0], "linked": v[1]} for k, v in sorted(hard.items())},
    }


def _print(result: dict[str, Any]) -> None:
    r = result
    print(f"\n== {r['entity_type']} ==")
    print(
        f"records {r['active_records']:,} active, {r['evaluated_records']:,} evaluated "
        f"({r['records_without_truth']} without truth); links by method {r['links_by_method']}"
    )
    print(
        f"true entities {r['true_entities']:,} ({r['true_entities_with_duplicates']:,} with "
        f"duplicates), predicted entities {r['predicted_entities']:,}"
    )
    print(
        f"pairwise (auto-links): precision {r['precision']:.5f}  recall {r['recall']:.5f}  "
        f"F1 {r['f1']:.5f}   [tp {r['true_positive_pairs']:,} / predicted "
        f"{r['predicted_pairs']:,} / true {r['true_pairs']:,}]"
    )
    print(
        f"clusters: true entities split {r['entities_split']:,}, entities wrongly merged "
        f"{r['entities_wrongly_merged']:,}"
    )
    print(
        f"review band: {r['records_in_review']:,} records ({r['review_rate']:.2%}), "
        f"{r['review_candidates']:,} candidate pairs, {r['review_candidates_true']:,} of them "
        f"true matches"
    )
    for kind, v in r["hard_negatives"].items():
        print(f"hard negatives {kind}: {v['linked']} of {v['pairs']} pairs linked")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provinces", type=int, default=5)
    parser.add_argument("--citizens", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--entity", nargs="+", default=["citizen", "organization"])
    parser.add_argument("--database-url", default=None, help="an empty database (default: SQLite)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="skip synth/ingest if present")
    parser.add_argument("--skip-train", action="store_true", help="use the saved models")
    parser.add_argument("--skip-match", action="store_true", help="only evaluate the store")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args()

    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="mdm-eval-")
        workdir = Path(tmp.name)
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
    synth_dir = workdir / "synth"
    url = args.database_url or f"sqlite:///{workdir / 'eval.db'}"
    env = {**os.environ, "MDM_DATABASE_URL": url, "MDM_DATA_DIR": str(workdir / "var")}
    started = time.perf_counter()

    if not (args.reuse and (synth_dir / "manifest.json").exists()):
        _run(
            [
                "synth",
                "--out",
                str(synth_dir),
                "--provinces",
                str(args.provinces),
                "--citizens",
                str(args.citizens),
                "--seed",
                str(args.seed),
            ],
            env,
        )
    manifest = json.loads((synth_dir / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"] = [f for f in manifest["files"] if f["entity_type"] in args.entity]
    subset = synth_dir / "manifest.eval.json"
    subset.write_text(json.dumps(manifest), encoding="utf-8")
    marker = workdir / "ingested.ok"
    if not (args.reuse and marker.exists()):
        _run(["ingest", "--manifest", str(subset)], env)
        marker.write_text(url, encoding="utf-8")

    results = []
    for entity in args.entity:
        if not (args.skip_train or args.skip_match):
            _run(["match", "train", "--entity", entity], env)
        if not args.skip_match:
            _run(["match", "run", "--entity", entity], env)
        results.append(evaluate(url, synth_dir, entity))

    print(
        f"\nsynth --provinces {args.provinces} --citizens {args.citizens} --seed {args.seed}; "
        f"database {url.split(':', 1)[0]}; total {time.perf_counter() - started:.0f} s"
    )
    for r in results:
        _print(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
