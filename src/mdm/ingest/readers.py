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
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdm.exceptions import BadRequest

# A row larger than this is rejected (with a truncated copy of its content) rather
# than held in memory and written to the store.
MAX_ROW_BYTES = 1_000_000
RAW_CONTENT_LIMIT = 10_000
# JSON Lines: objects nested deeper than this are rejected (the parser and everything
# downstream recurse; a line of 100,000 brackets must be a reject, not a crash).
MAX_JSON_DEPTH = 32
# An unclosed CSV quote swallows the rest of the file into one field; the reader
# rejects its line and reads on from the next one, at most this many times per file
# (each recovery re-reads what the quote swallowed).
MAX_QUOTE_RECOVERIES = 100
_SNIFF_BYTES = 64 * 1024
# Undecodable bytes survive decoding as lone surrogates (errors="surrogateescape") so
# that one bad byte rejects its row, not the file.
_SURROGATES = re.compile("[\udc80-\udcff]")
# surrogateescape that also counts the bytes it escaped: a reader checks its rows for
# surrogates only once its file has had one (valid files pay nothing per row)
_ESCAPED = [0]
_surrogateescape = codecs.lookup_error("surrogateescape")


def _count_and_escape(exc: UnicodeError) -> tuple[str | bytes, int]:
    assert isinstance(exc, UnicodeDecodeError)
    _ESCAPED[0] += exc.end - exc.start
    return _surrogateescape(exc)


_COUNTING = "mdm-surrogateescape"
codecs.register_error(_COUNTING, _count_and_escape)


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


def _storable(text: str) -> str:
    """The raw content of a rejected row as text every store can hold: NUL shown as
    U+2400, undecodable bytes as U+FFFD (Postgres refuses NUL; drivers refuse
    surrogates)."""
    text = text.replace("\x00", "\u2400")
    return _SURROGATES.sub("\ufffd", text) if _SURROGATES.search(text) else text


