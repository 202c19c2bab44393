"""Fuzzing the file parsers (issue 11): source mappings, matching rules and the ingest
readers get arbitrary input. A mapping or rules file either loads or is refused
with a ``ConfigError`` naming the file; a data file either opens or is refused
with an ``InputFileError``, and once open, every row is a row or a reject
(never an exception), in line order, with nothing a database cannot store."""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdm.exceptions import ConfigError
from mdm.ingest.mapping import Mapping, load_mapping
from mdm.ingest.readers import InputFileError, open_rows
from mdm.matching.rules import load_rules_file

REPO = Path(__file__).resolve().parents[2]
SHIPPED_MAPPINGS = sorted((REPO / "schemas" / "mappings").glob("*.yaml"))
SHIPPED_RULES = sorted((REPO / "matching_rules").glob("*.yaml"))
FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mdm-fuzz-") as d:
        yield Path(d)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["csv", "jsonl", "citizen", "%d/%m/%Y", "%Q", "%", "utf-8", "nope", ""]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)


def _paths(doc: Any) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [()]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += [(k, *p) for p in _paths(v)]
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += [(i, *p) for p in _paths(v)]
    return out


@st.composite
def mutated(draw: st.DrawFn, originals: list[Path]) -> str:
    """A shipped file with one node replaced, deleted or given a junk sibling."""
    doc = yaml.safe_load(draw(st.sampled_from(originals)).read_text(encoding="utf-8"))
    doc = copy.deepcopy(doc)
    path = draw(st.sampled_from(_paths(doc)[1:]))
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        parent[path[-1]] = draw(documents)
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=10))] = draw(documents)
    else:
        parent.append(draw(documents))
    return yaml.safe_dump(doc, allow_unicode=True)


yaml_texts = st.one_of(
    st.text(max_size=200),
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.sampled_from(
        ["a: &x [*x]", "a: !!python/object/apply:os.system ['true']", "\x00\x01", "- - - - -"]
    ),
)
HEAVY_YAML = [
    "[" * 5000 + "]" * 5000,  # nesting deeper than the YAML parser's recursion
    "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 1500)),
    "{" * 3000,
    "a: " + "b" * 100_000,
]


def _write(scratch: Path, name: str, data: str | bytes) -> Path:
    path = scratch / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8", errors="surrogatepass")
    return path


@FUZZ
@given(st.one_of(yaml_texts, mutated(SHIPPED_MAPPINGS)), st.binary(max_size=40))
def test_mapping_loader_refuses_cleanly(scratch: Path, text: str, junk: bytes) -> None:
    for data in (text, text.encode("utf-8", "surrogatepass") + junk):
        path = _write(scratch, "mapping.yaml", data)
        try:
            mapping = load_mapping(path)
        except ConfigError as exc:
            assert str(path) in str(exc)
            continue
        assert isinstance(mapping, Mapping)


@pytest.mark.parametrize("text", HEAVY_YAML, ids=["flow", "block", "open", "long"])
def test_loaders_refuse_pathological_yaml(scratch: Path, text: str) -> None:
    path = _write(scratch, "deep.yaml", text)
    for load in (load_mapping, load_rules_file):
        with pytest.raises(ConfigError, match=r"deep\.yaml"):
            load(path)


row_values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dates(), st.datetimes())


@FUZZ
@given(
    mapping_file=st.sampled_from(SHIPPED_MAPPINGS),
    rows=st.lists(st.dictionaries(st.text(max_size=12), row_values, max_size=8), max_size=5),
)
def test_mapping_apply_never_raises(mapping_file: Path, rows: list[dict[str, Any]]) -> None:
    mapping = load_mapping(mapping_file)
    columns = mapping.required_columns()
    for row in rows:
        for i, column in enumerate(columns):  # also fill the mapped columns
            row.setdefault(column, list(row.values())[i % len(row)] if row else None)
        key, fields = mapping.apply(row)
        assert key is None or isinstance(key, str)
        assert all(v is None or isinstance(v, str) for v in fields.values())


@FUZZ
@given(st.one_of(yaml_texts, mutated(SHIPPED_RULES)))
def test_rules_loader_refuses_cleanly(scratch: Path, text: str) -> None:
    path = _write(scratch, "citizen.yaml", text)
    try:
        load_rules_file(path)
    except ConfigError as exc:
        assert str(path) in str(exc)


# ------------------------------------------------------------------- readers

csv_bytes = st.one_of(
    st.binary(max_size=400),
    st.lists(
        st.one_of(
            st.text(alphabet='ab,;"\t\r\n\\ \x00\x01é', max_size=30),
            st.sampled_from(['"', '""', '"a\nb"', "\r", "\r\n", "\n", "\ufeff", "\x00"]),
        ),
        max_size=20,
    ).map(lambda parts: ("MA,HO_TEN\n" + "".join(parts)).encode("utf-8")),
    st.binary(max_size=200).map(lambda b: b"MA,HO_TEN\nK1,Nguy\xe1\xbb\x85n\n" + b),
)
jsonl_bytes = st.one_of(
    st.binary(max_size=400),
    st.lists(
        st.one_of(
            documents.map(lambda d: json.dumps(d)),
            st.text(alphabet='{}[]":,\\u0 \r\n1e9aN', max_size=30),
            st.sampled_from(["[" * 3000, '{"a":' * 100 + "1" + "}" * 100, "9" * 5000, "\ufeff"]),
        ),
        max_size=10,
    ).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")),
)


def _check_rows(path: Path, fmt: str) -> None:
    try:
        header, rows, _encoding = open_rows(path, fmt=fmt, encoding=None)
    except InputFileError as exc:
        assert str(path) in str(exc)
        return
    last = 0
    for row in rows:
        assert row.number > last
        last = row.number
        assert (row.values is None) == (row.error is not None), row
        row.raw.encode("utf-8")  # no lone surrogates: every store can hold it
        assert "\x00" not in row.raw
        if row.values is not None:
            assert "\x00" not in json.dumps(row.values, default=str).replace("\\u0000", "\x00")
            if header is not None:
                assert list(row.values) == header


@FUZZ
@given(csv_bytes)
def test_csv_reader_yields_rows_or_rejects(scratch: Path, data: bytes) -> None:
    _check_rows(_write(scratch, "in.csv", data), "csv")


@FUZZ
@given(jsonl_bytes)
def test_jsonl_reader_yields_rows_or_rejects(scratch: Path, data: bytes) -> None:
    _check_rows(_write(scratch, "in.jsonl", data), "jsonl")
