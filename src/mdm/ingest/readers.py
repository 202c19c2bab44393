"""Streaming readers for the files legacy systems export: CSV, JSON Lines, Parquet.

Every reader yields ``Row`` objects one at a time (memory stays flat whatever the
file size) and never raises for a bad *row*: a row it cannot read is yielded with
an ``error`` so the caller rejects it with its line number and raw content. A file
it cannot read at all (binary, empty, unknown encoding, missing columns) raises
``InputFileError`` before any row is produced.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdm.exceptions import BadRequest

# A row larger than this is rejected (with a truncated copy of its content) rather
# than held in memory and written to the store.
MAX_ROW_BYTES = 1_000_000
RAW_CONTENT_LIMIT = 10_000
_SNIFF_BYTES = 64 * 1024


class InputFileError(BadRequest):
    """The input file cannot be read at all."""

    code = "input_file_error"


@dataclass(slots=True)
class Row:
    number: int  # 1-based line (CSV/JSONL: physical line where the row starts) or row index
    values: dict[str, Any] | None
    raw: str  # the row as it appeared in the file (truncated when huge)
    error: str | None = None  # why the row could not be read
    error_code: str | None = None


def _truncate(text: str) -> str:
    if len(text) <= RAW_CONTENT_LIMIT:
        return text
    return text[:RAW_CONTENT_LIMIT] + f"... [{len(text) - RAW_CONTENT_LIMIT} more characters]"


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    return "csv"


def _check_not_binary(head: bytes, path: Path, encoding: str | None) -> None:
    if not head:
        raise InputFileError(f"{path}: the file is empty (no header, no rows)")
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
        encoding or ""
    ).lower().replace("-", "").startswith("utf16")
    if not utf16 and b"\x00" in head:
        raise InputFileError(
            f"{path}: looks like a binary file (NUL bytes in the first {len(head)} bytes), "
            "not a text export"
        )


def detect_encoding(path: Path) -> str:
    """BOMs first; then UTF-8 if the whole file decodes as UTF-8; else Windows-1258.

    Vietnamese Windows exports without a BOM are Windows-1258; a UTF-8 check over the
    whole file (streamed) avoids deciding on a sample that happens to be ASCII.
    """
    with path.open("rb") as fh:
        head = fh.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        try:
            while chunk := fh.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1258"
    return "utf-8"


class _LineCounter:
    """Feeds csv.reader line by line while remembering where each record starts, and
    refuses to accumulate a runaway record (an unterminated quote, a 2 GB line).

    Past ``MAX_ROW_BYTES`` the record's lines are replaced by their quote parity
    only, so the CSV parser still finds where the record ends while memory stays
    bounded; the caller then rejects the record as too large.
    """

    def __init__(self, text: io.TextIOWrapper, quotechar: str) -> None:
        self._text = text
        self._quote = quotechar
        self.line = 0
        self.record_chars = 0
        self.record_lines: list[str] = []
        self.overflow = False

    def __iter__(self) -> _LineCounter:
        return self

    def __next__(self) -> str:
        line = self._text.readline(MAX_ROW_BYTES + 1)
        if not line:
            raise StopIteration
        self.line += 1
        if not self.overflow and self.record_chars + len(line) <= MAX_ROW_BYTES:
            self.record_chars += len(line)
            self.record_lines.append(line)
            return line
        self.overflow = True
        quotes = line.count(self._quote)
        while not line.endswith("\n"):
            line = self._text.readline(MAX_ROW_BYTES + 1)
            if not line:
                break
            quotes += line.count(self._quote)
        return self._quote * (quotes % 2) + "\n"


def read_csv(
    path: Path,
    *,
    encoding: str | None,
    delimiter: str | None = None,
    quotechar: str = '"',
    skip_rows: int = 0,
) -> tuple[list[str], Iterator[Row], str]:
    """Open a CSV file; returns (header, rows, encoding actually used)."""
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    _check_not_binary(head, path, encoding)
    used = encoding or detect_encoding(path)
    try:
        codecs.lookup(used)
    except LookupError:
        raise InputFileError(f"{path}: unknown encoding {used!r}") from None
    if used.lower().replace("-", "").replace("_", "") == "utf8":
        used = "utf-8-sig"  # tolerate a BOM even when told "utf-8"

    text = open(path, encoding=used, errors="strict", newline="")  # noqa: SIM115
    lines = _LineCounter(text, quotechar)
    try:
        for _ in range(skip_rows):
            next(lines)
        header_line = next(lines, None)
    except UnicodeDecodeError as exc:
        text.close()
        raise InputFileError(
            f"{path}: not valid {used} ({exc.reason} at byte {exc.start})"
        ) from None
    if header_line is None or not header_line.strip():
        text.close()
        raise InputFileError(f"{path}: the file is empty (no header, no rows)")
    if delimiter is None:
        counts = {d: header_line.count(d) for d in (",", "\t", ";", "|")}
        delimiter = max(counts, key=lambda d: counts[d])
    header = next(csv.reader([header_line], delimiter=delimiter, quotechar=quotechar))
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        text.close()
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise InputFileError(f"{path}: duplicate column names in the header: {dupes}")

    def rows() -> Iterator[Row]:
        csv.field_size_limit(MAX_ROW_BYTES + 1)
        reader = csv.reader(lines, delimiter=delimiter, quotechar=quotechar, strict=False)
        width = len(header)
        try:
            while True:
                lines.record_chars = 0
                lines.record_lines = []
                lines.overflow = False
                start = lines.line + 1
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError as exc:
                    yield Row(
                        start,
                        None,
                        "",
                        f"bytes that are not valid {used} ({exc.reason}); the rest of the "
                        "file cannot be decoded",
                        "encoding_error",
                    )
                    return
                except csv.Error as exc:
                    raw = _truncate("".join(lines.record_lines))
                    yield Row(start, None, raw, f"CSV syntax error: {exc}", "csv_syntax")
                    continue
                raw = _truncate("".join(lines.record_lines).rstrip("\r\n"))
                if lines.overflow:
                    yield Row(
                        start,
                        None,
                        raw,
                        f"row larger than {MAX_ROW_BYTES} bytes",
                        "row_too_large",
                    )
                    continue
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue  # blank line
                if len(fields) != width:
                    yield Row(
                        start,
                        None,
                        raw,
                        f"{len(fields)} columns where the header has {width} "
                        "(truncated or malformed line)",
                        "wrong_column_count",
                    )
                    continue
                yield Row(start, dict(zip(header, fields, strict=True)), raw)
        finally:
            text.close()

    return header, rows(), used


def read_jsonl(path: Path, *, encoding: str | None) -> tuple[list[str] | None, Iterator[Row], str]:
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    _check_not_binary(head, path, encoding)
    used = encoding or "utf-8-sig"

    def rows() -> Iterator[Row]:
        with path.open("rb") as fh:
            number = 0
            while True:
                line = fh.readline(MAX_ROW_BYTES + 1)
                if not line:
                    return
                number += 1
                if len(line) > MAX_ROW_BYTES and not line.endswith(b"\n"):
                    raw = line[:RAW_CONTENT_LIMIT].decode(used, errors="replace")
                    while line and not line.endswith(b"\n"):
                        line = fh.readline(MAX_ROW_BYTES + 1)
                    yield Row(
                        number,
                        None,
                        _truncate(raw) + "...",
                        f"row larger than {MAX_ROW_BYTES} bytes",
                        "row_too_large",
                    )
                    continue
                try:
                    text = line.decode(used)
                except UnicodeDecodeError as exc:
                    yield Row(
                        number,
                        None,
                        _truncate(line.decode(used, errors="replace")),
                        f"not valid {used} ({exc.reason})",
                        "encoding_error",
                    )
                    continue
                if number == 1:
                    text = text.lstrip("\ufeff")
                if not text.strip():
                    continue
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield Row(
                        number,
                        None,
                        _truncate(text.rstrip("\r\n")),
                        f"not valid JSON: {exc.msg} at column {exc.colno} "
                        "(truncated or malformed line)",
                        "json_syntax",
                    )
                    continue
                if not isinstance(value, dict):
                    yield Row(
                        number,
                        None,
                        _truncate(text.rstrip("\r\n")),
                        f"a JSON {type(value).__name__}, not an object",
                        "json_not_object",
                    )
                    continue
                yield Row(number, value, _truncate(text.rstrip("\r\n")))

    return None, rows(), used


def read_parquet(path: Path, batch_size: int = 10_000) -> tuple[list[str], Iterator[Row], str]:
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: the file is empty")
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a non-Parquet file
        raise InputFileError(
            f"{path}: not a readable Parquet file ({type(exc).__name__})"
        ) from None
    header = list(pf.schema_arrow.names)

    def rows() -> Iterator[Row]:
        number = 0
        for batch in pf.iter_batches(batch_size=batch_size):
            for values in batch.to_pylist():
                number += 1
                raw = json.dumps(values, ensure_ascii=False, default=str)
                yield Row(number, values, _truncate(raw))

    return header, rows(), "parquet"


def to_text(value: Any) -> str | None:
    """A cell as text for the stored raw payload (None for blanks and NaN)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def open_rows(
    path: Path,
    *,
    fmt: str | None,
    encoding: str | None,
    delimiter: str | None = None,
    quotechar: str = '"',
    skip_rows: int = 0,
) -> tuple[list[str] | None, Iterator[Row], str]:
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if not path.is_file():
        raise InputFileError(f"{path}: not a regular file")
    kind = fmt or detect_format(path)
    if kind == "parquet":
        return read_parquet(path)
    if kind == "jsonl":
        return read_jsonl(path, encoding=encoding)
    return read_csv(
        path, encoding=encoding, delimiter=delimiter, quotechar=quotechar, skip_rows=skip_rows
    )


def file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
