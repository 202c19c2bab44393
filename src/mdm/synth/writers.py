"""Write a column table the way each kind of legacy system exports it.

Bytes must be reproducible for a seed, so nothing here depends on the clock,
the locale or dict ordering beyond insertion order.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from mdm.synth.text import to_cp1258_text

Columns = dict[str, list[Any]]


def _rows(cols: Columns) -> list[tuple[Any, ...]]:
    return list(zip(*cols.values(), strict=True))


def write_csv(path: Path, cols: Columns, *, encoding: str, delimiter: str) -> None:
    """CSV with CRLF line ends, as Windows spreadsheet and database tools write them.

    ``utf-16`` means little-endian with a BOM (what "Unicode Text" exports are);
    ``cp1258`` text is first rewritten with combining tone marks, the form
    Vietnamese Windows uses in that code page.
    """
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(list(cols))
    w.writerows(_rows(cols))  # the csv module writes None as an empty field
    text = buf.getvalue()
    if encoding == "utf-16":
        data = b"\xff\xfe" + text.encode("utf-16-le")
    elif encoding == "cp1258":
        data = to_cp1258_text(text).encode("cp1258")
    else:
        data = text.encode(encoding)
    path.write_bytes(data)


def _json_column(name: str, values: list[Any]) -> list[str]:
    """Each value pre-encoded as ``"name":value``; column-wise so the C encoder does the work."""
    prefix = json.dumps(name, ensure_ascii=False) + ":"
    enc = json.encoder.encode_basestring
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    return [
        prefix + (enc(v) if isinstance(v, str) else "null" if v is None else dumps(v))
        for v in values
    ]


def write_jsonl(path: Path, cols: Columns) -> None:
    encoded = [_json_column(name, values) for name, values in cols.items()]
    lines = ["{" + ",".join(parts) + "}" for parts in zip(*encoded, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


def write_parquet(path: Path, cols: Columns, types: dict[str, str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for name, values in cols.items():
        kind = types.get(name, "string")
        typ = {"string": pa.string(), "int32": pa.int32(), "date32": pa.date32()}[kind]
        arrays[name] = pa.array(values, type=typ)
    table = pa.table(arrays)
    pq.write_table(table, path, compression="zstd")
