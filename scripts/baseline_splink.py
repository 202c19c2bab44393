"""A plain Splink 5 model on a synth directory's citizen files: the anchor that
``scripts/eval_matching.py`` measures mdm against.

What it is, on purpose (a model a competent newcomer would build from the Splink
tutorials in an afternoon, none of mdm's standardizers or matching rules):

* input: every citizen file DIR/manifest.json lists, read with the encoding and
  delimiter the manifest gives; the columns that hold each standard field come from
  the file's mapping (DIR/mappings/*.yaml, read with ``load_mapping`` for the column
  names, joins, null markers and the layout's date format only);
* light cleaning, in DuckDB: lower case, diacritics stripped (``đ`` → ``d``),
  white space collapsed; personal ID, old ID and phone reduced to their digits;
  the first 10 characters of a date read with the layout's date format or one of
  dd/mm/yyyy, yyyy-mm-dd, dd-mm-yyyy, yyyymmdd, written ISO; the permanent address
  (else the current one) as lower-case text. No phone prefix conversion, no
  mojibake repair, no address parsing;
* six comparisons from ``splink.comparison_library``: ``NameComparison`` on the
  full name (Splink's default term-frequency adjustment on its exact level),
  ``DateOfBirthComparison`` on the ISO date string, ``ExactMatch`` on personal ID,
  old ID and phone, ``JaroWinklerAtThresholds`` (0.9, 0.8) on the address;
* training as the tutorials do it: the prior from deterministic rules (same
  personal ID; same full name and date of birth; recall 0.7),
  ``estimate_u_using_random_sampling`` (1e7 pairs, seeded), then EM on two blocking
  rules, date of birth and full name (each session leaves its own blocking column's
  comparison alone; sampled to 1e7 pairs if larger);
* prediction blocking: date of birth; personal ID; old ID; phone; surname + given
  name + birth year. Predict at match probability 0.5, cluster (connected
  components) at 0.95;
* evaluation as eval_matching.py does it for mdm: a predicted pair is two records in
  one cluster, a true pair two records of one true entity (truth.csv); optionally
  only over the records mdm evaluated, so that both sides count the same true pairs.
  The anchor has no review band (printed n/a).

Everything heavy stays in DuckDB (in process, spilling to a temporary directory):
no pair is materialized in Python.

Run alone:
    .venv/bin/python scripts/baseline_splink.py --synth-dir DIR [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from mdm.ingest.mapping import load_mapping

PREDICT_THRESHOLD = 0.5
CLUSTER_THRESHOLD = 0.95
PRIOR_RECALL = 0.7
U_MAX_PAIRS = 1e7
EM_MAX_PAIRS = 1e7
SEED = 42

#: date formats tried after the layout's own (first 10 characters of the text)
FALLBACK_DATE_FORMATS = ["%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%Y%m%d"]

COLUMNS = [
    "unique_id",
    "source_system",
    "source_key",
    "full_name",
    "surname",
    "given_name",
    "dob",
    "birth_year",
    "personal_id",
    "old_id",
    "phone",
    "address",
]


def _sql(con: duckdb.DuckDBPyConnection, statement: str) -> None:
    """A statement without a result (DuckDB 2 wants every result consumed)."""
    con.execute(statement).fetchall()


def _one(con: duckdb.DuckDBPyConnection, query: str) -> tuple[Any, ...]:
    """The first row of a query (the result consumed: fetchall, not fetchone)."""
    rows = con.execute(query).fetchall()
    return tuple(rows[0]) if rows else ()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _clean_text(expr: str) -> str:
    return (
        "nullif(trim(regexp_replace(replace(strip_accents(lower("
        + expr
        + ")), 'đ', 'd'), '\\s+', ' ', 'g')), '')"
    )


def _digits(expr: str) -> str:
    return f"nullif(regexp_replace({expr}, '[^0-9]', '', 'g'), '')"


def _date(expr: str, formats: Iterable[str]) -> str:
    tries = ", ".join(
        f"try_strptime(left(trim({expr}), 10), {_lit(f)})" for f in dict.fromkeys(formats)
    )
    return f"strftime(CAST(coalesce({tries}) AS DATE), '%Y-%m-%d')"


def _read_file(
    con: duckdb.DuckDBPyConnection, path: Path, entry: dict[str, Any], model: Any
) -> tuple[str, bool]:
    """The file's needed columns (all text) as a DuckDB view: its name, and whether it
    is a registered Arrow table (else a SQL view)."""
    needed = list(dict.fromkeys([*model.source_key, *_field_columns(model)]))
    view = "anchor_raw"
    fmt = entry.get("format") or model.format
    if fmt == "csv":
        encoding = entry.get("encoding") or model.encoding or "utf-8"
        delimiter = entry.get("delimiter") or model.csv.delimiter
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding=encoding, skip_rows=model.csv.skip_rows),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, quote_char=model.csv.quotechar, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=needed,
                include_missing_columns=True,
                column_types={c: pa.string() for c in needed},
                strings_can_be_null=False,
            ),
        )
        con.register(view, table)
        return view, True
    if fmt == "jsonl":
        cols = "{" + ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in needed) + "}"
        rel = f"read_json({_lit(str(path))}, format = 'newline_delimited', columns = {cols})"
    elif fmt == "parquet":
        rel = f"read_parquet({_lit(str(path))})"
    else:
        raise SystemExit(f"{path}: unknown format {fmt!r}")
    _sql(con, f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {rel}")
    return view, False


def _field_columns(model: Any) -> list[str]:
    out: list[str] = []
    for name in (
        "full_name",
        "date_of_birth",
        "personal_id",
        "old_id_number",
        "phone",
        "permanent_address",
        "current_address",
    ):
        spec = model.fields.get(name)
        if spec is not None:
            out.extend(spec.source_columns)
    return out


def _field_sql(model: Any, name: str, present: set[str]) -> str:
    """The field's raw text (joined columns, mapping null markers as NULL)."""
    spec = model.fields.get(name)
    if spec is None:
        return "NULL"
    nulls = ", ".join(_lit(v) for v in model.null_values)

    def one(col: str) -> str:
        if col not in present:
            return "CAST(NULL AS VARCHAR)"
        v = f"trim(CAST({_q(col)} AS VARCHAR))"
        if nulls:
            return f"CASE WHEN {v} = '' OR {v} IN ({nulls}) THEN NULL ELSE {v} END"
        return f"nullif({v}, '')"

    cols = spec.source_columns
    if not cols:
        return _lit(spec.default) if spec.default is not None else "NULL"
    if len(cols) == 1:
        return one(cols[0])
    return f"nullif(concat_ws({_lit(spec.join)}, {', '.join(one(c) for c in cols)}), '')"