def _nul_in(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_nul_in(k) or _nul_in(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_nul_in(v) for v in value)
    return False


def _too_deep(value: Any) -> bool:
    """Nesting deeper than MAX_JSON_DEPTH (iterative: no recursion on hostile input)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


_NUL_MESSAGE = "NUL character in the row (a text field cannot hold it)"


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
    # A stray NUL in a text export rejects its row; a file made of them is not text.
    nuls = 0 if utf16 else head.count(b"\x00")
    if nuls and (nuls * 100 >= len(head) or nuls > 64):
        raise InputFileError(
            f"{path}: looks like a binary file (NUL bytes in the first {len(head)} bytes), "
            "not a text export"
        )


def detect_encoding(path: Path) -> str:
    """BOMs first; then UTF-8 if the file is UTF-8; else Windows-1258.

    Vietnamese Windows exports without a BOM are Windows-1258; a UTF-8 check over the
    whole file (streamed) avoids deciding on a sample that happens to be ASCII. A
    UTF-8 file with a few corrupt bytes is still UTF-8 (its bad rows are rejected):
    the file is UTF-8 when its valid multi-byte characters outnumber its invalid
    bytes ten to one, which Windows-1258 text (tone marks are lone high bytes) never
    does.
    """
    with path.open("rb") as fh:
        head = fh.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")(errors=_COUNTING)
        escaped_before = _ESCAPED[0]
        extra = 0
        while chunk := fh.read(1 << 20):
            if chunk.isascii() and not decoder.getstate()[0]:
                continue
            # each invalid byte decodes to one surrogate; a valid character of n
            # bytes to one character: the difference counts continuation bytes
            extra += len(chunk) - len(decoder.decode(chunk))
        extra -= len(decoder.decode(b"", final=True))
        invalid = _ESCAPED[0] - escaped_before
    if invalid and extra < 10 * invalid:
        return "cp1258"
    return "utf-8"


class _LineCounter:
    """Feeds csv.reader line by line while remembering where each record starts, and
    refuses to accumulate a runaway record (an unterminated quote, a 2 GB line).

    Past ``MAX_ROW_BYTES`` the record's lines are replaced by their quote parity
    only, so the CSV parser still finds where the record ends while memory stays
    bounded; the caller then rejects the record as too large (keeping its first
    ``RAW_CONTENT_LIMIT`` characters). Lines can be pushed back (``replay``) to be
    read again, which is how the reader recovers from an unclosed quote.
    """

    def __init__(self, text: io.TextIOWrapper, quotechar: str) -> None:
        self._text = text
        self._quote = quotechar
        self._replay: deque[str] = deque()
        self.line = 0
        self.eof = False
        self.record_chars = 0
        self.record_lines: list[str] = []
        self.record_head = ""  # the start of an overflowing record, for its reject
        self.overflow = False

    def __iter__(self) -> _LineCounter:
        return self

    def replay(self, lines: list[str], first_number: int) -> None:
        """Read ``lines`` again (numbered from ``first_number``) before the file's rest."""
        self._replay.extendleft(reversed(lines))
        self.line = first_number - 1
        self.eof = False

    def _readline(self) -> str:
        if self._replay:
            return self._replay.popleft()
        line = self._text.readline(MAX_ROW_BYTES + 1)
        if not line:
            self.eof = True
        return line

    def __next__(self) -> str:
        line = self._replay.popleft() if self._replay else self._text.readline(MAX_ROW_BYTES + 1)
        if not line:
            self.eof = True
            raise StopIteration
        self.line += 1
        if not self.overflow and self.record_chars + len(line) <= MAX_ROW_BYTES:
            self.record_chars += len(line)
            self.record_lines.append(line)
            return line
        if not self.overflow:
            self.record_head = "".join(self.record_lines)[:RAW_CONTENT_LIMIT]
            if len(self.record_head) < RAW_CONTENT_LIMIT:
                self.record_head += line[: RAW_CONTENT_LIMIT - len(self.record_head)]
            self.record_lines = []
        self.overflow = True
        quotes = line.count(self._quote)
        while not line.endswith(("\n", "\r")):
            line = self._readline()
            if not line:
                break
            quotes += line.count(self._quote)
        return self._quote * (quotes % 2) + "\n"


def _ends_in_open_quote(text: str, delimiter: str, quotechar: str) -> bool:
    """Whether a CSV record's text ends inside a quoted field (csv's lenient rules:
    a quote opens a field only at its start; a doubled quote inside is an escape)."""
    in_quote = False
    field_start = True
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if in_quote:
            if ch == quotechar:
                if i + 1 < n and text[i + 1] == quotechar:
                    i += 1
                else:
                    in_quote = False
        elif ch == quotechar and field_start:
            in_quote = True
        field_start = ch in (delimiter, "\n", "\r") and not in_quote
        i += 1
    return in_quote


def _is_utf8(encoding: str) -> bool:
    return encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig")


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
    # UTF-8: a bad byte rejects its row (found as a surrogate); other codecs are strict
    errors = _COUNTING if _is_utf8(used) else "strict"
    escaped_before = _ESCAPED[0]

    text = open(path, encoding=used, errors=errors, newline="")  # noqa: SIM115
    lines = _LineCounter(text, quotechar)
    try:
        header, delimiter = _csv_header(path, lines, used, delimiter, quotechar, skip_rows)
    except InputFileError:
        text.close()
        raise
    rows = _csv_rows(text, lines, header, used, delimiter, quotechar, escaped_before)
    return header, rows, used


def _csv_header(
    path: Path,
    lines: _LineCounter,
    used: str,
    delimiter: str | None,
    quotechar: str,
    skip_rows: int,
) -> tuple[list[str], str]:
    """Read the header line after ``skip_rows``; returns (column names, delimiter).

    Without a given delimiter, the most frequent of , TAB ; | in the header is it.
    """
    try:
        for _ in range(skip_rows):
            next(lines)
        header_line = next(lines, None)
        if header_line is not None and _SURROGATES.search(header_line):
            raise UnicodeDecodeError(used, b"", 0, 1, "invalid bytes in the header")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"{path}: not valid {used} ({exc.reason} at byte {exc.start})"
        ) from None
    if header_line is None or not header_line.strip():
        raise InputFileError(f"{path}: the file is empty (no header, no rows)")
    if lines.overflow:
        raise InputFileError(f"{path}: the header is larger than {MAX_ROW_BYTES:,} characters")
    if delimiter is None:
        counts = {d: header_line.count(d) for d in (",", "\t", ";", "|")}
        delimiter = max(counts, key=lambda d: counts[d])
    try:
        header = next(csv.reader([header_line], delimiter=delimiter, quotechar=quotechar))
    except (csv.Error, StopIteration) as exc:
        raise InputFileError(f"{path}: the header cannot be read as CSV ({exc})") from None
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise InputFileError(f"{path}: duplicate column names in the header: {dupes}")
    if "\x00" in header_line:
        raise InputFileError(f"{path}: NUL character in the header")
    return header, delimiter


