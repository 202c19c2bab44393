"""The incremental scorer reproduces Splink's predict to 1e-6, per comparison and in total.

Two sets of pairs: every pair Splink's blocking produces on generated data (with
the registry's TF tables), and the full cross product of hand-made edge cases
(nulls everywhere, common TF-adjusted surnames, values missing from the TF tables,
partial and placeholder dates, swapped day/month, surname variants, dropped
Van/Thi) scored with Splink's ``score_pairs``.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb
import pytest

from mdm.matching.features import build_features
from mdm.matching.incremental import IncrementalScorer
from mdm.matching.linker import make_linker
from mdm.matching.tables import compute_tf_tables, load_features, rows_to_arrow, tf_tables_to_dict
from mdm.matching.training import TrainedModel

TOL = 1e-6

EDGE_CASES: list[dict[str, Any]] = [
    {},
    {"full_name": "Nguyễn Văn An", "date_of_birth": "1990-05-12", "sex": "male"},
    {"full_name": "Nguyễn An", "date_of_birth": "1990-12-05", "sex": "male"},
    {"full_name": "Nguyễn Văn An", "date_of_birth": "1990"},
    {"full_name": "Nguyễn Văn Ân", "date_of_birth": "1990-01-01", "personal_id": "001090012345"},
    {"full_name": "Hoàng Thị Mai", "date_of_birth": "1985-03", "sex": "female"},
    {"full_name": "Huỳnh Thị Mai", "date_of_birth": "1985-03-07", "sex": "female"},
    {"full_name": "Huỳnh Mai", "date_of_birth": "1985-07-03", "phone": "+84912345678"},
    {"full_name": "Vũ Đức Thắng", "personal_id": "001090012345", "old_id_number": "012345678"},
    {"full_name": "Võ Đức Thắng", "personal_id": "001090012354", "old_id_number": "012345678"},
    {"full_name": "Trần", "date_of_birth": "1991-05-12"},
    {"full_name": "Zzyzx Qwerty Unseen", "date_of_birth": "2001-02-03", "sex": "female"},
    {"full_name": "Lê Thị Hồng Nhung", "email": "a@b.vn", "phone": "+84912345678"},
    {"full_name": "Lê Hồng Nhung", "email": "a@b.vn"},
    {"personal_id": "001090012345", "date_of_birth": "1990-05-12"},
    {
        "full_name": "Phạm Văn Nam",
        "permanent_address": {"province_code": "01", "commune_code": "00004", "street": "1 Lê Lợi"},
    },
    {
        "full_name": "Phạm Nam",
        "permanent_address": {"province_code": "01", "commune_code": "00004", "street": "1 Le Loi"},
    },
    {
        "full_name": "Phạm Văn Nam",
        "permanent_address": {"province_code": "01", "legacy_commune_code": "00007"},
        "place_of_birth": {"province_code": "01"},
    },
    {
        "full_name": "Phạm Văn Nam",
        "permanent_address": {
            "province_code": "01",
            "legacy_commune_code": "00007",
            "commune_code": "00004",
            "ambiguous": True,
        },
        "place_of_birth": {"province_code": "79"},
    },
    {"full_name": "Đặng Thị Thu Hà", "date_of_birth": "1970-10-10", "sex": "female"},
    {"full_name": "Dang Thi Thu Ha", "date_of_birth": "1971-10-10", "sex": "male"},
]


def _assert_close(
    row: dict[str, Any],
    left: dict[str, Any],
    right: dict[str, Any],
    scorer: IncrementalScorer,
    comparisons: list[str],
) -> None:
    mine = scorer.score(left, right)
    for comp in comparisons:
        splink_w = row[f"mw_{comp}"] + (row.get(f"mw_tf_adj_{comp}") or 0.0)
        if f"gamma_{comp}" in row:  # present when Splink retains matching columns
            assert mine.gammas[comp] == row[f"gamma_{comp}"], (comp, left, right)
        assert math.isclose(mine.weights[comp], splink_w, abs_tol=TOL), (comp, left, right)
    assert math.isclose(mine.match_weight, row["match_weight"], abs_tol=TOL), (left, right)
    assert math.isclose(mine.match_probability, row["match_probability"], abs_tol=TOL)


@pytest.fixture(scope="module")
def registry(
    trained: TrainedModel, citizen_data: Any
) -> tuple[Any, duckdb.DuckDBPyConnection, dict[str, Any]]:
    con = duckdb.connect()
    con.execute("SET threads = 2")
    # the registry: generated records plus the edge cases, so some edge values get TF entries
    records = list(citizen_data.records)
    records += [(f"e{i}", "edge", std) for i, std in enumerate(EDGE_CASES[: len(EDGE_CASES) // 2])]
    load_features(con, "citizen", records)
    tf_names = compute_tf_tables(con, "mdm_features", trained.rules.tf_columns)
    linker = make_linker(con, "mdm_features", trained.settings, tf_names)
    tf = tf_tables_to_dict(con, trained.rules.tf_columns)
    return linker, con, tf


def test_parity_on_blocked_pairs(trained: TrainedModel, registry: Any) -> None:
    linker, con, tf = registry
    scorer = IncrementalScorer(trained.match_model(), tf)
    rows = {
        r["unique_id"]: r
        for r in con.sql("SELECT * FROM mdm_features").to_arrow_table().to_pylist()
    }
    predictions = linker.inference.predict(warning_mode="never")
    out = con.sql(f"SELECT * FROM {predictions.physical_name}").to_arrow_table().to_pylist()
    assert len(out) >= 1000
    comparisons = [c.name for c in trained.rules.comparisons]
    for row in out:
        _assert_close(row, rows[row["unique_id_l"]], rows[row["unique_id_r"]], scorer, comparisons)


def test_parity_on_edge_cases(trained: TrainedModel, registry: Any) -> None:
    linker, con, tf = registry
    scorer = IncrementalScorer(trained.match_model(), tf)
    feats = [build_features("citizen", f"x{i}", "edge", std) for i, std in enumerate(EDGE_CASES)]
    db_api = linker._db_api
    left = db_api.register(rows_to_arrow("citizen", feats))
    right = db_api.register(rows_to_arrow("citizen", feats))
    scored = linker.inference.score_pairs(left, right)
    out = con.sql(f"SELECT * FROM {scored.physical_name}").to_arrow_table().to_pylist()
    assert len(out) == len(feats) ** 2
    by_id = {f["unique_id"]: f for f in feats}
    comparisons = [c.name for c in trained.rules.comparisons]
    tf_applied = 0
    for row in out:
        _assert_close(
            row, by_id[row["unique_id_l"]], by_id[row["unique_id_r"]], scorer, comparisons
        )
        tf_applied += abs(row.get("mw_tf_adj_name") or 0.0) > 0
    assert tf_applied > 0
