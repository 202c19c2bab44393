"""Source mappings: loading, validation errors that name file and key, transforms."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdm.exceptions import ConfigError
from mdm.ingest.mapping import _NOT_PARSED, _split_date, load_mapping, parse_mapping

MAPPINGS = Path(__file__).resolve().parents[2] / "schemas" / "mappings"

BASE = """
source_system: hn-legacy-2019
entity_type: citizen
format: csv
encoding: utf-8-sig
csv: {delimiter: ";"}
source_key: [MA_HUYEN, STT]
null_values: ["NULL"]
fields:
  personal_id: SO_DINH_DANH
  full_name: {columns: [HO, TEN_DEM, TEN], join: " "}
  date_of_birth: {column: NGAY_SINH, date_format: ["%d/%m/%Y", "%Y"]}
  sex: {column: GIOI_TINH, codes: {1: male, 2: female}}
  nationality: {column: QUOC_TICH, default: "Việt Nam"}
  ethnicity: {default: Kinh}
trust:
  default: 0.5
  personal_id: 0.9
"""


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_valid_mapping_loads(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path, BASE))
    assert m.entity_type == "citizen"
    assert m.source_system == "hn-legacy-2019"
    assert m.model.csv.delimiter == ";"
    assert m.required_columns() == [
        "MA_HUYEN",
        "STT",
        "SO_DINH_DANH",
        "HO",
        "TEN_DEM",
        "TEN",
        "NGAY_SINH",
        "GIOI_TINH",
        "QUOC_TICH",
    ]
    assert m.trust_for("personal_id") == 0.9
    assert m.trust_for("full_name") == 0.5


def test_apply_transforms(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path, BASE))
    key, raw = m.apply(
        {
            "MA_HUYEN": "001",
            "STT": " 42 ",
            "SO_DINH_DANH": "001090012345",
            "HO": "Nguyễn",
            "TEN_DEM": "",
            "TEN": "An",
            "NGAY_SINH": "05/03/1990",
            "GIOI_TINH": "2",
            "QUOC_TICH": "NULL",
        }
    )
    assert key == "001|42"
    assert raw == {
        "personal_id": "001090012345",
        "full_name": "Nguyễn An",
        "date_of_birth": "1990-03-05",
        "sex": "female",
        "nationality": "Việt Nam",
        "ethnicity": "Kinh",
    }


def test_apply_passes_unparseable_and_unknown_codes_through(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path, BASE))
    key, raw = m.apply(
        {"MA_HUYEN": "001", "STT": None, "NGAY_SINH": "31/02/1990", "GIOI_TINH": "X"}
    )
    assert key is None  # a partial composite key identifies nothing
    assert raw["date_of_birth"] == "31/02/1990"  # left for the standardizer to report
    assert raw["sex"] == "X"
    assert raw["full_name"] is None
    assert raw["personal_id"] is None


def test_apply_native_values(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path, BASE))
    _, raw = m.apply(
        {
            "MA_HUYEN": 1,
            "STT": 7.0,
            "NGAY_SINH": dt.date(1990, 3, 5),
            "GIOI_TINH": 1,
            "SO_DINH_DANH": float("nan"),
        }
    )
    assert raw["date_of_birth"] == "1990-03-05"
    assert raw["sex"] == "male"
    assert raw["personal_id"] is None
    assert m.apply({"MA_HUYEN": 1, "STT": 7.0})[0] == "1|7"


def test_year_only_format_and_datetime(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path, BASE))
    assert m.apply({"NGAY_SINH": "1975"})[1]["date_of_birth"] == "1975-01-01"
    text = BASE.replace('date_format: ["%d/%m/%Y", "%Y"]', 'date_format: "%d/%m/%Y %H:%M"')
    m2 = load_mapping(write(tmp_path, text))
    assert m2.apply({"NGAY_SINH": "05/03/2024 08:30"})[1]["date_of_birth"] == "2024-03-05T08:30:00"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("  personal_id: SO_DINH_DANH", "  tax_code: MST"), "unknown standard field"),
        (("source_key: [MA_HUYEN, STT]\n", ""), "source_key: Field required"),
        (("  personal_id: 0.9", "  personal_id: 1.5"), "trust.personal_id: 1.5 is outside 0..1"),
        (("  personal_id: 0.9", "  tax_code: 0.9"), "trust.tax_code: not a standard field"),
        (("entity_type: citizen", "entity_type: person"), "entity_type"),
        (("format: csv", "format: xlsx"), "format"),
        (("encoding: utf-8-sig", "encoding: klingon"), "unknown encoding"),
        (("  ethnicity: {default: Kinh}", "  ethnicity: {}"), "fields.ethnicity"),
        (("  ethnicity: {default: Kinh}", "  ethnicity: {colum: X}"), "fields.ethnicity.colum"),
        (('csv: {delimiter: ";"}', 'csv: {delimiter: ";;"}'), "csv.delimiter"),
        (("source_system: hn-legacy-2019", "source_system: HN Legacy"), "source_system"),
        (("trust:", "trusts:"), "trusts"),
    ],
)
def test_invalid_mapping_names_file_and_key(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    assert change[0] in BASE
    path = write(tmp_path, BASE.replace(change[0], change[1]), "bad.yaml")
    with pytest.raises(ConfigError) as info:
        load_mapping(path)
    msg = str(info.value)
    assert str(path) in msg
    assert expected in msg


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_mapping(write(tmp_path, "fields: [a, b\n"))
    with pytest.raises(ConfigError, match="cannot read mapping"):
        load_mapping(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        parse_mapping(["x"])


def test_column_and_columns_exclusive() -> None:
    doc = {
        "entity_type": "citizen",
        "source_key": "K",
        "fields": {"full_name": {"column": "A", "columns": ["B"]}},
    }
    with pytest.raises(ConfigError, match="either 'column' or 'columns'"):
        parse_mapping(doc)


@pytest.mark.parametrize("path", sorted(MAPPINGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_mappings_load(path: Path) -> None:
    m = load_mapping(path)
    assert m.required_columns()


_DATE_TEXT = st.one_of(
    st.from_regex(r"\A[0-9]{1,3}[/.\-][0-9]{1,3}[/.\-][0-9]{1,5}\Z"),
    st.from_regex(r"\A[0-9]{4}[/\-][0-9]{1,2}[/\-][0-9]{1,2}\Z"),
    st.dates().map(lambda d: d.strftime("%d/%m/%Y")),
    st.text(alphabet="0123456789/-.٣ ", max_size=12),
)


@settings(max_examples=2000, deadline=None)
@given(
    value=_DATE_TEXT,
    fmt=st.sampled_from(["%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d", "%Y/%m/%d"]),
)
def test_split_date_agrees_with_strptime(value: str, fmt: str) -> None:
    """The split fast path answers exactly what strptime answers, or defers to it."""
    fast = _split_date(value, fmt)
    if fast is _NOT_PARSED:
        return
    try:
        expected: str | None = dt.datetime.strptime(value, fmt).date().isoformat()
    except ValueError:
        expected = None
    assert fast == expected


def _dates_uncached(value: str, formats: list[str]) -> str:
    """What the date stage answered before it was memoized: the first format that reads
    the text, else the text itself."""
    for fmt in formats:
        try:
            parsed = dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
        if parsed.time() == dt.time(0) and "%H" not in fmt:
            return parsed.date().isoformat()
        return parsed.isoformat()
    return value


@settings(max_examples=500, deadline=None)
@given(values=st.lists(_DATE_TEXT.map(str.strip).filter(bool), min_size=1, max_size=20))
def test_memoized_dates_equal_uncached(values: list[str]) -> None:
    """The date stage remembers each text's result: asked again (in any order, with
    other texts in between), it answers what an uncached parse answers."""
    formats = ["%d/%m/%Y", "%Y%m%d", "%d-%m-%Y %H:%M"]
    mapping = parse_mapping(
        {
            "entity_type": "citizen",
            "source_key": "id",
            "fields": {
                "full_name": "name",
                "date_of_birth": {"column": "d", "date_format": formats},
            },
        }
    )
    for value in [*values, *reversed(values), *values]:
        _key, out = mapping.apply({"id": "1", "name": "A", "d": value})
        assert out["date_of_birth"] == _dates_uncached(value, formats)


def test_date_cache_is_per_mapping_field() -> None:
    """Two mappings reading the same text with different formats keep separate results."""

    def mapping(fmt: str) -> Any:
        return parse_mapping(
            {
                "entity_type": "citizen",
                "source_key": "id",
                "fields": {"full_name": "n", "date_of_birth": {"column": "d", "date_format": fmt}},
            }
        )

    dmy, mdy = mapping("%d/%m/%Y"), mapping("%m/%d/%Y")
    row = {"id": "1", "n": "A", "d": "03/04/1990"}
    for _ in range(2):
        assert dmy.apply(row)[1]["date_of_birth"] == "1990-04-03"
        assert mdy.apply(row)[1]["date_of_birth"] == "1990-03-04"
