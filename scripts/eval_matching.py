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

The robustness matrix (any of ``--profiles``, ``--seeds``, ``--seed-base``):
    .venv/bin/python scripts/eval_matching.py --profiles all --seeds 3 --seed-base 101 \
        --provinces 2 --citizens 5000 --results docs/bench/matrix-....json
runs the whole pipeline above (citizens only unless ``--entity`` says otherwise, a
fresh SQLite database per run) for each generator hazard profile (``mdm synth
--profile P``; ``all`` = ``mdm.synth.PROFILES``, or just ``standard`` from a
generator without profiles) and each seed base, base+1, ... (the seeds used are
printed: tune on one seed, e.g. ``--seed-base 11 --seeds 1``, and report on others,
e.g. ``--seed-base 101 --seeds 3``). The matching rules are copied once per matrix
(their digests are printed) and each run writes its model in its own directory. In the
same run, on the same synth files, ``scripts/baseline_splink.py`` fits a plain Splink
5 model (light cleaning, six library comparisons, tutorial training, clusters at
0.95): the anchor. Each run prints a table, mdm beside the anchor; the end prints the
matrix, one row per profile × seed (and a mean row per profile over several seeds):

* ``mdm P/R/F1``: pairwise precision, recall, F1 of the automatic links;
  ``anchor P/R/F1`` the same for the anchor's clusters, over the same records (the
  records mdm stored: both sides count the same true pairs);
* ``review%``: records with a pending match candidate, the stewards' queue; the
  anchor has no review band (n/a), so mdm's recall leaves out what review recovers;
* ``hard neg``: look-alike pairs from ``hard_negatives.csv`` linked into one entity,
  over all kinds (each kind, mdm vs anchor, in the table after the matrix): twins,
  parent_child, and whatever kinds a profile adds; they should stay at 0;
* ``F1 diff``: mdm minus anchor. Positive: mdm's standardization and rules earn
  their keep on that hazard; near 0 or negative: a plain model does as well there.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from mdm.config import normalize_database_url


def _workdir(
    given: Path | None,
) -> tuple[tempfile.TemporaryDirectory[str] | None, Path]:
    """The directory to work in: ``given`` (created), else a temporary one (returned
    too, so the caller keeps it alive and cleans it up)."""
    if given is None:
        tmp = tempfile.TemporaryDirectory(prefix="mdm-eval-")
        return tmp, Path(tmp.name)
    given.mkdir(parents=True, exist_ok=True)
    return None, given


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