def load_records(con: duckdb.DuckDBPyConnection, synth_dir: Path) -> int:
    """Table ``anchor_input``: one row per citizen row of every file, lightly cleaned."""
    manifest = json.loads((synth_dir / "manifest.json").read_text(encoding="utf-8"))
    _sql(
        con,
        "CREATE OR REPLACE TABLE anchor_input (unique_id BIGINT, source_system VARCHAR, "
        "source_key VARCHAR, full_name VARCHAR, surname VARCHAR, given_name VARCHAR, "
        "dob VARCHAR, birth_year VARCHAR, personal_id VARCHAR, old_id VARCHAR, "
        "phone VARCHAR, address VARCHAR)",
    )
    offset = 0
    for entry in manifest["files"]:
        if entry["entity_type"] != "citizen":
            continue
        model = load_mapping(synth_dir / entry["mapping"]).model
        view, arrow = _read_file(con, synth_dir / entry["path"], entry, model)
        present = {r[0] for r in con.execute(f"DESCRIBE {view}").fetchall()}
        key = " || '|' || ".join(f"trim(CAST({_q(c)} AS VARCHAR))" for c in model.source_key)
        spec = model.fields.get("date_of_birth")
        formats = [*(spec.date_format or [] if spec else []), *FALLBACK_DATE_FORMATS]
        name = _clean_text(_field_sql(model, "full_name", present))
        address = _clean_text(
            f"coalesce({_field_sql(model, 'permanent_address', present)}, "
            f"{_field_sql(model, 'current_address', present)})"
        )
        _sql(
            con,
            f"""
            INSERT INTO anchor_input
            SELECT {offset} + row_number() OVER () AS unique_id, {_lit(entry["source_system"])},
                   key, full_name, split_part(full_name, ' ', 1),
                   nullif(regexp_extract(full_name, '(\\S+)$', 1), ''), dob, left(dob, 4),
                   personal_id, old_id, phone, address
            FROM (
                SELECT {key} AS key, {name} AS full_name,
                       {_date(_field_sql(model, "date_of_birth", present), formats)} AS dob,
                       {_digits(_field_sql(model, "personal_id", present))} AS personal_id,
                       {_digits(_field_sql(model, "old_id_number", present))} AS old_id,
                       {_digits(_field_sql(model, "phone", present))} AS phone,
                       {address} AS address
                FROM {view}
            )
            WHERE key IS NOT NULL AND key <> ''
            """,
        )
        if arrow:
            con.unregister(view)
        else:
            _sql(con, f"DROP VIEW IF EXISTS {view}")
        row = _one(con, "SELECT max(unique_id) FROM anchor_input")
        offset = int(row[0]) if row and row[0] is not None else offset
    row = _one(con, "SELECT count(*) FROM anchor_input")
    return int(row[0]) if row else 0


