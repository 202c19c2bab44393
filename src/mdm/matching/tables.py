"""Getting feature rows into DuckDB without holding a million Python dicts.

A *feature source* is one of:

* a ``pyarrow.Table`` / ``RecordBatchReader`` of feature rows (``FEATURE_COLUMNS``);
* a path to a parquet file, or a glob of parquet files, of feature rows;
* an iterable of ``(unique_id, source_system, standardized_dict)``: features are
  computed here and appended in chunks of ``chunk_size`` rows, so memory stays
  flat however long the stream (the store streams ``source_record`` rows into it).

Term-frequency tables are computed once from the loaded features with Splink's own
formula (``count(value) / count(non-null)``) and handed both to Splink (registered
lookups) and to the incremental scorer, so both use identical frequencies.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from mdm.matching.features import FEATURE_COLUMNS, FeatureRow, build_features

StandardizedStream = Iterable[tuple[str, str, Mapping[str, Any]]]
FeatureSource = Any  # pa.Table | pa.RecordBatchReader | str | Path | StandardizedStream

_ARROW_TYPES = {"VARCHAR": pa.string(), "INTEGER": pa.int32(), "BOOLEAN": pa.bool_()}


def arrow_schema(entity_type: str) -> pa.Schema:
    return pa.schema(
        [(name, _ARROW_TYPES[kind]) for name, kind in FEATURE_COLUMNS[entity_type].items()]
    )


def rows_to_arrow(entity_type: str, rows: list[FeatureRow]) -> pa.Table:
    """Feature rows as an Arrow table. Rows whose keys are the schema's, in its order
    (what :func:`build_features` returns and what the store keeps) are transposed in
    one ``zip``; any other row is reordered by name."""
    schema = arrow_schema(entity_type)
    names = tuple(schema.names)
    ordered = [
        tuple(r.values()) if tuple(r) == names else tuple(r.get(n) for n in names) for r in rows
    ]
    columns = list(zip(*ordered, strict=True)) if ordered else [() for _ in names]
    return pa.table(dict(zip(names, columns, strict=True)), schema=schema)


def _create_table(con: duckdb.DuckDBPyConnection, entity_type: str, table: str) -> None:
    cols = ", ".join(f'"{n}" {t}' for n, t in FEATURE_COLUMNS[entity_type].items())
    con.execute(f'CREATE OR REPLACE TABLE "{table}" ({cols})')


def load_features(
    con: duckdb.DuckDBPyConnection,
    entity_type: str,
    source: FeatureSource,
    table: str = "mdm_features",
    chunk_size: int = 50_000,
) -> int:
    """(Re)create ``table`` from ``source``; returns the row count."""
    _create_table(con, entity_type, table)
    cols = ", ".join(f'"{n}"' for n in FEATURE_COLUMNS[entity_type])
    if isinstance(source, str | Path):
        path = str(source).replace("'", "''")
        con.execute(f"INSERT INTO \"{table}\" SELECT {cols} FROM read_parquet('{path}')")
    elif isinstance(source, pa.Table | pa.RecordBatchReader):
        arrow = source
        con.register("__mdm_arrow_in", arrow)
        try:
            con.execute(f'INSERT INTO "{table}" SELECT {cols} FROM __mdm_arrow_in')
        finally:
            con.unregister("__mdm_arrow_in")
    else:
        chunk: list[FeatureRow] = []
        for unique_id, source_system, std in source:
            chunk.append(build_features(entity_type, unique_id, source_system, std))
            if len(chunk) >= chunk_size:
                _append(con, entity_type, table, chunk)
                chunk = []
        if chunk:
            _append(con, entity_type, table, chunk)
    row = con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0]
    return int(row[0]) if row else 0


def _append(
    con: duckdb.DuckDBPyConnection, entity_type: str, table: str, rows: list[FeatureRow]
) -> None:
    arrow = rows_to_arrow(entity_type, rows)
    con.register("__mdm_chunk", arrow)
    try:
        con.execute(f'INSERT INTO "{table}" SELECT * FROM __mdm_chunk')
    finally:
        con.unregister("__mdm_chunk")


def tf_table_name(column: str) -> str:
    return f"mdm_tf_{column}"


def compute_tf_tables(
    con: duckdb.DuckDBPyConnection, table: str, columns: Iterable[str]
) -> dict[str, str]:
    """Create ``mdm_tf_<col>`` tables (``<col>``, ``tf_<col>``); returns col → table."""
    out: dict[str, str] = {}
    for col in columns:
        name = tf_table_name(col)
        con.execute(
            f'CREATE OR REPLACE TABLE "{name}" AS '
            f'SELECT "{col}", cast(count(*) as float8) / '
            f'(SELECT count("{col}") FROM "{table}") AS "tf_{col}" '
            f'FROM "{table}" WHERE "{col}" IS NOT NULL GROUP BY "{col}"'
        )
        out[col] = name
    return out


def tf_tables_to_dict(
    con: duckdb.DuckDBPyConnection, columns: Iterable[str]
) -> dict[str, dict[Any, float]]:
    """Load TF tables as Python dicts for the incremental scorer."""
    out: dict[str, dict[Any, float]] = {}
    for col in columns:
        rows = con.execute(f'SELECT "{col}", "tf_{col}" FROM "{tf_table_name(col)}"').fetchall()
        out[col] = {value: float(tf) for value, tf in rows}
    return out


def tf_tables_to_arrow(con: duckdb.DuckDBPyConnection, columns: Iterable[str]) -> pa.Table:
    """All TF tables as one long ``(column, value, tf)`` table, for the store to persist."""
    parts = [
        f"SELECT '{col}' AS column_name, cast(\"{col}\" AS VARCHAR) AS value, "
        f'"tf_{col}" AS tf FROM "{tf_table_name(col)}"'
        for col in columns
    ]
    if not parts:
        return pa.table(
            {
                "column_name": pa.array([], pa.string()),
                "value": pa.array([], pa.string()),
                "tf": pa.array([], pa.float64()),
            }
        )
    return con.sql(" UNION ALL ".join(parts)).to_arrow_table()


def connect(
    threads: int | None = None, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-process DuckDB for matching work: ``threads`` (default: the CPUs, at
    most 4), an optional ``memory_limit`` (e.g. ``6GB``); insertion order not kept."""
    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads or min(os.cpu_count() or 2, 4))}")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def tf_digest(table: pa.Table) -> str:
    """SHA-256 of the term frequencies ``table`` as sorted ``column U+001F value U+001F
    tf`` lines. Computed in DuckDB (sorting and formatting a million values in Python
    took seconds); the rows' order in ``table`` does not matter."""
    con = duckdb.connect()
    try:
        con.register("tf", table)
        row = con.execute(
            "SELECT sha256(coalesce(string_agg(column_name || chr(31) || value || chr(31) "
            "|| CAST(tf AS VARCHAR), chr(10) ORDER BY column_name, value), '')) FROM tf"
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return str(row[0])


def feature_rows(
    con: duckdb.DuckDBPyConnection, ids: Iterable[str], table: str = "mdm_features"
) -> dict[str, dict[str, Any]]:
    """The feature rows of these record ids in ``table``, by id."""
    need = pa.table({"unique_id": pa.array(sorted(set(ids)), pa.string())})
    con.register("__mdm_need", need)
    try:
        rows = con.sql(
            f'SELECT f.* FROM "{table}" f JOIN __mdm_need USING (unique_id)'
        ).to_arrow_table()
    finally:
        con.unregister("__mdm_need")
    return {str(r["unique_id"]): r for r in rows.to_pylist()}


def tf_copy_text(table: pa.Table, entity_type: str) -> Iterator[str]:
    """The term frequencies ``table`` as Postgres COPY text lines
    ``entity_type TAB column TAB value TAB tf``, in (column, value) order, in chunks.
    Values are escaped for COPY (backslash, tab, newline, carriage return); DuckDB
    writes a double as the shortest text that reads back as the same double."""

    def esc(col: str) -> str:
        return (
            f"replace(replace(replace(replace({col}, '\\', '\\\\'), chr(9), '\\t'), "
            f"chr(10), '\\n'), chr(13), '\\r')"
        )

    con = duckdb.connect()
    try:
        con.register("tf", table)
        et = entity_type.replace("'", "''")
        lines = con.sql(
            f"SELECT '{et}' || chr(9) || {esc('column_name')} || chr(9) || {esc('value')} "
            "|| chr(9) || CAST(tf AS VARCHAR) FROM tf ORDER BY column_name, value"
        ).to_arrow_reader(65_536)
        for batch in lines:
            text = "\n".join(batch.column(0).to_pylist())
            if text:
                yield text + "\n"
    finally:
        con.close()
