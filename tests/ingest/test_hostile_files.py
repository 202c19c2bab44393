"""Hostile input files (issue 11): each bad row becomes a reject with a reason naming
its line, the rows around it are kept, nothing crashes, and memory stays bounded.

Complements test_ingest.py (wrong encoding, missing columns, truncated last line,
10 MB field, empty and binary files), on both databases: Postgres refuses NUL in
text and JSON, so a NUL that reached the store would fail the whole chunk.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from tests.conftest import Databases

from mdm.ingest.mapping import load_mapping
from mdm.ingest.readers import MAX_JSON_DEPTH, InputFileError
from mdm.services.ingest import IngestSummary, ingest_file
from mdm.store.db import make_engine

MAPPING = """\
source_system: hostile
entity_type: citizen
format: {fmt}
source_key: MA
fields:
  full_name: HO_TEN
  date_of_birth: {{column: NGAY_SINH, date_format: "%d/%m/%Y"}}
trust: {{default: 0.5}}
"""
HEADER = "MA,HO_TEN,NGAY_SINH\n"
# Enough real Vietnamese text that one corrupt byte cannot pass the file off as
# Windows-1258.
_GIVEN = ["Ánh", "Bình", "Cường", "Dũng", "Hải", "Hương", "Khoa", "Lộc"]
_MIDDLE = ["Thị", "Văn", "Đức", "Ngọc", "Quốc"]
FILLER = "".join(
    f"F{i},Nguyễn {_MIDDLE[i % 5]} {_GIVEN[i // 5]},0{1 + i % 9}/03/1990\n" for i in range(40)
)


def _mapping(tmp: Path, fmt: str = "csv") -> Path:
    path = tmp / f"mapping-{fmt}.yaml"
    path.write_text(MAPPING.format(fmt=fmt), encoding="utf-8")
    return path


def _ingest(url: str, mapping: Path, path: Path, tmp: Path) -> IngestSummary:
    engine = make_engine(url)
    try:
        return ingest_file(engine, load_mapping(mapping), path, report_dir=tmp / "rep", workers=1)
    finally:
        engine.dispose()


def _rejects(summary: IngestSummary) -> dict[int, dict[str, Any]]:
    lines = Path(summary.rejects_file or "").read_text(encoding="utf-8").splitlines()
    return {r["line"]: r for r in map(json.loads, lines)}


def _names(url: str) -> dict[str, str]:
    """source key -> stored full name (raw payload), exactly as stored."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT r.source_key, v.raw FROM source_records r "
                    "JOIN source_record_versions v ON v.source_record_id = r.id"
                )
            ).all()
    finally:
        engine.dispose()
    out = {}
    for key, raw in rows:
        payload = raw if isinstance(raw, dict) else json.loads(raw)
        out[str(key)] = payload.get("HO_TEN")
    return out