def _csv_rows(
    text: io.TextIOWrapper,
    lines: _LineCounter,
    header: list[str],
    used: str,
    delimiter: str,
    quotechar: str,
    escaped_before: int,
) -> Iterator[Row]:
    """The records after the header, each a row or a reject; closes ``text`` at the end."""
    csv.field_size_limit(MAX_ROW_BYTES + 1)
    reader = csv.reader(lines, delimiter=delimiter, quotechar=quotechar, strict=False)
    recoveries = 0
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
                raw = _storable(_truncate("".join(lines.record_lines)))
                yield Row(start, None, raw, f"CSV syntax error: {exc}", "csv_syntax")
                continue
            if lines.overflow:
                raw = _storable(lines.record_head) + "..."
            else:
                raw = "".join(lines.record_lines).rstrip("\r\n")
            if (
                lines.eof
                and lines.line > start
                and recoveries < MAX_QUOTE_RECOVERIES
                and not lines.overflow
                and _ends_in_open_quote(raw, delimiter, quotechar)
            ):
                # The quote swallowed the rest of the file: reject the line that
                # opened it and read the lines after it again.
                recoveries += 1
                first, *rest = lines.record_lines
                yield Row(
                    start,
                    None,
                    _storable(_truncate(first.rstrip("\r\n"))),
                    f"a quote ({quotechar}) opened on line {start} is never closed; the "
                    f"line is rejected and reading resumes at line {start + 1}",
                    "csv_unclosed_quote",
                )
                lines.replay(rest, start + 1)
                continue
            row = _csv_record(
                start,
                fields,
                raw,
                header,
                used,
                overflow=lines.overflow,
                escaped_before=escaped_before,
            )
            if row is not None:
                yield row
    finally:
        text.close()


def _csv_record(
    start: int,
    fields: list[str],
    raw: str,
    header: list[str],
    used: str,
    *,
    overflow: bool,
    escaped_before: int,
) -> Row | None:
    """The row or reject for one parsed record starting on line ``start``; None for a
    blank line."""
    if overflow:
        return Row(
            start,
            None,
            raw,
            f"row on line {start} is larger than the limit of {MAX_ROW_BYTES:,} "
            "characters (an unclosed quote or a runaway field); kept truncated",
            "row_too_large",
        )
    if not fields or (len(fields) == 1 and not fields[0].strip()):
        return None  # blank line
    if _ESCAPED[0] != escaped_before and _SURROGATES.search(raw):
        return Row(
            start,
            None,
            _storable(_truncate(raw)),
            f"bytes that are not valid {used} on line {start}",
            "encoding_error",
        )
    if "\x00" in raw:
        return Row(start, None, _storable(_truncate(raw)), _NUL_MESSAGE, "nul_character")
    raw = _truncate(raw)
    width = len(header)
    if len(fields) != width:
        return Row(
            start,
            None,
            raw,
            f"{len(fields)} columns where the header has {width} (truncated or malformed line)",
            "wrong_column_count",
        )
    return Row(start, dict(zip(header, fields, strict=True)), raw)


def _json_row(number: int, text: str) -> Row:
    """One JSON Lines line (already decoded, not blank) as a row or a reject."""
    raw = text.rstrip("\r\n")

    def reject(message: str, code: str) -> Row:
        return Row(number, None, _storable(_truncate(raw)), message, code)

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return reject(
            f"not valid JSON: {exc.msg} at column {exc.colno} (truncated or malformed line)",
            "json_syntax",
        )
    except RecursionError:
        return reject(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "json_too_deep")
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        return reject(f"not usable JSON: {exc}", "json_syntax")
    if not isinstance(value, dict):
        return reject(f"a JSON {type(value).__name__}, not an object", "json_not_object")
    nested = False
    for v in value.values():
        if isinstance(v, dict | list):
            nested = True
            break
    if nested and _too_deep(value):
        return reject(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "json_too_deep")
    if ("\x00" in text or "\\u0000" in text) and _nul_in(value):
        return reject(_NUL_MESSAGE, "nul_character")
    return Row(number, value, _truncate(raw))


