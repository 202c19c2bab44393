"""``mdm synth``: determinism, encodings, truth coverage, duplicates and hard negatives."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import unicodedata
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from mdm.ingest.mapping import load_mapping
from mdm.synth import SynthParams, generate
from mdm.synth.people import valid_tax_code
from mdm.synth.text import tcvn3_mojibake, to_cp1258_text

PARAMS = SynthParams(provinces=5, citizens=600, seed=3)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("synth")
    generate(d, PARAMS)
    return d


@pytest.fixture(scope="module")
def manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def read_rows(out: Path, entry: dict[str, Any]) -> list[dict[str, Any]]:
    path = out / entry["path"]
    if entry["format"] == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if entry["format"] == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    text = path.read_bytes().decode(entry["encoding"])
    text = unicodedata.normalize("NFC", text)
    return list(csv.DictReader(io.StringIO(text), delimiter=entry["delimiter"]))


def digest(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(out: Path, tmp_path: Path) -> None:
    generate(tmp_path, PARAMS)
    assert digest(tmp_path) == digest(out)


def test_other_seed_differs(out: Path, tmp_path: Path) -> None:
    generate(tmp_path, SynthParams(provinces=5, citizens=600, seed=4))
    assert digest(tmp_path)["truth.csv"] != digest(out)["truth.csv"]


def test_formats_and_encodings_present(manifest: dict[str, Any]) -> None:
    kinds = {(f["format"], f["encoding"]) for f in manifest["files"]}
    for k in [
        ("csv", "utf-8-sig"),
        ("csv", "utf-16"),
        ("csv", "cp1258"),
        ("csv", "utf-8"),
        ("jsonl", "utf-8"),
        ("parquet", "binary"),
    ]:
        assert k in kinds
    assert {f["source_system"] for f in manifest["files"]} >= {"national-portal"}


def test_encodings_read_back(out: Path, manifest: dict[str, Any]) -> None:
    for entry in manifest["files"]:
        raw = (out / entry["path"]).read_bytes()
        if entry["encoding"] == "utf-16":
            assert raw[:2] == b"\xff\xfe"
        if entry["encoding"] == "utf-8-sig":
            assert raw[:3] == b"\xef\xbb\xbf"
        rows = read_rows(out, entry)
        assert len(rows) == entry["rows"]


def test_cp1258_uses_combining_tones_and_round_trips() -> None:
    s = "Nguyễn Thị Thủy, Phường Đồng Xuân, Quận Hoàn Kiếm, Ặ ậ Ợ"
    encoded = to_cp1258_text(s).encode("cp1258")
    assert unicodedata.normalize("NFC", encoded.decode("cp1258")) == s
    assert b"\xcc" in to_cp1258_text("à").encode("cp1258")  # U+0300 as a separate byte
    assert tcvn3_mojibake("Nguyễn Thị") == "NguyÔn ThÞ"


def test_every_mapping_column_exists(out: Path, manifest: dict[str, Any]) -> None:
    for entry in manifest["files"]:
        mapping = load_mapping(out / entry["mapping"])
        assert mapping.entity_type == entry["entity_type"]
        rows = read_rows(out, entry)
        columns = set(rows[0])
        missing = set(mapping.required_columns()) - columns
        assert not missing, (entry["path"], missing)
        if entry["format"] == "csv":
            assert mapping.model.csv.delimiter == entry["delimiter"]
        for row in rows[:50]:
            key, raw = mapping.apply(row)
            assert key is not None
            assert set(raw) == set(mapping.model.fields)


def test_truth_covers_every_row(out: Path, manifest: dict[str, Any]) -> None:
    truth = list(csv.DictReader((out / "truth.csv").open(encoding="utf-8")))
    keys = {(t["source_system"], t["source_key"], t["entity_type"]) for t in truth}
    assert len(keys) == len(truth)  # source keys are unique per system
    written = 0
    for entry in manifest["files"]:
        mapping = load_mapping(out / entry["mapping"])
        for row in read_rows(out, entry):
            key, _ = mapping.apply(row)
            assert (entry["source_system"], key, entry["entity_type"]) in keys
            written += 1
    assert written == len(truth)


def test_cross_province_duplicates_rate(out: Path, manifest: dict[str, Any]) -> None:
    truth = list(csv.DictReader((out / "truth.csv").open(encoding="utf-8")))
    systems: dict[str, set[str]] = defaultdict(set)
    legacy = [
        t
        for t in truth
        if t["entity_type"] == "citizen" and t["source_system"] != "national-portal"
    ]
    for t in legacy:
        systems[t["true_entity"]].add(t["source_system"])
    rate = sum(len(systems[t["true_entity"]]) > 1 for t in legacy) / len(legacy)
    assert 0.18 <= rate <= 0.32
    assert manifest["summary"]["citizen_cross_province_duplicate_rate"] == pytest.approx(
        rate, abs=1e-3
    )
    # the portal duplicates legacy people and dossiers
    portal_people = {
        t["true_entity"]
        for t in truth
        if t["source_system"] == "national-portal" and t["entity_type"] == "citizen"
    }
    assert portal_people & set(systems)
    dossiers: dict[str, set[str]] = defaultdict(set)
    for t in truth:
        if t["entity_type"] == "dossier":
            dossiers[t["true_entity"]].add(t["source_system"])
    assert sum(len(s) > 1 for s in dossiers.values()) > 0


def test_hard_negatives_are_different_entities(out: Path, manifest: dict[str, Any]) -> None:
    pairs = list(csv.DictReader((out / "hard_negatives.csv").open(encoding="utf-8")))
    kinds = {p["kind"] for p in pairs}
    assert kinds == {"twins", "parent_child", "namesakes"}
    truth = {
        (t["source_system"], t["source_key"]): t["true_entity"]
        for t in csv.DictReader((out / "truth.csv").open(encoding="utf-8"))
    }
    for p in pairs:
        a = truth[(p["source_system"], p["source_key_a"])]
        b = truth[(p["source_system"], p["source_key_b"])]
        assert a == p["true_entity_a"] and b == p["true_entity_b"] and a != b


def test_twins_share_birth_date_and_surname(out: Path, manifest: dict[str, Any]) -> None:
    entry = next(f for f in manifest["files"] if f["layout"] == "citizen_d")
    rows = {r["id"]: r for r in read_rows(out, entry)}
    pairs = [
        p
        for p in csv.DictReader((out / "hard_negatives.csv").open(encoding="utf-8"))
        if p["source_system"] == entry["source_system"] and p["kind"] == "twins"
    ]
    assert pairs
    same_dob = sum(rows[p["source_key_a"]]["dob"] == rows[p["source_key_b"]]["dob"] for p in pairs)
    assert same_dob >= len(pairs) * 0.7  # record-level noise spoils a few


def test_tax_codes_valid_and_branches(out: Path, manifest: dict[str, Any]) -> None:
    rejects = {
        (r["source_system"], r["source_key"])
        for r in csv.DictReader((out / "expected_rejects.csv").open(encoding="utf-8"))
    }
    branches = 0
    for entry in manifest["files"]:
        if entry["entity_type"] != "organization":
            continue
        mapping = load_mapping(out / entry["mapping"])
        for row in read_rows(out, entry):
            key, raw = mapping.apply(row)
            code = raw["tax_code"]
            if code is None or (entry["source_system"], key) in rejects:
                continue
            assert valid_tax_code(code), code
            if "-" in code:
                branches += 1
                assert len(code) == 14 and code[10] == "-"
    assert branches > 0


def test_invalid_rows_counted(out: Path, manifest: dict[str, Any]) -> None:
    rejects = list(csv.DictReader((out / "expected_rejects.csv").open(encoding="utf-8")))
    assert len(rejects) == sum(f["invalid_rows"] for f in manifest["files"]) > 0
    assert {r["reason"] for r in rejects} >= {"impossible_date", "empty_name"}


def test_rejects_unknown_province_count(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at most"):
        generate(tmp_path, SynthParams(provinces=500, citizens=100))


def test_csv_rows_have_header_width(out: Path, manifest: dict[str, Any]) -> None:
    for entry in manifest["files"]:
        if entry["format"] == "csv":
            for row in read_rows(out, entry):
                assert None not in row and None not in row.values(), entry["path"]


@pytest.mark.slow
def test_5x20k_same_seed_same_bytes(tmp_path: Path) -> None:
    params = SynthParams(provinces=5, citizens=20_000, seed=11)
    generate(tmp_path / "a", params)
    generate(tmp_path / "b", params)
    da, db = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert len(da) > 20 and da == db


def test_keyword_api(tmp_path: Path) -> None:
    m = generate(tmp_path, provinces=2, citizens=300, organizations=40, dossiers=100, seed=5)
    assert m["params"] == {
        "provinces": 2,
        "citizens": 300,
        "organizations": 40,
        "dossiers": 100,
        "seed": 5,
        "portal": True,
        "profile": "standard",
    }
    for f in m["files"]:
        assert {"path", "source_system", "entity_type", "layout", "mapping", "format"} <= set(f)
        assert {"encoding", "rows", "invalid_rows"} <= set(f)
    header = (tmp_path / "truth.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "source_system,source_key,entity_type,true_entity"


def _stdlib_csv(cols: dict[str, list[Any]], delimiter: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    w.writerow(list(cols))
    w.writerows(zip(*cols.values(), strict=True))
    return buf.getvalue()


WRITER_COLS: dict[str, list[Any]] = {
    "a": ["x", None, 'q"u\\o', "tab\there", "Việt, Nam", "a;b", "c\rd", "Ặ ậ Ợ Thuỷ"],
    "n": [1, None, 3, 4, 5, 6, 7, 8],
    "b": [None, "y", "z", "", "line\nbreak", "", None, "Đồng Xuân"],
}


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1258"])
def test_csv_writer_matches_stdlib(tmp_path: Path, delimiter: str, encoding: str) -> None:
    from mdm.synth.writers import write_csv

    path = tmp_path / "t.csv"
    write_csv(path, dict(WRITER_COLS), encoding=encoding, delimiter=delimiter)
    text = _stdlib_csv(WRITER_COLS, delimiter)
    expected = {
        "utf-8": text.encode(),
        "utf-8-sig": text.encode("utf-8-sig"),
        "utf-16": b"\xff\xfe" + text.encode("utf-16-le"),
        "cp1258": to_cp1258_text(text).encode("cp1258"),
    }[encoding]
    assert path.read_bytes() == expected


def test_jsonl_writer_matches_stdlib(tmp_path: Path) -> None:
    from mdm.synth.writers import write_jsonl

    path = tmp_path / "t.jsonl"
    write_jsonl(path, dict(WRITER_COLS))
    rows = zip(*WRITER_COLS.values(), strict=True)
    expected = "".join(
        json.dumps(
            dict(zip(WRITER_COLS, r, strict=True)), ensure_ascii=False, separators=(",", ":")
        )
        + "\n"
        for r in rows
    )
    assert path.read_text(encoding="utf-8") == expected


def test_cp1258_table_encoder_matches_reference() -> None:
    from mdm.synth import data
    from mdm.synth.writers import encode_cp1258

    text = " ".join([s for s, _, _ in data.SURNAMES] + data.GIVEN_MALE + data.GIVEN_FEMALE)
    text += " " + " ".join(data.STREETS).upper() + " ₫" * 0 + " Hoà Thuỷ ẶẬỢỰ ặậợự"
    assert encode_cp1258(text) == to_cp1258_text(text).encode("cp1258")
    nfd = unicodedata.normalize("NFD", text)
    assert encode_cp1258(nfd) == to_cp1258_text(text).encode("cp1258")


def test_vni_mojibake() -> None:
    from mdm.synth.text import vni_mojibake

    assert vni_mojibake("Tiếng Việt") == "Tieáng Vieät"
    assert vni_mojibake("Đà Nẵng") == "Ñaø Naüng"
    assert vni_mojibake("Trường") == "Tröôøng"
    assert vni_mojibake("NGUYỄN") == "NGUYEÃN"


def test_arrow_upper_matches_python() -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    from mdm.synth import data

    words = [s for s, _, _ in data.SURNAMES] + data.GIVEN_MALE + data.GIVEN_FEMALE
    words += data.STREETS + data.BRANDS + [v for vs in data.LEGAL_FORMS.values() for v in vs]
    assert pc.utf8_upper(pa.array(words)).to_pylist() == [w.upper() for w in words]


def test_twins_mostly_same_sex() -> None:
    import numpy as np

    from mdm.synth import geo
    from mdm.synth.people import make_people

    provs = [geo.load_province(c) for c in geo.merged_provinces()[:2]]
    rng = np.random.default_rng(1)
    p = make_people(rng, provs, 20_000, sorted(geo.all_legacy_province_names()))
    twins = [(a, b) for kind, a, b in p.hard_negatives if kind == "twins"]
    same = sum(int(p.sex[a] == p.sex[b]) for a, b in twins) / len(twins)
    assert 0.55 <= same <= 0.85
    for a, b in twins:
        assert p.surname[a] == p.surname[b] and p.year[a] == p.year[b]
        if p.sex[a] == p.sex[b]:
            assert p.given[a] != p.given[b]


def test_cmnd_names_the_home_provinces_region() -> None:
    """A CMND's first two digits are its issuing office's (the home province's
    region, :data:`~mdm.standardize.ids.CMND_REGIONS`), as the matcher expects."""
    import numpy as np

    from mdm.standardize.ids import cmnd_region_of_province
    from mdm.synth import geo
    from mdm.synth.people import make_people

    codes = geo.merged_provinces()
    provs = [geo.load_province(c) for c in (codes[0], codes[-1])]
    rng = np.random.default_rng(2)
    p = make_people(rng, provs, 2_000, sorted(geo.all_legacy_province_names()))
    issued = p.cmnd >= 0
    assert issued.sum() > 1_000
    for i in np.flatnonzero(issued)[::7]:
        expected = cmnd_region_of_province(f"{provs[int(p.home[i])].code:03d}")
        assert f"{int(p.cmnd[i]):09d}"[:2] == expected
