"""Splink over our feature tables: the linker, and the SQL that reads its scored pairs.

Both the training (the thresholds it derives) and the batch run score pairs this way.
"""

from __future__ import annotations

from typing import Any

import duckdb

from mdm.matching.rules import MatchingRules

#: Key of the model file that holds the thresholds derived from the rules' targets
#: (:mod:`mdm.matching.thresholds`); Splink never sees it.
THRESHOLDS_KEY = "mdm_thresholds"


def make_linker(
    con: duckdb.DuckDBPyConnection,
    table: str,
    settings: dict[str, Any],
    tf_tables: dict[str, str],
) -> Any:
    """A Splink linker over an existing DuckDB table, with our TF tables registered."""
    from splink import DuckDBAPI, Linker

    db_api = DuckDBAPI(connection=con)
    settings = {k: v for k, v in settings.items() if k != THRESHOLDS_KEY}
    linker = Linker(db_api.register(table), settings, log_level=None)
    for col, tf_table in tf_tables.items():
        linker.table_management.register_term_frequency_lookup(db_api.register(tf_table), col)
    return linker


def scored_pairs_sql(rules: MatchingRules, predictions: str, table: str, mw_cols: str) -> str:
    """The scored pairs with their per-comparison weights and, per pair, the first
    guard that forbids an automatic link (``guard:<name>``) or NULL."""
    head = f"SELECT p.unique_id_l, p.unique_id_r, p.match_weight, p.match_probability, {mw_cols}"
    guards = rules.deterministic.guards
    if not guards:
        return f"{head}, NULL::VARCHAR AS guard FROM {predictions} p"
    cols = list(dict.fromkeys(c for g in guards for c in g.columns))
    sides = ", ".join(f'l."{c}" AS "{c}_l", r."{c}" AS "{c}_r"' for c in cols)
    case = " ".join(f"WHEN {g.sql()} THEN 'guard:{g.name}'" for g in guards)
    return (
        f"{head}, CASE {case} END AS guard FROM ("
        f"SELECT p.*, {sides} FROM {predictions} p "
        f'JOIN "{table}" l ON l.unique_id = p.unique_id_l '
        f'JOIN "{table}" r ON r.unique_id = p.unique_id_r) p'
    )


def count_pairs(con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> int:
    """Pairs an equality blocking rule generates: Σ n(n−1)/2 over its non-null groups."""
    cols = ", ".join(f'"{c}"' for c in columns)
    not_null = " AND ".join(f'"{c}" IS NOT NULL' for c in columns)
    row = con.execute(
        f"SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM "
        f'(SELECT count(*) AS n FROM "{table}" WHERE {not_null} GROUP BY {cols})'
    ).fetchall()[0]
    return int(row[0]) if row else 0
