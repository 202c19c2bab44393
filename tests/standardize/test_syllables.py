"""Syllables written together or apart in names, against the closed set of Vietnamese
syllables (``mdm.standardize.syllables``, used by ``parse_name``)."""

from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdm.standardize import parse_name
from mdm.standardize.syllables import (
    _tables,
    is_name_syllable,
    is_syllable,
    join_pair,
    respace,
    split_word,
)
from mdm.standardize.text import _is_syllable, canonical_tones, fold
from mdm.synth import data as synth

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _codes(name: str) -> list[str]:
    return [i.code for i in parse_name(name)[1]]


def _full(name: str) -> str | None:
    parts = parse_name(name)[0]
    return parts.full if parts else None


# --- the inventory -------------------------------------------------------------------


def test_the_shipped_files_are_what_the_script_builds() -> None:
    sys.path.insert(0, str(SCRIPTS))
    try:
        import build_vi_syllables as build
    finally:
        sys.path.remove(str(SCRIPTS))
    inventory, prior = build.render()
    data = Path(__file__).resolve().parents[2] / "src" / "mdm" / "standardize" / "data"
    assert (data / "vi_syllables.txt").read_text(encoding="utf-8") == inventory
    assert (data / "vi_name_syllables.txt").read_text(encoding="utf-8") == prior


def test_inventory_size_is_that_of_vietnamese() -> None:
    t = _tables()
    assert 2000 <= len(t.folded) <= 3000
    assert 10_000 <= len(t.toned) <= 20_000
    assert set(t.prior_folded) <= t.folded


def _tokens(texts: list[str]) -> set[str]:
    out: set[str] = set()
    for text in texts:
        out.update(t.lower() for t in re.findall(r"[^\W\d_]+", unicodedata.normalize("NFC", text)))
    return out


def test_every_generator_name_syllable_is_in_the_inventory_and_the_prior() -> None:
    names = [s for s, _, _ in synth.SURNAMES]
    names += [m for m, _ in (*synth.MIDDLE_MALE, *synth.MIDDLE_FEMALE)]
    names += [*synth.GIVEN_MALE, *synth.GIVEN_FEMALE, *synth.TONE_VARIANTS.values()]
    for token in _tokens(names):
        assert is_syllable(token), token
        assert is_name_syllable(token), token
    others = [*synth.STREETS, *(e for e, _ in synth.ETHNICITIES if e != "Khmer")]
    for token in _tokens(others):
        assert is_syllable(token), token


def test_every_syllable_of_the_unit_names_is_in_the_inventory() -> None:
    """Unit names hold minority-language words too (``Krông``, ``Đắk``, ``Ea``): every
    token that is a well-formed Vietnamese syllable (the tone-placement regex of
    ``text``, looser than the inventory) must be in it."""
    from vietnam_provinces._lookup import PROVINCE_MAPPING, WARD_MAPPING
    from vietnam_provinces.legacy._lookup import DISTRICT_MAPPING as OLD_D
    from vietnam_provinces.legacy._lookup import PROVINCE_MAPPING as OLD_P
    from vietnam_provinces.legacy._lookup import WARD_MAPPING as OLD_W

    tables = (PROVINCE_MAPPING, WARD_MAPPING, OLD_D, OLD_P, OLD_W)
    names = [u.name for m in tables for u in m.values()]
    tokens = _tokens(names)
    assert len(tokens) > 1500
    missing = sorted(t for t in tokens if _is_syllable(t) and not is_syllable(t))
    assert missing == []


def test_lookups_ignore_tone_placement_case_and_normalization() -> None:
    for word in ("Hoà", "Hòa", "HOÀ", unicodedata.normalize("NFD", "Hoà"), "Thuỷ", "Thủy"):
        assert is_syllable(word)
    assert is_syllable("NGUYEN") and is_syllable("nguyen")
    # tone restrictions: a checked rhyme (-p -t -c -ch) takes only sắc and nặng
    assert is_syllable("Phúc") and is_syllable("Lộc")
    assert not is_syllable("Phùc") and not is_syllable("Lỗc")
    # spelling rules
    assert is_syllable("Nghĩa") and not is_syllable("Ngĩa")
    assert is_syllable("Kiên") and not is_syllable("Ciên")
    assert is_syllable("Quyên") and is_syllable("Yến") and not is_syllable("Iến")