def _stored_rejects(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [str(x) for x in conn.execute(text("SELECT raw_content FROM rejects")).scalars()]
    finally:
        engine.dispose()


def test_unclosed_quote_rejects_its_line_and_keeps_the_rest(
    fresh_db_url: str, tmp_path: Path
) -> None:
    f = tmp_path / "q.csv"
    f.write_text(
        HEADER + 'K1,Lê Văn An,01/02/1980\nK2,"Trần Thị Bình,02/03/1981\n'
        "K3,Phạm Văn Cường,03/04/1982\nK4,Võ Thị Dung,04/05/1983\n",
        encoding="utf-8",
    )
    s = _ingest(fresh_db_url, _mapping(tmp_path), f, tmp_path)
    assert (s.read, s.new, s.rejected) == (4, 3, 1)
    reject = _rejects(s)[3]
    assert reject["reasons"][0]["code"] == "csv_unclosed_quote"
    assert "line 3" in reject["reasons"][0]["message"]
    assert reject["raw"] == 'K2,"Trần Thị Bình,02/03/1981'
    assert set(_names(fresh_db_url)) == {"K1", "K3", "K4"}


def test_nul_and_control_characters(fresh_db_url: str, tmp_path: Path) -> None:
    f = tmp_path / "nul.csv"
    f.write_bytes(
        (HEADER + FILLER).encode()
        + "KN,Bùi\x00 Văn Nul,01/01/1990\nKC,Đỗ\x01\x1b Văn\x7f Ctl,01/01/1990\n".encode()
        + b"KZ,Last Row,01/01/1990\n"
    )
    s = _ingest(fresh_db_url, _mapping(tmp_path), f, tmp_path)
    assert (s.new, s.rejected) == (42, 1), s.rejected_by_reason
    rejects = _rejects(s)
    assert rejects[42]["reasons"][0]["code"] == "nul_character"
    assert "\x00" not in rejects[42]["raw"] and "Bùi" in rejects[42]["raw"]
    names = _names(fresh_db_url)
    assert names["KC"] == "Đỗ\x01\x1b Văn\x7f Ctl"  # stored literally
    assert "KN" not in names and names["KZ"] == "Last Row"
    assert all("\x00" not in r for r in _stored_rejects(fresh_db_url))

    j = tmp_path / "nul.jsonl"
    j.write_text(
        '{"MA": "J1", "HO_TEN": "Bình"}\n{"MA": "J2", "HO_TEN": "A\\u0000B"}\n'
        '{"MA\\u0000": "J3"}\n{"MA": "J4", "HO_TEN": "C\\u0007D"}\n',
        encoding="utf-8",
    )
    s = _ingest(fresh_db_url, _mapping(tmp_path, "jsonl"), j, tmp_path)
    assert (s.new, s.rejected) == (2, 2)
    assert {r["reasons"][0]["code"] for r in _rejects(s).values()} == {"nul_character"}
    assert _names(fresh_db_url)["J4"] == "C\x07D"


def test_invalid_utf8_in_the_middle_rejects_only_that_row(
    fresh_db_url: str, tmp_path: Path
) -> None:
    f = tmp_path / "bad.csv"
    f.write_bytes(
        (HEADER + FILLER).encode()
        + b"KB,Ng\xff\xfeuy\xc3n,01/01/1990\n"
        + FILLER.replace("F", "G").encode()
    )
    s = _ingest(fresh_db_url, _mapping(tmp_path), f, tmp_path)
    assert (s.encoding or "").startswith("utf-8"), s.encoding
    assert (s.new, s.rejected) == (80, 1)
    reject = _rejects(s)[42]
    assert reject["reasons"][0]["code"] == "encoding_error"
    assert "line 42" in reject["reasons"][0]["message"]
    assert reject["raw"].startswith("KB,Ng\ufffd")
    # the rows around it keep their diacritics (not read as Windows-1258)
    names = _names(fresh_db_url)
    assert names["F0"] == "Nguyễn Thị Ánh" and names["G39"] == "Nguyễn Quốc Lộc"

    j = tmp_path / "bad.jsonl"
    j.write_bytes(
        b'{"MA": "J1", "HO_TEN": "B\xc3\xacnh"}\n{"MA": "J2\xff"}\n{"MA": "J3", "HO_TEN": "Ba"}\n'
    )
    s = _ingest(fresh_db_url, _mapping(tmp_path, "jsonl"), j, tmp_path)
    assert (s.new, s.rejected) == (2, 1) and _rejects(s)[2]["reasons"][0][
        "code"
    ] == "encoding_error"


def test_hostile_json_lines(fresh_db_url: str, tmp_path: Path) -> None:
    deep_array = "[" * 100_000 + "]" * 100_000
    deep_object = '{"a": ' * (MAX_JSON_DEPTH + 5) + "1" + "}" * (MAX_JSON_DEPTH + 5)
    lines = [
        '{"MA": "J1", "HO_TEN": "Hoàng Văn Một"}',
        deep_array,
        deep_object,
        '{"MA": "J2", "HO_TEN": ' + '{"n": ' * 40 + "1" + "}" * 41,
        "[1, 2, 3]",
        '"just a string"',
        "42",
        "null",
        '{"MA": "J3", "HO_TEN": ' + "9" * 5_000 + "}",
        '{"MA": "J4", "HO_TEN": "Lý Thị Bốn", "x": NaN}',
        '{"MA": "J5", "HO_TEN": "Mai Văn Năm", "extra": [1, {"b": [2]}]}',
    ]
    f = tmp_path / "h.jsonl"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    s = _ingest(fresh_db_url, _mapping(tmp_path, "jsonl"), f, tmp_path)
    codes = {n: r["reasons"][0]["code"] for n, r in _rejects(s).items()}
    assert codes == {
        2: "json_too_deep",
        3: "json_too_deep",
        4: "json_too_deep",
        5: "json_not_object",
        6: "json_not_object",
        7: "json_not_object",
        8: "json_not_object",
        9: "json_syntax",
    }
    assert (s.read, s.new) == (11, 3)
    assert set(_names(fresh_db_url)) == {"J1", "J4", "J5"}


def test_line_endings(fresh_db_url: str, tmp_path: Path) -> None:
    rows = ["K1,Lê Văn An,01/02/1980", 'K2,"Trần\r\nThị Bình",02/03/1981', "K3,Võ Dung,03/04/1982"]
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(("\r\n".join([HEADER.strip(), *rows]) + "\r\n").encode())
    cr = tmp_path / "cr.csv"
    cr.write_bytes("\r".join([HEADER.strip(), rows[0], rows[2].replace("K3", "K4")]).encode())
    jcr = tmp_path / "cr.jsonl"
    jcr.write_bytes(b'{"MA": "J1", "HO_TEN": "A"}\r{"MA": "J2", "HO_TEN": "B"}\r')
    jcrlf = tmp_path / "crlf.jsonl"
    jcrlf.write_bytes(b'{"MA": "J3", "HO_TEN": "C"}\r\n{"MA": "J4", "HO_TEN": "D"}\r\n')
    for path, fmt, expected in (
        (crlf, "csv", 3),
        (cr, "csv", 2),
        (jcr, "jsonl", 2),
        (jcrlf, "jsonl", 2),
    ):
        s = _ingest(fresh_db_url, _mapping(tmp_path, fmt), path, tmp_path)
        assert (s.read, s.rejected) == (expected, 0), (path.name, s.rejected_by_reason)
    names = _names(fresh_db_url)
    assert names["K2"] == "Trần\r\nThị Bình"  # a quoted line break is data, kept as written
    assert {"K1", "K3", "K4", "J1", "J2", "J3", "J4"} <= set(names)


def test_duplicate_header_columns_are_a_clear_error(fresh_db_url: str, tmp_path: Path) -> None:
    f = tmp_path / "dup.csv"
    f.write_text("MA,HO_TEN,NGAY_SINH,HO_TEN\nK1,A,01/01/1990,B\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"duplicate column names.*HO_TEN"):
        _ingest(fresh_db_url, _mapping(tmp_path), f, tmp_path)
    p = tmp_path / "dup.parquet"
    table = pa.Table.from_arrays(
        [pa.array(["K1"]), pa.array(["A"]), pa.array(["B"])], names=["MA", "HO_TEN", "HO_TEN"]
    )
    pq.write_table(table, p)
    with pytest.raises(InputFileError, match=r"duplicate column names.*HO_TEN"):
        _ingest(fresh_db_url, _mapping(tmp_path, "parquet"), p, tmp_path)
    assert _names(fresh_db_url) == {}


def test_parquet_with_wrong_column_types(fresh_db_url: str, tmp_path: Path) -> None:
    p = tmp_path / "types.parquet"
    table = pa.table(
        {
            "MA": pa.array([1, 2, 3, 4, 5], type=pa.int64()),  # text expected
            "HO_TEN": pa.array(
                [{"x": 1}, {"x": 2}, None, {"x": 3}, {"x": 4}],
                type=pa.struct([("x", pa.int32())]),
            ),
            # day -800000 is year -221: Python's date cannot hold it
            "NGAY_SINH": pa.array([0, -800_000, 10**8, 7_000, None], type=pa.date32()),
            "BLOB": pa.array([b"\x00\xff", b"ab", None, b"", b"x"]),
        }
    )
    pq.write_table(table, p)
    s = _ingest(fresh_db_url, _mapping(tmp_path, "parquet"), p, tmp_path)
    assert s.read == 5 and s.new + s.rejected == 5
    strings = tmp_path / "nul.parquet"
    pq.write_table(
        pa.table(
            {"MA": ["P1", "P2"], "HO_TEN": ["Ngô\x00Văn", "Ngô Văn"], "NGAY_SINH": ["1990", "1991"]}
        ),
        strings,
    )
    s = _ingest(fresh_db_url, _mapping(tmp_path, "parquet"), strings, tmp_path)
    assert (s.new, s.rejected) == (1, 1) and _rejects(s)[1]["reasons"][0]["code"] == "nul_character"


def test_huge_json_line_is_rejected_and_its_neighbours_kept(
    fresh_db_url: str, tmp_path: Path
) -> None:
    f = tmp_path / "big.jsonl"
    with f.open("w", encoding="utf-8") as out:
        out.write('{"MA": "J1", "HO_TEN": "Một"}\n{"MA": "J2", "HO_TEN": "')
        for _ in range(20):
            out.write("x" * 1_000_000)
        out.write('"}\n{"MA": "J3", "HO_TEN": "Ba"}\n')
    s = _ingest(fresh_db_url, _mapping(tmp_path, "jsonl"), f, tmp_path)
    assert (s.read, s.new, s.rejected) == (3, 2, 1)
    reject = _rejects(s)[2]
    assert reject["reasons"][0]["code"] == "row_too_large"
    assert (
        "line 2" in reject["reasons"][0]["message"]
        and "1,000,000" in reject["reasons"][0]["message"]
    )
    assert len(reject["raw"]) < 20_000


def _peak_tree_rss(proc: subprocess.Popen[bytes]) -> int:
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = root.memory_info().rss
            for child in root.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    rss += child.memory_info().rss
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    return peak


def test_a_2_gb_line_is_rejected_with_bounded_memory(databases: Databases, tmp_path: Path) -> None:
    """A 2 GiB line between two good rows: the ingest (a real subprocess) rejects it
    naming the line and the limit, keeps both neighbours, and its whole process
    tree stays far below the line's size (the reader never holds more than one
    ``MAX_ROW_BYTES`` piece of it)."""
    url = databases.fresh("sqlite")
    mapping = _mapping(tmp_path)
    big = tmp_path / "two-gigabytes.csv"
    try:
        with big.open("wb") as out:
            out.write(HEADER.encode() + "K1,Lê Văn An,01/02/1980\nK2,".encode())
            block = b"x" * (1 << 20)
            for _ in range(2048):
                out.write(block)
            out.write(",03/04/1982\nK3,Võ Thị Dung,04/05/1983\n".encode())
        assert big.stat().st_size > 2 * 1024**3
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mdm",
                "ingest",
                "--source",
                "hostile",
                "--mapping",
                str(mapping),
                str(big),
                "--json",
                "--report-dir",
                str(tmp_path / "rep"),
            ],
            env={**os.environ, "MDM_DATABASE_URL": url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        peak = _peak_tree_rss(proc)
        out, err = proc.communicate()
    finally:
        big.unlink(missing_ok=True)
    assert proc.returncode == 0, err.decode()[-2000:]
    summary = json.loads(out)
    assert (summary["read"], summary["new"], summary["rejected"]) == (3, 2, 1)
    print(f"2 GiB line: peak RSS of the ingest process tree {peak / 2**20:.0f} MiB")
    assert peak < 600 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"
    rejects_file = Path(summary["files"][0]["rejects_file"])
    (reject,) = [json.loads(x) for x in rejects_file.read_text(encoding="utf-8").splitlines()]
    assert reject["line"] == 3
    reason = reject["reasons"][0]
    assert reason["code"] == "row_too_large"
    assert "line 3" in reason["message"] and "1,000,000" in reason["message"]
    assert reject["raw"].startswith("K2,xxx") and len(reject["raw"]) < 20_000
    assert set(_names(url)) == {"K1", "K3"}
