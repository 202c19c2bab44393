"""The fast canonical JSON of source rows writes exactly the bytes of the standard one:
content hashes of source rows depend on it (the same file ingested before and after a
change must still be "unchanged")."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mdm.domain.canonical_json import canonical_json, canonical_text_map

_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"])  # type: ignore[call-arg]
    | st.sampled_from(["\x00", "\x1f", "\x7f", '"', "\\", "\u2028", "\ufeff", "𝔸", "ệ"]),
    max_size=30,
)


def _standard(value: object) -> str:
    """The definition both fast paths must meet: the json module's canonical form."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@settings(max_examples=3000, deadline=None)
@given(st.dictionaries(_TEXT, st.none() | _TEXT, max_size=12))
def test_canonical_text_map_is_byte_identical(row: dict[str, str | None]) -> None:
    assert canonical_text_map(row) == _standard(row)
    assert canonical_json(row) == _standard(row)


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=3000, deadline=None)
@given(_VALUES)
def test_canonical_json_of_any_value_is_the_standard_form(value: object) -> None:
    assert canonical_json(value) == _standard(value)


def test_lone_surrogates_take_the_standard_path() -> None:
    row = {"HO_TEN": "Nguy\udcc3n", "b": None}  # surrogateescape of a bad byte
    assert canonical_text_map(row) == canonical_json(row) == _standard(row)
    assert canonical_json(row["HO_TEN"]) == _standard(row["HO_TEN"])


def test_every_basic_plane_character() -> None:
    text = "".join(chr(i) for i in range(0x10000) if not 0xD800 <= i <= 0xDFFF)
    row = {text[:5000]: text, "a": text[::-1]}
    assert canonical_text_map(row) == canonical_json(row) == _standard(row)
    assert canonical_json(text) == _standard(text)