# --- splitting -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "full"),
    [
        ("Nguyễn Thị Minhtrang", "Nguyễn Thị Minh Trang"),
        ("Minhtrang", "Minh Trang"),
        ("NGUYENVANAN", "Nguyen Van An"),
        ("NGUYEN THI MINHTRANG", "Nguyen Thi Minh Trang"),
        ("Trần Thịyến", "Trần Thị Yến"),
        ("Trần Thịhuyến", "Trần Thị Huyến"),
        ("Lê Thịhương", "Lê Thị Hương"),
        ("Phạm Ngọcanh", "Phạm Ngọc Anh"),
        ("Pham Ngocanh", "Pham Ngoc Anh"),
        ("Võ Thanhan", "Võ Thanh An"),
        ("Đỗ Thịthủy", "Đỗ Thị Thuỷ"),
        ("nguyễnvăn an", "Nguyễn Văn An"),
    ],
)
def test_run_together_syllables_are_split(raw: str, full: str) -> None:
    assert _full(raw) == full
    assert "name_syllables_split" in _codes(raw)
    # and the result is a fixed point
    assert _full(full) == full
    assert "name_syllables_split" not in _codes(full)


def test_the_split_sets_the_given_name() -> None:
    parts = parse_name("NGUYENVANAN")[0]
    assert parts is not None
    assert (parts.surname, parts.middle, parts.given) == ("Nguyen", "Van", "An")
    assert "name_single_word" not in _codes("NGUYENVANAN")


@pytest.mark.parametrize(
    "word", ["Nguyễn", "Khuyến", "Hoàng", "Nghiêng", "Khuỷu", "Quốc", "Giữa", "Thuở", "Xoong"]
)
def test_a_syllable_is_never_split(word: str) -> None:
    assert is_syllable(word)
    assert split_word(word) is None
    assert _full(f"Nguyễn Văn {word}") == f"Nguyễn Văn {word}"


_FOREIGN_TEXT = """
    Maria John Smith Anna Hana Lisa Nina Tina Lina Mina Vivian Ivan Ian Yan Sean Alan
    Nathan Emma Laura Rosa Sophia Monica Susan Linda Diana Davy Emily Thomas Kevin Mary
    Peter Paul David Daniel Anne Leon Vanessa Lucas Hannah Teresa Joseph Martin Louis
"""
FOREIGN = _FOREIGN_TEXT.split()


@pytest.mark.parametrize("name", FOREIGN)
def test_foreign_names_are_left_alone(name: str) -> None:
    assert split_word(name) is None
    assert _full(f"{name} Nguyễn") == f"{name} Nguyễn"
    assert not {"name_syllables_split", "name_syllables_joined"} & set(_codes(f"{name} Nguyen"))


@pytest.mark.parametrize("name", ["Ksor H'Hen", "Niê Kdăm", "Êban", "Rahlan Nay", "Kpă Byă"])
def test_minority_names_are_left_alone(name: str) -> None:
    assert _full(name) == name
    assert not {"name_syllables_split", "name_syllables_joined"} & set(_codes(name))


def test_ambiguous_readings_are_left_alone_without_an_issue() -> None:
    # Hoàng An or Hoa Ngân: no reading is clearly the best
    assert split_word("Hoangan") is None
    assert _full("Trần Hoangan") == "Trần Hoangan"
    assert "name_syllables_split" not in _codes("Trần Hoangan")
    # the marks decide: ngan without a circumflex is no name
    assert split_word("Hoàngan") == ("Hoàng", "An")


def test_a_name_with_marks_is_read_as_written() -> None:
    # "ky le" folds like Kỳ Lê, but a name written with marks would have them
    assert split_word("Kyle", True) is None
    assert _full("Nguyễn Kyle") == "Nguyễn Kyle"
    assert split_word("Minhtrang", True) == ("Minh", "Trang")
    # "ngoc" as written is no name (Ngọc is): a name with marks missing in one word
    assert _full("Phạm Ngocanh") == "Phạm Ngocanh"


def test_reduplicated_readings_are_refused() -> None:
    assert split_word("Vivian") is None  # Vi Vi An
    assert split_word("Vivi") is None


def test_non_vietnamese_letters_and_long_words_are_not_split() -> None:
    assert split_word("Minhtrangf") is None
    assert split_word("Minh-trang") is None
    assert split_word("minhtrang" * 4) is None


