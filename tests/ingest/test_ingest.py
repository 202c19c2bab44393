"""`mdm ingest` end to end on real databases: counts, idempotence, versions,
snapshots, bad files, and resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import text

from mdm.ingest.mapping import load_mapping
from mdm.ingest.readers import InputFileError
from mdm.services.ingest import ingest_file
from mdm.store.db import make_engine

MAPPING = """\
source_system: test-province
entity_type: citizen
format: csv
source_key: MA
fields:
  full_name: HO_TEN
  date_of_birth: {column: NGAY_SINH, date_format: "%d/%m/%Y"}
  sex: {column: GIOI_TINH, codes: {"1": male, "2": female}}
  personal_id: SO_DINH_DANH
  permanent_address: DIA_CHI
trust: {default: 0.5}
"""
HEADER = "MA,HO_TEN,NGAY_SINH,GIOI_TINH,SO_DINH_DANH,DIA_CHI\n"
GOOD = [
    'K1,Nguyễn Văn An,09/11/1985,1,001085012345,"12 Lê Lợi, P. Hàng Bạc, Q. Hoàn Kiếm, TP. Hà Nội"',
    'K2,Trần Thị Bình,21/08/1990,2,,"Thôn 4, X. An Ninh, H. Bình Lục, Hà Nam"',
    "K3,Lê Văn Cường,1975,1,,",
]


@pytest.fixture
def mapping_file(tmp_path: Path) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    return path


def _windows_1258_form(text: str) -> str:
    """Vietnamese Windows writes tone marks as combining characters after a base
    letter that may carry its vowel mark precomposed (â, ê, ô, ơ, ư, ă)."""
    import unicodedata

    out = []
    for ch in text:
        try:
            ch.encode("cp1258")
            out.append(ch)
        except UnicodeEncodeError:
            base, *marks = unicodedata.normalize("NFD", ch)
            vowel = [m for m in marks if m in "\u0302\u0306\u031b"]
            tone = [m for m in marks if m not in vowel]
            out.append(unicodedata.normalize("NFC", base + "".join(vowel)) + "".join(tone))
    return "".join(out)


def _write(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding=encoding)
    return path


def _ingest(url: str, mapping_file: Path, path: Path, **kw: object):  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    try:
        return ingest_file(engine, load_mapping(mapping_file), path, **kw)  # type: ignore[arg-type]
    finally:
        engine.dispose()


def _scalar(url: str, sql: str) -> object:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def test_counts_idempotence_and_versions(
    fresh_db_url: str, mapping_file: Path, tmp_path: Path
) -> None:
    bad = "K4,,01/01/1990,1,,"  # no name: rejected
    f = _write(tmp_path / "a.csv", [*GOOD, bad])
    s = _ingest(fresh_db_url, mapping_file, f, report_dir=tmp_path / "rep")
    assert (s.read, s.new, s.changed, s.unchanged, s.rejected) == (4, 3, 0, 0, 1)
    assert s.read == s.new + s.rejected
    rejects = [json.loads(x) for x in Path(s.rejects_file or "").read_text().splitlines()]
    assert len(rejects) == 1 and rejects[0]["line"] == 5 and rejects[0]["reasons"]
    assert rejects[0]["reasons"][0]["field"] == "full_name"
    assert rejects[0]["raw"] == bad

    again = _ingest(fresh_db_url, mapping_file, f)
    assert (again.new, again.changed, again.unchanged, again.rejected) == (0, 0, 3, 1)
    assert _scalar(fresh_db_url, "SELECT count(*) FROM source_record_versions") == 3

    changed = _write(tmp_path / "b.csv", [GOOD[0].replace("09/11/1985", "09/11/1986"), *GOOD[1:]])
    third = _ingest(fresh_db_url, mapping_file, changed)
    assert (third.new, third.changed, third.unchanged) == (0, 1, 2)
    assert (
        _scalar(fresh_db_url, "SELECT current_version FROM source_records WHERE source_key='K1'")
        == 2
    )
    assert _scalar(fresh_db_url, "SELECT count(*) FROM source_record_versions") == 4


def test_backslashes_tabs_and_newlines_are_stored_as_read(
    fresh_db_url: str, mapping_file: Path, tmp_path: Path
) -> None:
    """A version's payload reaches the store as COPY text made in the workers: what
    COPY escapes (backslash, tab, newline, carriage return) and what JSON escapes
    (quotes) come back exactly as the file had them, and the content hash is the
    SHA-256 of the canonical JSON of the row as read."""
    import hashlib

    from mdm.domain.canonical_json import canonical_json

    street = 'Số 5\\6 "Ngõ\tHẹp"\r\nLê Lợi, P. Hàng Bạc, Q. Hoàn Kiếm, TP. Hà Nội'
    row = 'K7,Phạm Văn \\Nam,01/02/1983,1,,"' + street.replace('"', '""') + '"'
    f = _write(tmp_path / "hostile.csv", [row])
    assert _ingest(fresh_db_url, mapping_file, f).new == 1
    engine = make_engine(fresh_db_url)
    try:
        with engine.connect() as conn:
            raw, standardized, chash = conn.execute(
                text(
                    "SELECT v.raw, v.standardized, v.content_hash FROM source_record_versions v"
                    " JOIN source_records r ON r.id = v.source_record_id"
                    " WHERE r.source_key = 'K7'"
                )
            ).one()
    finally:
        engine.dispose()
    raw = json.loads(raw) if isinstance(raw, str) else raw
    standardized = json.loads(standardized) if isinstance(standardized, str) else standardized
    assert raw["DIA_CHI"] == street
    assert raw["HO_TEN"] == "Phạm Văn \\Nam"
    assert chash == hashlib.sha256(canonical_json(raw).encode()).hexdigest()
    assert standardized["full_name"]


def test_two_files_of_one_source_through_one_pooled_engine(
    fresh_db_url: str, mapping_file: Path, tmp_path: Path
) -> None:
    """The per-source ingest lock is released, not left on a pooled connection."""
    engine = make_engine(fresh_db_url)
    try:
        mapping = load_mapping(mapping_file)
        postgres = engine.dialect.name == "postgresql"
        settings = "SELECT current_setting('work_mem'), current_setting('synchronous_commit')"
        if postgres:
            with engine.connect() as conn:
                defaults = conn.exec_driver_sql(settings).one()
        first = ingest_file(engine, mapping, _write(tmp_path / "a.csv", GOOD[:2]))
        second = ingest_file(engine, mapping, _write(tmp_path / "b.csv", GOOD[2:]))
        assert (first.new, second.new) == (2, 1)
        if postgres:  # the writer's session settings do not reach the pool's next users
            with ExitStack() as stack:
                pooled = [stack.enter_context(engine.connect()) for _ in range(4)]
                assert {c.exec_driver_sql(settings).one() for c in pooled} == {defaults}
    finally:
        engine.dispose()


def test_full_snapshot_withdraws_missing_keys(
    fresh_db_url: str, mapping_file: Path, tmp_path: Path
) -> None:
    _ingest(fresh_db_url, mapping_file, _write(tmp_path / "a.csv", GOOD))
    snap = _ingest(
        fresh_db_url, mapping_file, _write(tmp_path / "b.csv", GOOD[:2]), full_snapshot=True
    )
    assert snap.withdrawn == 1
    assert (
        _scalar(fresh_db_url, "SELECT status FROM source_records WHERE source_key='K3'")
        == "withdrawn"
    )
    back = _ingest(fresh_db_url, mapping_file, _write(tmp_path / "c.csv", GOOD), full_snapshot=True)
    assert back.withdrawn == 0 and back.changed == 1
    assert (
        _scalar(fresh_db_url, "SELECT status FROM source_records WHERE source_key='K3'") == "active"
    )


def test_same_key_twice_in_one_file_makes_two_versions(
    fresh_db_url: str, mapping_file: Path, tmp_path: Path
) -> None:
    f = _write(tmp_path / "a.csv", [GOOD[0], GOOD[0].replace("1985", "1984"), GOOD[0]])
    s = _ingest(fresh_db_url, mapping_file, f)
    assert (s.new, s.changed) == (1, 2)
    assert _scalar(fresh_db_url, "SELECT current_version FROM source_records") == 3


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1258"])
def test_encodings_are_detected(
    fresh_db_url: str, mapping_file: Path, tmp_path: Path, encoding: str
) -> None:
    lines = [_windows_1258_form(x) if encoding == "cp1258" else x for x in GOOD]
    f = _write(tmp_path / f"{encoding}.csv", lines, encoding=encoding)
    s = _ingest(fresh_db_url, mapping_file, f)
    assert (s.new, s.rejected) == (3, 0)
    name = _scalar(
        fresh_db_url,
        "SELECT v.standardized FROM source_record_versions v JOIN source_records r "
        "ON r.id = v.source_record_id WHERE r.source_key = 'K1'",
    )
    data = name if isinstance(name, dict) else json.loads(str(name))
    assert data["full_name"] == "Nguyễn Văn An"


def test_wrong_encoding_forced_is_a_clear_error(
    fresh_db_url: str, mapping_file: Path, tmp_path: Path
) -> None:
    f = _write(tmp_path / "a.csv", GOOD, encoding="utf-16")
    with pytest.raises(InputFileError, match="not valid utf-8"):
        _ingest(fresh_db_url, mapping_file, f, encoding="utf-8")


def test_missing_mapped_columns_is_a_clear_error(
    fresh_db_url: str, mapping_file: Path, tmp_path: Path
) -> None:
    f = tmp_path / "a.csv"
    f.write_text("MA,HO_TEN\nK1,Nguyễn Văn An\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"NGAY_SINH.*does not have|does not have"):
        _ingest(fresh_db_url, mapping_file, f)
    assert _scalar(fresh_db_url, "SELECT count(*) FROM source_records") == 0


def test_empty_and_binary_files_are_clear_errors(
    fresh_db_url: str, mapping_file: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        _ingest(fresh_db_url, mapping_file, empty)
    binary = tmp_path / "photo.csv"
    binary.write_bytes(bytes(range(256)) * 100)
    with pytest.raises(InputFileError, match="binary"):
        _ingest(fresh_db_url, mapping_file, binary)


def test_truncated_last_line_and_huge_field_are_rejected_rows(
    fresh_db_url: str, mapping_file: Path, tmp_path: Path
) -> None:
    huge = "K9,Phạm Văn Dũng,01/02/1980,1,," + '"' + "x" * 10_000_000 + '"'
    f = tmp_path / "a.csv"
    f.write_text(HEADER + "\n".join([GOOD[0], huge, GOOD[1], 'K5,"Võ Thị']), encoding="utf-8")
    s = _ingest(fresh_db_url, mapping_file, f, report_dir=tmp_path / "rep")
    assert (s.read, s.new, s.rejected) == (4, 2, 2)
    rejects = [json.loads(x) for x in Path(s.rejects_file or "").read_text().splitlines()]
    codes = {r["line"]: r["reasons"][0]["code"] for r in rejects}
    assert codes == {3: "row_too_large", 5: "wrong_column_count"}
    assert all(len(r["raw"]) < 20_000 for r in rejects)


def test_jsonl_bad_lines_are_rejected(fresh_db_url: str, tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING.replace("format: csv", "format: jsonl"), encoding="utf-8")
    f = tmp_path / "a.jsonl"
    good = {"MA": "J1", "HO_TEN": "Đỗ Minh Khoa", "NGAY_SINH": "02/03/1999", "GIOI_TINH": "1"}
    f.write_text(
        json.dumps(good, ensure_ascii=False) + "\n[1, 2]\n" + '{"MA": "J2", "HO_TEN": "Ngô',
        encoding="utf-8",
    )
    s = _ingest(fresh_db_url, mapping, f, report_dir=tmp_path / "rep")
    assert (s.read, s.new, s.rejected) == (3, 1, 2)
    assert s.rejected_by_reason == {"json_not_object": 1, "json_syntax": 1}


SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng"]
GIVEN = ["An", "Bình", "Cường", "Dũng", "Hải", "Hùng", "Khoa", "Long", "Minh", "Nam", "Sơn"]


def _big_csv(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for i in range(n):
            name = f"{SURNAMES[i % 7]} Văn {GIVEN[i % 11]}"
            dob = f"{1 + i % 28:02d}/{1 + i % 12:02d}/{1950 + i % 60}"
            out.write(f"K{i},{name},{dob},1,,\n")
    return path


def _state(url: str) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    text(
                        "SELECT r.source_key, r.current_version, r.status, v.version, "
                        "v.content_hash FROM source_records r JOIN source_record_versions v "
                        "ON v.source_record_id = r.id ORDER BY r.source_key, v.version"
                    )
                )
            ]
    finally:
        engine.dispose()


def test_resume_after_kill_reaches_the_uninterrupted_state(
    backend: str,
    databases,
    mapping_file: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    data = _big_csv(tmp_path / "big.csv", 30_000)
    reference = databases.fresh(backend)
    ref = _ingest(reference, mapping_file, data)
    crashed = databases.fresh(backend)
    cmd = [
        sys.executable,
        "-m",
        "mdm",
        "ingest",
        "--mapping",
        str(mapping_file),
        str(data),
        "--chunk-rows",
        "500",
        "--json",
        "--report-dir",
        str(tmp_path / "rep"),
    ]
    env = {**os.environ, "MDM_DATABASE_URL": crashed}
    kills = 0
    for delay in (2.5, 1.0, 1.7):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    summary = json.loads(final.stdout)
    assert kills >= 1
    assert ref.new == 30_000
    assert len(_state(reference)) == 30_000
    assert _state(crashed) == _state(reference)
    assert (summary["read"], summary["new"]) == (ref.read, ref.new) or summary["unchanged"] > 0


def _rejects(url: str) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [
                (
                    json.loads(loc)["line"] if isinstance(loc, str) else loc["line"],
                    key,
                    str(reasons),
                )
                for loc, key, reasons in conn.execute(
                    text("SELECT location, source_key, reasons FROM rejects ORDER BY id")
                )
            ]
    finally:
        engine.dispose()


def test_worker_processes_store_what_one_process_stores(
    backend: str,
    databases,
    mapping_file: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """The pool of worker processes (the path of every file past a few MB, its
    workers forked from a preloaded forkserver) gives the store one process gives:
    the same records, versions, content hashes, rejects and counts, in file order
    across many chunks, over two files in a row (the second reuses the forkserver)."""
    data = _big_csv(tmp_path / "big.csv", 3_000)
    with data.open("a", encoding="utf-8") as out:
        out.write("K5,Nguyễn Văn Đổi,01/01/1980,1,,\n")  # K5 again, changed: a version 2
        out.write("K9001,Lê Văn Sai,31/02/1990,1,,\n")  # an impossible date: rejected
        out.write(",Không Có Mã,01/01/1990,1,,\n")  # no key: rejected
    second = _write(tmp_path / "second.csv", GOOD)
    single, pooled = databases.fresh(backend), databases.fresh(backend)
    one = [_ingest(single, mapping_file, f, workers=1) for f in (data, second)]
    many = [_ingest(pooled, mapping_file, f, workers=2, chunk_rows=200) for f in (data, second)]
    assert [s.counts() for s in many] == [s.counts() for s in one]
    assert one[0].changed == 1 and one[0].rejected == 2
    assert _state(pooled) == _state(single)
    assert len(_state(single)) == 3_000 + 1 + len(GOOD)
    assert _rejects(pooled) == _rejects(single)
    assert len(_rejects(single)) == 2


def test_a_parquet_file_of_many_rows_gets_workers_though_it_is_small(tmp_path: Path) -> None:
    """Worker processes by the work, not the bytes: Parquet compresses 100,000
    citizens into about 3 MB, under the size past which a text file gets workers."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mdm.services.ingest import _default_workers

    pool = max(1, min(os.cpu_count() or 1, 4))
    table = pa.table({"MA": [f"K{i}" for i in range(25_000)]})
    many, few = tmp_path / "many.parquet", tmp_path / "few.parquet"
    pq.write_table(table, many)
    pq.write_table(table.slice(0, 100), few)
    assert many.stat().st_size < 4_000_000
    assert _default_workers(many, many.stat().st_size, None) == pool
    assert _default_workers(few, few.stat().st_size, None) == 1
    text_file = _write(tmp_path / "small.csv", GOOD)
    assert _default_workers(text_file, text_file.stat().st_size, "csv") == 1