def evaluate(
    url: str,
    synth_dir: Path,
    entity_type: str,
    keys_out: set[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """The store's active links against ``truth.csv``; ``keys_out``, when given, receives
    the (source system, source key) of every evaluated record."""
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
    if keys_out is not None:
        keys_out.update(by_ref)

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


# -- the robustness matrix ----------------------------------------------------------


def available_profiles() -> list[str]:
    """The generator's hazard profiles (``mdm.synth.PROFILES``), or just "standard"
    from a generator that has none."""
    import mdm.synth

    names = getattr(mdm.synth, "PROFILES", None)
    if isinstance(names, dict):
        names = list(names)
    if names and all(isinstance(n, str) for n in names):
        return list(names)
    return ["standard"]


def _synth_has_profile_flag() -> bool:
    import inspect

    from mdm.cli.synth import synth

    return "profile" in inspect.signature(synth).parameters


def _profiles(spec: str | None) -> list[str]:
    known = available_profiles()
    if spec is None:
        return ["standard"]
    if spec == "all":
        return known
    wanted = [p.strip() for p in spec.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in known]
    if unknown:
        raise SystemExit(f"unknown profile(s) {unknown}; this generator has {known}")
    return wanted


def _hard_total(hard: dict[str, dict[str, int]]) -> tuple[int, int]:
    return sum(v["linked"] for v in hard.values()), sum(v["pairs"] for v in hard.values())


def _print_run(run: dict[str, Any]) -> None:
    m, a = run["mdm"], run.get("anchor")
    print(
        f"\n== profile {run['profile']}, seed {run['seed']}: {m['evaluated_records']:,} "
        f"citizen records evaluated, {m['true_pairs']:,} true pairs =="
    )
    rows: list[tuple[str, str, str]] = []

    def num(key: str) -> tuple[str, str]:
        return f"{m[key]:.5f}", (f"{a[key]:.5f}" if a else "-")

    rows.append(("pairwise precision", *num("precision")))
    rows.append(("pairwise recall", *num("recall")))
    rows.append(("pairwise F1", *num("f1")))
    rows.append(
        (
            "records in review",
            f"{m['records_in_review']:,} ({m['review_rate']:.2%})",
            "n/a" if a else "-",
        )
    )
    kinds = sorted(set(m["hard_negatives"]) | set(a["hard_negatives"] if a else {}))
    for kind in kinds:
        mv = m["hard_negatives"].get(kind, {"linked": 0, "pairs": 0})
        av = (a["hard_negatives"] if a else {}).get(kind)
        rows.append(
            (
                f"hard negatives {kind} linked",
                f"{mv['linked']} of {mv['pairs']}",
                f"{av['linked']} of {av['pairs']}" if av else "-",
            )
        )
    rows.append(
        (
            "true / predicted / tp pairs",
            f"{m['true_pairs']:,} / {m['predicted_pairs']:,} / {m['true_positive_pairs']:,}",
            f"{a['true_pairs']:,} / {a['predicted_pairs']:,} / {a['true_positive_pairs']:,}"
            if a
            else "-",
        )
    )
    rows.append(
        (
            "entities (true / predicted)",
            f"{m['true_entities']:,} / {m['predicted_entities']:,}",
            f"{a['true_entities']:,} / {a['predicted_entities']:,}" if a else "-",
        )
    )
    rows.append(
        (
            "seconds (ingest+train+run | model)",
            f"{run['mdm_seconds']:.0f}",
            f"{a['seconds']:.0f}" if a else "-",
        )
    )
    print(f"{'':<36} {'mdm':>30}   {'anchor (plain Splink 5)':>30}")
    for label, left, right in rows:
        print(f"{label:<36} {left:>30}   {right:>30}")
    for w in a["warnings"] if a else []:
        print(f"anchor warning: {w}")


MATRIX_HEADER = (
    f"{'profile':<12} {'seed':>6} | {'mdm P':>8} {'mdm R':>8} {'mdm F1':>8} {'review%':>8} "
    f"{'hard neg':>9} {'ceil R':>8} | {'anchor P':>8} {'anchor R':>8} {'anchor F1':>9} | "
    f"{'F1 diff':>8}"
)


def _matrix_row(label: str, seed: str, m: dict[str, Any], a: dict[str, float] | None) -> str:
    ceiling = m.get("ceiling")
    left = (
        f"{label:<12} {seed:>6} | {m['precision']:>8.5f} {m['recall']:>8.5f} {m['f1']:>8.5f} "
        f"{m['review_rate']:>8.2%} {m['hard']:>9} "
        f"{(f'{ceiling:.5f}' if ceiling is not None else '-'):>8} | "
    )
    if a is None:
        return left + f"{'-':>8} {'-':>8} {'-':>9} | {'-':>8}"
    return (
        left + f"{a['precision']:>8.5f} {a['recall']:>8.5f} {a['f1']:>9.5f} | "
        f"{m['f1'] - a['f1']:>+8.5f}"
    )


def _print_matrix(runs: list[dict[str, Any]], header: str) -> None:
    print(f"\n== matrix ==\n{header}")
    print(
        "(pairwise over the citizen records mdm stored; mdm = automatic links, anchor = "
        "clusters at 0.95; review% = records with a pending candidate, n/a for the anchor; "
        "hard neg = pairs linked / pairs, all kinds; ceil R = the best recall any link rule "
        "over the model's evidence reaches at precision 0.998 (matching_ceiling.py); "
        "F1 diff = mdm - anchor)"
    )
    print(MATRIX_HEADER)
    by_profile: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_profile[run["profile"]].append(run)
    for profile, group in by_profile.items():
        for run in group:
            m = dict(run["mdm"])
            linked, pairs = _hard_total(m["hard_negatives"])
            m["hard"] = f"{linked}/{pairs}"
            if run.get("ceiling"):
                m["ceiling"] = run["ceiling"]["oracle"]["0.998"]["recall"]
            print(_matrix_row(profile, str(run["seed"]), m, run.get("anchor")))
        if len(group) > 1:
            keys = ("precision", "recall", "f1", "review_rate")
            mean_m: dict[str, Any] = {k: sum(r["mdm"][k] for r in group) / len(group) for k in keys}
            linked = sum(_hard_total(r["mdm"]["hard_negatives"])[0] for r in group)
            pairs = sum(_hard_total(r["mdm"]["hard_negatives"])[1] for r in group)
            mean_m["hard"] = f"{linked}/{pairs}"
            mean_a = None
            if all(r.get("anchor") for r in group):
                mean_a = {
                    k: sum(r["anchor"][k] for r in group) / len(group)
                    for k in ("precision", "recall", "f1")
                }
            print(_matrix_row(profile, "mean", mean_m, mean_a))
    kinds = sorted(
        {k for r in runs for k in r["mdm"]["hard_negatives"]}
        | {k for r in runs if r.get("anchor") for k in r["anchor"]["hard_negatives"]}
    )
    if kinds:
        print("\nhard negatives linked per kind (linked/pairs, mdm vs anchor):")
        print(f"{'profile':<12} {'seed':>6} | " + " | ".join(f"{k:>21}" for k in kinds))
        for run in runs:
            cells = []
            for k in kinds:
                mv = run["mdm"]["hard_negatives"].get(k)
                av = run["anchor"]["hard_negatives"].get(k) if run.get("anchor") else None
                ms = f"{mv['linked']}/{mv['pairs']}" if mv else "-"
                as_ = f"{av['linked']}/{av['pairs']}" if av else "-"
                cells.append(f"{ms + ' vs ' + as_:>21}")
            print(f"{run['profile']:<12} {run['seed']:>6} | " + " | ".join(cells))


def _git_state() -> str:
    """HEAD's commit, and whether src/ or matching_rules/ differ from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src", "matching_rules"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes in src/ or matching_rules/" if dirty else "")


def _snapshot_rules(target: Path) -> tuple[Path, str]:
    """Copy the matching rules (``MDM_MATCHING_RULES_DIR`` or the repository's
    ``matching_rules``, YAML files only) once, so that every run of the matrix uses the
    same rules and writes its model in its own directory, never in the shared one."""
    source = Path(
        os.environ.get("MDM_MATCHING_RULES_DIR")
        or Path(__file__).resolve().parents[1] / "matching_rules"
    )
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    digests = []
    for path in sorted(source.glob("*.yaml")):
        shutil.copy2(path, target / path.name)
        digests.append(f"{path.name} {hashlib.sha256(path.read_bytes()).hexdigest()[:12]}")
    info = f"{source} ({', '.join(digests)})"
    print(f"matching rules: {info}")
    return target, info


def _one_run(
    args: argparse.Namespace, profile: str, seed: int, workdir: Path, url: str | None
) -> dict[str, Any]:
    rundir = workdir / f"{profile}-seed{seed}"
    rundir.mkdir(parents=True, exist_ok=True)
    synth_dir = rundir / "synth"
    url = url or f"sqlite:///{rundir / 'eval.db'}"
    # the run's own copy of the matching rules: its model is written beside them
    rules = rundir / "rules"
    shutil.rmtree(rules, ignore_errors=True)
    shutil.copytree(args.rules_snapshot, rules)
    env = {
        **os.environ,
        "MDM_DATABASE_URL": url,
        "MDM_DATA_DIR": str(rundir / "var"),
        "MDM_MATCHING_RULES_DIR": str(rules),
    }
    print(f"\n### profile {profile}, seed {seed} ({rundir})", flush=True)
    if not (args.reuse and (synth_dir / "manifest.json").exists()):
        synth = ["synth", "--out", str(synth_dir), "--provinces", str(args.provinces)]
        synth += ["--citizens", str(args.citizens), "--seed", str(seed)]
        if _synth_has_profile_flag():
            synth += ["--profile", profile]
        elif profile != "standard":
            raise SystemExit(f"this generator has no --profile flag (asked for {profile!r})")
        _run(synth, env)
    manifest = json.loads((synth_dir / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"] = [f for f in manifest["files"] if f["entity_type"] in args.entity]
    subset = synth_dir / "manifest.eval.json"
    subset.write_text(json.dumps(manifest), encoding="utf-8")
    started = time.perf_counter()
    marker = rundir / "ingested.ok"
    if not (args.reuse and marker.exists()):
        _run(["ingest", "--manifest", str(subset)], env)
        marker.write_text(url, encoding="utf-8")
    results: dict[str, dict[str, Any]] = {}
    keys: set[tuple[str, str]] = set()
    for entity in args.entity:
        if not (args.skip_train or args.skip_match):
            _run(["match", "train", "--entity", entity], env)
        if not args.skip_match:
            _run(["match", "run", "--entity", entity], env)
        results[entity] = evaluate(url, synth_dir, entity, keys if entity == "citizen" else None)
    mdm_seconds = time.perf_counter() - started
    for entity, r in results.items():
        if entity != "citizen":
            _print(r)
    run: dict[str, Any] = {
        "profile": profile,
        "seed": seed,
        "mdm": results["citizen"],
        "mdm_seconds": mdm_seconds,
        "other_entities": {e: r for e, r in results.items() if e != "citizen"},
    }
    if not args.no_ceiling:
        import matching_ceiling

        print("$ matching_ceiling.compute (the best any link rule over this evidence does)")
        ceiling = matching_ceiling.compute(url, synth_dir, rules, "citizen")
        for line in matching_ceiling.format_result(ceiling):
            print(f"  {line}")
        run["ceiling"] = ceiling
    if not args.no_anchor:
        import baseline_splink

        print("$ baseline_splink.run (plain Splink 5 on the same files)", flush=True)
        anchor = baseline_splink.run(synth_dir, restrict=keys)
        for line in baseline_splink.format_result(anchor):
            print(f"  {line}")
        run["anchor"] = anchor
    _print_run(run)
    return run


def _matrix(args: argparse.Namespace) -> None:
    from _common import machine

    if "citizen" not in args.entity:
        raise SystemExit("the matrix measures citizens: --entity must include citizen")
    profiles = _profiles(args.profiles)
    n_seeds = args.seeds if args.seeds is not None else 1
    if n_seeds < 1:
        raise SystemExit("--seeds must be at least 1")
    base = args.seed_base if args.seed_base is not None else args.seed
    seeds = [base + i for i in range(n_seeds)]
    if args.database_url and len(profiles) * len(seeds) > 1:
        raise SystemExit("--database-url takes one run (one profile, one seed): it must be empty")
    started = time.perf_counter()
    where = machine()
    size = (
        f"synth --provinces {args.provinces} --citizens {args.citizens} (citizen rows per "
        f"former province, plus the portal's)"
    )
    print(f"machine: {where}")
    print(f"data: {size}; database {(args.database_url or 'sqlite').split(':', 1)[0]}")
    print(f"profiles: {', '.join(profiles)}; seeds used: {', '.join(map(str, seeds))}")
    print(
        "(tune on one seed, report on others: e.g. --seed-base 11 --seeds 1 to tune, "
        "--seed-base 101 --seeds 3 to report)"
    )
    tmp, workdir = _workdir(args.workdir)
    args.rules_snapshot, rules_info = _snapshot_rules(workdir / "rules-snapshot")
    print(f"code: {_git_state()}")
    runs = []
    try:
        for profile in profiles:
            for seed in seeds:
                runs.append(_one_run(args, profile, seed, workdir, args.database_url))
                if tmp is not None:  # the next run's data replaces this one's
                    shutil.rmtree(workdir / f"{profile}-seed{seed}", ignore_errors=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    total = time.perf_counter() - started
    records = ", ".join(f"{r['mdm']['evaluated_records']:,}" for r in runs)
    header = (
        f"data: {size}; citizen records evaluated per run: {records}\n"
        f"machine: {where}; total {total:.0f} s"
    )
    _print_matrix(runs, header)
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(
            json.dumps(
                {
                    "machine": where,
                    "data": size,
                    "provinces": args.provinces,
                    "citizens_per_province": args.citizens,
                    "profiles": profiles,
                    "seeds": seeds,
                    "matching_rules": rules_info,
                    "git": _git_state(),
                    "command": " ".join(sys.argv),
                    "total_seconds": total,
                    "runs": runs,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        print(f"\nresults written to {args.results}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provinces", type=int, default=5)
    parser.add_argument("--citizens", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--entity", nargs="+", default=None, help="[citizen organization; matrix: citizen]"
    )
    parser.add_argument("--database-url", default=None, help="an empty database (default: SQLite)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="skip synth/ingest if present")
    parser.add_argument("--skip-train", action="store_true", help="use the saved models")
    parser.add_argument("--skip-match", action="store_true", help="only evaluate the store")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    matrix = parser.add_argument_group(
        "robustness matrix (any of these: each profile x seed, mdm beside a plain Splink model)"
    )
    matrix.add_argument("--profiles", default=None, help="'all' or P1,P2 (mdm synth --profile)")
    matrix.add_argument("--seeds", type=int, default=None, help="seeds per profile [1]")
    matrix.add_argument(
        "--seed-base", type=int, default=None, help="first seed: base, base+1, ... [--seed]"
    )
    matrix.add_argument("--no-anchor", action="store_true", help="mdm only, no plain model")
    matrix.add_argument(
        "--no-ceiling", action="store_true", help="skip matching_ceiling.py's oracle per run"
    )
    matrix.add_argument("--results", type=Path, default=None, help="write the matrix as JSON")
    args = parser.parse_args()
    if args.profiles is not None or args.seeds is not None or args.seed_base is not None:
        args.entity = args.entity or ["citizen"]
        _matrix(args)
        return
    args.entity = args.entity or ["citizen", "organization"]

    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    tmp, workdir = _workdir(args.workdir)
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