def read_jsonl(path: Path, *, encoding: str | None) -> tuple[list[str] | None, Iterator[Row], str]:
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    _check_not_binary(head, path, encoding)
    used = encoding or "utf-8-sig"
    if b"\n" not in head and b"\r" in head:
        return None, _jsonl_cr_rows(path, used), used

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
                        _storable(raw) + "...",
                        f"row on line {number} is larger than the limit of {MAX_ROW_BYTES:,} "
                        "bytes; kept truncated",
                        "row_too_large",
                    )
                    continue
                try:
                    text = line.decode(used)
                except UnicodeDecodeError as exc:
                    yield Row(
                        number,
                        None,
                        _storable(_truncate(line.decode(used, errors="replace"))),
                        f"not valid {used} ({exc.reason})",
                        "encoding_error",
                    )
                    continue
                if number == 1:
                    text = text.lstrip("\ufeff")
                if not text.strip():
                    continue
                yield _json_row(number, text)

    return None, rows(), used


def _jsonl_cr_rows(path: Path, used: str) -> Iterator[Row]:
    """JSON Lines written with old-Mac line ends (CR only): universal newlines."""
    with open(path, encoding=used, errors="surrogateescape", newline=None) as fh:
        number = 0
        while True:
            line = fh.readline(MAX_ROW_BYTES + 1)
            if not line:
                return
            number += 1
            if len(line) > MAX_ROW_BYTES and not line.endswith("\n"):
                raw = line[:RAW_CONTENT_LIMIT]
                while line and not line.endswith("\n"):
                    line = fh.readline(MAX_ROW_BYTES + 1)
                yield Row(
                    number,
                    None,
                    _storable(raw) + "...",
                    f"row on line {number} is larger than the limit of {MAX_ROW_BYTES:,} "
                    "characters; kept truncated",
                    "row_too_large",
                )
                continue
            if _SURROGATES.search(line):
                yield Row(
                    number,
                    None,
                    _storable(_truncate(line.rstrip("\n"))),
                    f"not valid {used} on line {number}",
                    "encoding_error",
                )
                continue
            if number == 1:
                line = line.lstrip("\ufeff")
            if line.strip():
                yield _json_row(number, line)


def read_parquet(path: Path, batch_size: int = 10_000) -> tuple[list[str], Iterator[Row], str]:
    import pyarrow as pa
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
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise InputFileError(f"{path}: duplicate column names: {dupes}")

    def columns_as_python(batch: Any) -> list[dict[str, Any]]:
        """A batch whose values Python cannot represent (a date in year 0, ...):
        column by column, such a column as Arrow's own text of each value, which the
        standardizer then judges like any other text."""
        cols: dict[str, list[Any]] = {}
        for name, col in zip(batch.schema.names, batch.columns, strict=True):
            try:
                cols[name] = col.to_pylist()
            except (ValueError, OverflowError, ArithmeticError):
                try:
                    cols[name] = col.cast(pa.string()).to_pylist()
                except (pa.ArrowException, ValueError, OverflowError):
                    cols[name] = [f"<unreadable {col.type} value>"] * len(col)
        return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]

    def rows() -> Iterator[Row]:
        number = 0
        try:
            batches = pf.iter_batches(batch_size=batch_size)
            for batch in batches:
                try:
                    values_list = batch.to_pylist()
                except (ValueError, OverflowError, ArithmeticError):
                    values_list = columns_as_python(batch)
                for values in values_list:
                    number += 1
                    raw = json.dumps(values, ensure_ascii=False, default=str)
                    if "\\u0000" in raw and _nul_in(values):
                        yield Row(
                            number, None, _storable(_truncate(raw)), _NUL_MESSAGE, "nul_character"
                        )
                        continue
                    yield Row(number, values, _truncate(raw))
        except (OSError, pa.ArrowException) as exc:  # a corrupt page mid-file
            yield Row(
                number + 1,
                None,
                "",
                f"the Parquet file cannot be read past row {number} ({type(exc).__name__}: "
                f"{str(exc)[:200]})",
                "parquet_unreadable",
            )

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