# --- joining -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "full"),
    [
        ("Ng uyễn Văn An", "Nguyễn Văn An"),
        ("Ng uyen Van An", "Nguyen Van An"),
        ("Nguyễn Văn Tr ang", "Nguyễn Văn Trang"),
        ("Trần Thị H ương", "Trần Thị Hương"),
        ("Trần Thị L an", "Trần Thị Lan"),  # a lower-case rest: one word
        ("Lê Th ảo", "Lê Thảo"),
    ],
)
def test_split_syllables_are_joined(raw: str, full: str) -> None:
    assert _full(raw) == full
    assert "name_syllables_joined" in _codes(raw)


@pytest.mark.parametrize(
    ("raw", "full"),
    [
        ("Nguy ễn Văn An", "Nguy Ễn Văn An"),  # two syllables: never joined
        ("Lê V An", "Lê V An"),  # V is likely an initial
        ("LÊ V AN", "Lê V An"),
        ("Minh Anh", "Minh Anh"),
    ],
)
def test_pieces_that_may_be_words_are_not_joined(raw: str, full: str) -> None:
    assert _full(raw) == full
    assert "name_syllables_joined" not in _codes(raw)


def test_join_pair() -> None:
    assert join_pair("Ng", "uyễn") == "Nguyễn"
    assert join_pair("Nguy", "ễn") is None
    assert join_pair("L", "an") == "Lan"
    assert join_pair("L", "An") is None
    assert join_pair("Hoa", "n") is None


def test_respace_runs_to_a_fixed_point() -> None:
    assert respace(["Minhtra", "Ng"]) == (["Minh", "Trang"], 1, 1)
    assert respace(["Nguyễn", "Văn", "An"]) == (["Nguyễn", "Văn", "An"], 0, 0)


# --- properties ----------------------------------------------------------------------

_NAME_SYLLABLES = sorted(
    {
        w
        for n in (
            *(s for s, _, _ in synth.SURNAMES),
            *(m for m, _ in (*synth.MIDDLE_MALE, *synth.MIDDLE_FEMALE)),
            *synth.GIVEN_MALE,
            *synth.GIVEN_FEMALE,
        )
        for w in n.split()
    }
)
_INVENTORY = sorted(_tables().toned)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_INVENTORY), min_size=1, max_size=5))
def test_names_of_inventory_syllables_are_unchanged(words: list[str]) -> None:
    name = " ".join(w.capitalize() for w in words)
    parts, issues = parse_name(name)
    assert parts is not None
    assert parts.folded_full == fold(name)
    assert not {"name_syllables_split", "name_syllables_joined"} & {i.code for i in issues}


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([s for s, _, _ in synth.SURNAMES]),
    st.sampled_from(_NAME_SYLLABLES),
    st.sampled_from(_NAME_SYLLABLES),
    st.booleans(),
)
def test_running_two_syllables_together_gives_the_name_back(
    surname: str, middle: str, given_name: str, ascii_caps: bool
) -> None:
    name = f"{surname} {middle} {given_name}"
    together = f"{surname} {middle}{given_name.lower()}"
    if ascii_caps:
        name, together = fold(name, lower=False).upper(), fold(together, lower=False).upper()
    word = together.split()[-1]
    marked = not together.isascii()
    expected = parse_name(name)[0]
    assert expected is not None
    parts, issues = parse_name(together)
    assert parts is not None
    if split_word(word, marked) is None:
        # left alone (ambiguous or refused): no issue, and the word kept whole
        assert parts.folded_given == fold(word)
        assert "name_syllables_split" not in {i.code for i in issues}
    else:
        assert parts.folded_full == expected.folded_full
        assert "name_syllables_split" in {i.code for i in issues}


def test_most_run_together_generator_names_split() -> None:
    """The refusals above are few: of every middle + given pair of the generator, with
    marks, nearly all split back; without marks most do (folding merges names)."""
    middles = sorted({m for m, _ in (*synth.MIDDLE_MALE, *synth.MIDDLE_FEMALE)})
    givens = sorted({*synth.GIVEN_MALE, *synth.GIVEN_FEMALE})
    pairs = [(m, g) for m in middles for g in givens]
    marked = sum(
        split_word(m + g.lower(), True, False) == (canonical_tones(m), canonical_tones(g))
        for m, g in pairs
    )
    folded = sum(
        split_word(fold(m + g.lower()), False, False)
        == (fold(m, lower=False), fold(g, lower=False))
        for m, g in pairs
    )
    assert marked / len(pairs) > 0.95
    assert folded / len(pairs) > 0.8