def settings() -> Any:
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[
            cl.NameComparison("full_name"),
            cl.DateOfBirthComparison("dob", input_is_string=True, datetime_format="%Y-%m-%d"),
            cl.ExactMatch("personal_id"),
            cl.ExactMatch("old_id"),
            cl.ExactMatch("phone"),
            cl.JaroWinklerAtThresholds("address", [0.9, 0.8]),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("dob"),
            block_on("personal_id"),
            block_on("old_id"),
            block_on("phone"),
            block_on("surname", "given_name", "birth_year"),
        ],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def train_and_cluster(con: duckdb.DuckDBPyConnection) -> tuple[str, list[str], dict[str, float]]:
    """Train on ``anchor_input``, predict and cluster: (clusters table, warnings, timings)."""
    from splink import DuckDBAPI, Linker, block_on

    warnings: list[str] = []
    timings: dict[str, float] = {}
    db_api = DuckDBAPI(connection=con)
    linker = Linker(db_api.register("anchor_input"), settings(), log_level=None)
    t0 = time.perf_counter()
    linker.training.estimate_probability_two_random_records_match(
        [block_on("personal_id"), block_on("full_name", "dob")], recall=PRIOR_RECALL
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=U_MAX_PAIRS, seed=SEED)
    timings["prior_and_u"] = time.perf_counter() - t0
    for rule in (block_on("dob"), block_on("full_name")):
        t0 = time.perf_counter()
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, max_pairs=EM_MAX_PAIRS
            )
        except Exception as exc:  # a tiny or degenerate block: say so, go on
            warnings.append(f"EM session failed: {type(exc).__name__}: {exc}"[:300])
        timings["em"] = timings.get("em", 0.0) + time.perf_counter() - t0
    t0 = time.perf_counter()
    predictions = linker.inference.predict(threshold_match_probability=PREDICT_THRESHOLD)
    timings["predict"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=CLUSTER_THRESHOLD
    )
    timings["cluster"] = time.perf_counter() - t0
    row = _one(con, f"SELECT count(*) FROM {predictions.physical_name}")
    timings["predicted_pairs_above_0.5"] = float(row[0]) if row else 0.0
    _sql(
        con,
        f"CREATE OR REPLACE TABLE anchor_clusters AS "
        f"SELECT unique_id, cluster_id FROM {clusters.physical_name}",
    )
    predictions.drop_table_from_database_and_remove_from_cache()
    clusters.drop_table_from_database_and_remove_from_cache()
    return "anchor_clusters", warnings, timings


