"""Write a column table the way each kind of legacy system exports it.

Bytes must be reproducible for a seed, so nothing here depends on the clock,
the locale or dict ordering beyond insertion order.

Columns are pyarrow arrays (lists are accepted too). CSV and JSON Lines are
rendered column-wise with pyarrow compute: each column becomes its escaped text,
the columns are joined per row and the string buffer of the result *is* the file
body, so no per-row Python runs. The output is byte-identical to what the
``csv`` module (``QUOTE_MINIMAL``) and ``json.dumps(..., ensure_ascii=False,
separators=(",", ":"))`` write; ``tests/synth`` checks that.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mdm.synth.text import to_cp1258_text

Columns = dict[str, Any]  # column name -> pyarrow array (or a Python list)

_CHUNK = 1 << 14  # rows rendered at a time: bounds the memory of one file


def _array(values: Any) -> Any:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    return pa.array(values)


def _text(arr: Any) -> Any:
    if pa.types.is_string(arr.type):
        return arr
    if pa.types.is_large_string(arr.type):
        return arr.cast(pa.string())
    return pc.cast(arr, pa.string())


def string_bytes(arr: Any) -> bytes:
    """The concatenated UTF-8 of a string array's values (nulls contribute nothing)."""
    if len(arr) == 0:
        return b""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)
    lo, hi = int(offsets[arr.offset]), int(offsets[arr.offset + len(arr)])
    data = arr.buffers()[2]
    return b"" if data is None or hi == lo else data.slice(lo, hi - lo).to_pybytes()


def _any_byte(arr: Any, chars: bytes) -> bool:
    blob = string_bytes(arr)
    return len(blob.translate(None, chars)) != len(blob)


def _csv_field(arr: Any, delimiter: str) -> Any:
    """QUOTE_MINIMAL: quote a value holding the delimiter, a quote, CR or LF."""
    s = _text(arr)
    specials = (delimiter, '"', "\r", "\n")
    if _any_byte(s, "".join(specials).encode()):
        need = pc.match_substring(s, specials[0])
        for ch in specials[1:]:
            need = pc.or_(need, pc.match_substring(s, ch))
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(s, '"', '""'), '"', "")
        s = pc.if_else(need, quoted, s)
    return pc.fill_null(s, "")


def _csv_lines(cols: dict[str, Any], delimiter: str, eol: str) -> Iterator[bytes]:
    n = len(next(iter(cols.values()))) if cols else 0
    for start in range(0, n, _CHUNK):
        fields = [_csv_field(c.slice(start, _CHUNK), delimiter) for c in cols.values()]
        lines = pc.binary_join_element_wise(*fields, delimiter)
        yield string_bytes(pc.binary_join_element_wise(lines, "", eol))


