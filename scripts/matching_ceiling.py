"""How well could any link rule do with these comparisons? An upper bound from the truth.

Run it after `mdm match train` and `mdm match run` on `mdm synth` data (for example
the database `bench_e2e.py --keep` leaves, or `eval_matching.py --workdir DIR`). Every
blocked pair is scored with the trained model and put in a *cell*: the level each
comparison reached and the match weight rounded down to a whole bit (which carries
the term-frequency adjustments). An oracle that knows the ground truth then links
cells, the purest first (and a share of the next one, which only raises the bound),
and the script prints the recall it reaches at each precision, beside what the
model's own threshold does. Pairs a guard forbids are
never linked, as in the pipeline.

No rule that sees only these comparisons can separate two pairs of one cell, so if
even the oracle misses a precision/recall target, what limits is the evidence the
comparisons carry, not the threshold or the training. Both figures are per pair
linked directly (edge level), before clustering adds the pairs a chain of links
implies: they sit a little below the pipeline's pairwise figures.

    .venv/bin/python scripts/matching_ceiling.py --database-url URL --synth-dir DIR \\
        [--rules-dir DIR] [--entity citizen]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
from sqlalchemy import create_engine, text

from mdm.config import normalize_database_url
from mdm.matching.linker import make_linker, scored_pairs_sql
from mdm.matching.model import MatchModel, weight_to_prob
from mdm.matching.rules import load_rules
from mdm.matching.tables import compute_tf_tables, load_features, rows_to_arrow
from mdm.services.matching.common import model_path

PRECISIONS = (0.9995, 0.999, 0.998, 0.997, 0.995)


def _oracle(cells: list[tuple[int, int]], precision: float) -> tuple[float, float]:
    """The most true pairs any choice of cells links at ``precision`` or better, and
    the false pairs it links with them: whole cells, purest first, then the share of
    the next cell that brings the precision down to exactly ``precision``. Linking
    part of a cell is not a rule anyone can apply; allowing it makes this the optimum
    of the relaxed problem, a true upper bound for every choice of whole cells."""
    tp = fp = 0.0
    for t, f in cells:  # purest first
        if tp + t >= precision * (tp + fp + t + f):
            tp, fp = tp + t, fp + f
            continue
        share = (tp - precision * (tp + fp)) / (precision * (t + f) - t)
        return tp + share * t, fp + share * f
    return tp, fp


def compute(
    database_url: str, synth_dir: Path, rules_dir: Path | None = None, entity: str = "citizen"
) -> dict[str, Any]:
    """The oracle's recall at each precision in :data:`PRECISIONS` and the model at its
    own threshold, on the store at ``database_url`` (after ``mdm match run``) against
    ``synth_dir``'s truth."""
    rules = load_rules(entity, rules_dir)
    trained = model_path(entity, rules_dir)
    if not trained.is_file():
        sys.exit(f"{trained}: no trained model; run `mdm match train --entity {entity}`")
    settings = orjson.loads(trained.read_bytes())
    # the thresholds training derived from the rules' precision target, if any
    rules = MatchModel.from_settings(settings, rules, where=str(trained)).rules

    if not (synth_dir / "truth.csv").is_file():
        sys.exit(f"{synth_dir}: no truth.csv (the directory `mdm synth --out` wrote)")
    truth: dict[tuple[str, str], str] = {}
    with (synth_dir / "truth.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["entity_type"] == entity:
                truth[(row["source_system"], row["source_key"])] = row["true_entity"]

    engine = create_engine(normalize_database_url(database_url))
    uids: list[str] = []
    entities: list[str] = []
    features = []
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT sr.id, ss.name, sr.source_key, mf.features FROM source_records sr "
                "JOIN source_systems ss ON ss.id = sr.source_system_id "
                "JOIN match_features mf ON mf.source_record_id = sr.id "
                "WHERE sr.entity_type = :e AND sr.status = 'active'"
            ),
            {"e": entity},
        )
        for rid, system, key, feats in rows:
            if (system, key) not in truth:
                continue
            uids.append(str(rid))
            entities.append(truth[(system, key)])
            features.append(feats if isinstance(feats, dict) else orjson.loads(feats))
    engine.dispose()
    if not features:
        sys.exit("no feature rows with ground truth: run `mdm match run` on synth data first")
    sizes: dict[str, int] = {}
    for e in entities:
        sizes[e] = sizes.get(e, 0) + 1
    true_pairs = sum(n * (n - 1) // 2 for n in sizes.values())

    con = duckdb.connect()
    load_features(con, entity, rows_to_arrow(entity, features))
    del features
    con.register("truth_arrow", pa.table({"uid": uids, "te": entities}))
    con.execute("CREATE TABLE truth AS SELECT * FROM truth_arrow")
    tf_names = compute_tf_tables(con, "mdm_features", rules.tf_columns)
    linker = make_linker(con, "mdm_features", settings, tf_names)
    predictions = linker.inference.predict(warning_mode="never")
    comps = [c.name for c in rules.comparisons]
    # each level of a comparison has its own weight: the rounded weight names the level
    levels = ", ".join(f'round(p."mw_{c}", 3) AS "lv_{c}"' for c in comps)
    scored = scored_pairs_sql(rules, predictions.physical_name, "mdm_features", levels)
    con.execute(
        f"CREATE TABLE cells AS SELECT s.* EXCLUDE (unique_id_l, unique_id_r), "
        f"a.te = b.te AS is_true FROM ({scored}) s "
        "JOIN truth a ON a.uid = s.unique_id_l JOIN truth b ON b.uid = s.unique_id_r"
    )
    blocked, guarded = con.execute(
        "SELECT sum(is_true::INT), sum(CASE WHEN guard IS NOT NULL THEN is_true::INT END) "
        "FROM cells"
    ).fetchone() or (0, 0)
    cols = ", ".join(f'"lv_{c}"' for c in comps)
    cells = con.execute(
        f"SELECT sum(is_true::INT), sum((NOT is_true)::INT) FROM cells WHERE guard IS NULL "
        f"GROUP BY {cols}, floor(match_weight)"
    ).fetchall()
    cells.sort(key=lambda c: -c[0] / (c[0] + c[1]))
    oracle = {}
    for target in PRECISIONS:
        t, f = _oracle(cells, target)
        oracle[str(target)] = {"recall": t / true_pairs, "true": t, "false": f}
    auto = rules.thresholds.auto_link_weight
    t, f = con.execute(
        "SELECT sum(is_true::INT), sum((NOT is_true)::INT) FROM cells "
        f"WHERE guard IS NULL AND match_weight >= {auto}"
    ).fetchone() or (0, 0)
    con.close()
    return {
        "entity": entity,
        "records": len(uids),
        "true_pairs": true_pairs,
        "blocked_true_pairs": int(blocked or 0),
        "guarded_true_pairs": int(guarded or 0),
        "oracle": oracle,
        "model": {
            "threshold": weight_to_prob(auto),
            "precision": (t or 0) / max((t or 0) + (f or 0), 1),
            "recall": (t or 0) / true_pairs,
            "true": int(t or 0),
            "false": int(f or 0),
        },
    }


def format_result(r: dict[str, Any]) -> list[str]:
    lines = [
        f"{r['entity']}: {r['records']:,} records, {r['true_pairs']:,} true pairs",
        f"  blocked true pairs {r['blocked_true_pairs']:,} (a guard forbids "
        f"{r['guarded_true_pairs']:,}); no blocking key shared: "
        f"{r['true_pairs'] - r['blocked_true_pairs']:,}",
    ]
    for target, o in r["oracle"].items():
        lines.append(
            f"  oracle, precision >= {target}: recall {o['recall']:.5f}  "
            f"(linked {o['true']:,.0f} true, {o['false']:,.0f} false)"
        )
    m = r["model"]
    lines.append(
        f"  model at its threshold (p >= {m['threshold']:.2f}): precision "
        f"{m['precision']:.5f}  recall {m['recall']:.5f}  "
        f"(linked {m['true']:,} true, {m['false']:,} false)"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--synth-dir", type=Path, required=True)
    parser.add_argument("--rules-dir", type=Path, default=None)
    parser.add_argument("--entity", default="citizen")
    args = parser.parse_args()
    started = time.perf_counter()
    result = compute(args.database_url, args.synth_dir, args.rules_dir, args.entity)
    for line in format_result(result):
        print(line)
    print(f"  ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