def evaluate(
    con: duckdb.DuckDBPyConnection,
    synth_dir: Path,
    clusters: str,
    restrict: Iterable[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Pairwise precision/recall/F1 and hard negatives linked, as eval_matching.py counts
    them for mdm; over ``restrict`` (source system, key) records only when given."""
    _sql(
        con,
        "CREATE OR REPLACE TABLE anchor_truth AS SELECT source_system, source_key, true_entity "
        f"FROM read_csv({_lit(str(synth_dir / 'truth.csv'))}, header = true, all_varchar = true) "
        "WHERE entity_type = 'citizen'",
    )
    join_restrict = ""
    if restrict is not None:
        systems, keys = zip(*restrict, strict=True) if restrict else ((), ())
        con.register(
            "anchor_restrict_arrow",
            pa.table(
                {
                    "source_system": pa.array(systems, pa.string()),
                    "source_key": pa.array(keys, pa.string()),
                }
            ),
        )
        _sql(
            con,
            "CREATE OR REPLACE TABLE anchor_restrict AS "
            "SELECT DISTINCT * FROM anchor_restrict_arrow",
        )
        con.unregister("anchor_restrict_arrow")
        join_restrict = "JOIN anchor_restrict USING (source_system, source_key)"
    _sql(
        con,
        f"""
        CREATE OR REPLACE TABLE anchor_eval AS
        SELECT i.source_system, i.source_key, c.cluster_id, t.true_entity
        FROM anchor_input i JOIN {clusters} c USING (unique_id)
        JOIN anchor_truth t USING (source_system, source_key) {join_restrict}
        """,
    )
    row = _one(
        con,
        """
        SELECT
          (SELECT count(*) FROM anchor_eval),
          (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM
             (SELECT count(*) AS n FROM anchor_eval GROUP BY cluster_id, true_entity)),
          (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM
             (SELECT count(*) AS n FROM anchor_eval GROUP BY cluster_id)),
          (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM
             (SELECT count(*) AS n FROM anchor_eval GROUP BY true_entity)),
          (SELECT count(DISTINCT cluster_id) FROM anchor_eval),
          (SELECT count(DISTINCT true_entity) FROM anchor_eval),
          (SELECT count(*) FROM anchor_input)
        """,
    )
    evaluated, tp, predicted, actual, clusters_n, entities, records = (int(v) for v in row)
    precision = tp / predicted if predicted else 1.0
    recall = tp / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    hard: dict[str, dict[str, int]] = {}
    negatives = synth_dir / "hard_negatives.csv"
    if negatives.exists():
        header = negatives.read_text(encoding="utf-8").split("\n", 1)[0].strip().split(",")
        sys_a = "source_system_a" if "source_system_a" in header else "source_system"
        sys_b = "source_system_b" if "source_system_b" in header else "source_system"
        rows = con.execute(
            f"""
            SELECT h.kind, count(*), count(*) FILTER (WHERE a.cluster_id = b.cluster_id)
            FROM read_csv({_lit(str(negatives))}, header = true, all_varchar = true) h
            JOIN anchor_eval a ON a.source_system = h.{sys_a} AND a.source_key = h.source_key_a
            JOIN anchor_eval b ON b.source_system = h.{sys_b} AND b.source_key = h.source_key_b
            GROUP BY h.kind ORDER BY h.kind
            """
        ).fetchall()
        hard = {str(k): {"pairs": int(n), "linked": int(linked)} for k, n, linked in rows}
    return {
        "records": records,
        "evaluated_records": evaluated,
        "true_entities": entities,
        "predicted_entities": clusters_n,
        "true_pairs": actual,
        "predicted_pairs": predicted,
        "true_positive_pairs": tp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "records_in_review": None,
        "review_rate": None,
        "hard_negatives": hard,
    }


def run(
    synth_dir: Path,
    *,
    restrict: Iterable[tuple[str, str]] | None = None,
    threads: int = 2,
    memory_limit: str = "4GB",
) -> dict[str, Any]:
    """Load, train, predict, cluster and evaluate the anchor on ``synth_dir``."""
    logging.getLogger("splink").setLevel(logging.ERROR)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mdm-anchor-") as spill:
        con = duckdb.connect()
        try:
            _sql(con, f"SET threads = {int(threads)}")
            _sql(con, f"SET memory_limit = {_lit(memory_limit)}")
            _sql(con, f"SET temp_directory = {_lit(spill)}")
            t0 = time.perf_counter()
            load_records(con, synth_dir)
            load_s = time.perf_counter() - t0
            clusters, warnings, timings = train_and_cluster(con)
            result = evaluate(con, synth_dir, clusters, restrict)
        finally:
            con.close()
    result["warnings"] = warnings
    result["timings"] = {"load": load_s, **timings}
    result["seconds"] = time.perf_counter() - started
    result["model"] = {
        "predict_threshold": PREDICT_THRESHOLD,
        "cluster_threshold": CLUSTER_THRESHOLD,
        "comparisons": [
            "NameComparison(full_name)",
            "DateOfBirthComparison(dob)",
            "ExactMatch(personal_id)",
            "ExactMatch(old_id)",
            "ExactMatch(phone)",
            "JaroWinklerAtThresholds(address, [0.9, 0.8])",
        ],
    }
    return result


def format_result(r: dict[str, Any]) -> list[str]:
    lines = [
        f"anchor (plain Splink 5): {r['records']:,} records, {r['evaluated_records']:,} "
        f"evaluated; true entities {r['true_entities']:,}, clusters {r['predicted_entities']:,}",
        f"pairwise (clusters at {CLUSTER_THRESHOLD}): precision {r['precision']:.5f}  recall "
        f"{r['recall']:.5f}  F1 {r['f1']:.5f}   [tp {r['true_positive_pairs']:,} / predicted "
        f"{r['predicted_pairs']:,} / true {r['true_pairs']:,}]",
        "review band: n/a (the anchor has none)",
    ]
    for kind, v in r["hard_negatives"].items():
        lines.append(f"hard negatives {kind}: {v['linked']} of {v['pairs']} pairs linked")
    for w in r["warnings"]:
        lines.append(f"warning: {w}")
    t = r["timings"]
    lines.append(
        f"time {r['seconds']:.1f} s (load {t['load']:.1f}, prior+u {t['prior_and_u']:.1f}, "
        f"EM {t.get('em', 0):.1f}, predict {t['predict']:.1f}, cluster {t['cluster']:.1f}); "
        f"{int(t['predicted_pairs_above_0.5']):,} scored pairs >= {PREDICT_THRESHOLD}"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--synth-dir", type=Path, required=True, help="an `mdm synth` output")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB's (it spills beyond)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    if not (args.synth_dir / "manifest.json").exists():
        raise SystemExit(f"{args.synth_dir}: no manifest.json")
    result = run(args.synth_dir, threads=args.threads, memory_limit=args.memory_limit)
    for line in format_result(result):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