@cache
def _cp1258_table() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Per code point below U+2000: byte length (0 = not encodable) and up to 3 bytes."""
    size = 0x2000
    lens = np.zeros(size, dtype=np.uint8)
    out = np.zeros((3, size), dtype=np.uint8)
    for cp in range(size):
        try:
            b = to_cp1258_text(chr(cp)).encode("cp1258")
        except UnicodeEncodeError:
            continue
        if 0 < len(b) <= 3:
            lens[cp] = len(b)
            out[: len(b), cp] = list(b)
    return lens, out


def encode_cp1258(text: str) -> bytes:
    """``to_cp1258_text(text).encode("cp1258")``, by table lookup in numpy."""
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    lens_t, bytes_t = _cp1258_table()
    if cps.size == 0:
        return b""
    if int(cps.max()) >= lens_t.size:
        return to_cp1258_text(text).encode("cp1258")
    lens = lens_t[cps]
    if not lens.all():
        return to_cp1258_text(text).encode("cp1258")  # raises on what cp1258 lacks
    out = np.repeat(bytes_t[0][cps], lens)  # first byte, repeated for multi-byte letters
    multi = np.flatnonzero(lens > 1)  # toned letters: base + combining tone mark
    if multi.size:
        extra = lens[multi].astype(np.int64) - 1
        starts = multi + np.cumsum(extra) - extra
        m_cps = cps[multi]
        for k in (1, 2):
            sel = extra >= k
            out[starts[sel] + k] = bytes_t[k][m_cps[sel]]
    return out.tobytes()


def _encoder(encoding: str) -> tuple[bytes, Any]:
    """(prefix written once, function UTF-8 bytes -> file bytes)."""
    if encoding in ("utf-8", "utf8"):
        return b"", lambda b: b
    if encoding == "utf-8-sig":
        return b"\xef\xbb\xbf", lambda b: b
    if encoding == "utf-16":
        return b"\xff\xfe", lambda b: b.decode("utf-8").encode("utf-16-le")
    if encoding == "cp1258":
        return b"", lambda b: encode_cp1258(b.decode("utf-8"))
    return b"", lambda b: b.decode("utf-8").encode(encoding)


def write_csv(
    path: Path | IO[bytes],
    cols: Columns,
    *,
    encoding: str,
    delimiter: str,
    eol: str = "\r\n",
    header: bool = True,
) -> None:
    """CSV with CRLF line ends, as Windows spreadsheet and database tools write them.

    ``utf-16`` means little-endian with a BOM (what "Unicode Text" exports are);
    ``cp1258`` text is first rewritten with combining tone marks, the form
    Vietnamese Windows uses in that code page. ``path`` may be an open binary
    file to append to (then no BOM is written).
    """
    arrays = {k: _array(v) for k, v in cols.items()}
    prefix, encode = _encoder(encoding)
    own = isinstance(path, Path)
    f: IO[bytes] = open(path, "wb") if isinstance(path, Path) else path  # noqa: SIM115
    try:
        if own:
            f.write(prefix)
        if header:
            buf = io.StringIO()
            csv.writer(buf, delimiter=delimiter, lineterminator=eol).writerow(list(arrays))
            f.write(encode(buf.getvalue().encode("utf-8")))
        for chunk in _csv_lines(arrays, delimiter, eol):
            f.write(encode(chunk))
    finally:
        if own:
            f.close()


def _json_field(key: str, arr: Any, end: str = "") -> Any:
    """``key`` + the value as JSON text (``null`` for nulls) + ``end``, per row."""
    t = arr.type
    if pa.types.is_integer(t):
        text = pc.binary_join_element_wise(key, pc.cast(arr, pa.string()), end, "")
        return pc.fill_null(text, key + "null" + end)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        s = _text(arr)
        if _any_byte(s, bytes(range(0x20))):  # control characters: let json escape them
            enc = json.encoder.encode_basestring
            s = pa.array([None if v is None else enc(v)[1:-1] for v in s.to_pylist()])
        elif _any_byte(s, b'"\\'):
            s = pc.replace_substring(pc.replace_substring(s, "\\", "\\\\"), '"', '\\"')
        return pc.fill_null(
            pc.binary_join_element_wise(key + '"', s, '"' + end, ""), key + "null" + end
        )
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    return pa.array([key + ("null" if v is None else dumps(v)) + end for v in arr.to_pylist()])


def write_jsonl(path: Path, cols: Columns) -> None:
    arrays = {k: _array(v) for k, v in cols.items()}
    n = len(next(iter(arrays.values()))) if arrays else 0
    names = list(arrays)
    keys = [json.dumps(k, ensure_ascii=False) + ":" for k in names]
    keys[0] = "{" + keys[0]
    ends = [""] * (len(names) - 1) + ["}\n"]
    with open(path, "wb") as f:
        for start in range(0, n, _CHUNK):
            parts = [
                _json_field(key, arrays[k].slice(start, _CHUNK), end)
                for k, key, end in zip(names, keys, ends, strict=True)
            ]
            f.write(string_bytes(pc.binary_join_element_wise(*parts, ",")))


def write_parquet(path: Path, cols: Columns, types: dict[str, str]) -> None:
    import pyarrow.parquet as pq

    arrays = {}
    for name, values in cols.items():
        kind = types.get(name, "string")
        typ = {"string": pa.string(), "int32": pa.int32(), "date32": pa.date32()}[kind]
        arr = _array(values)
        arrays[name] = arr if arr.type == typ else arr.cast(typ)
    table = pa.table(arrays)
    pq.write_table(table, path, compression="zstd")
