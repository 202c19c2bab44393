"""Name features of a name written with syllables run together: the same as the name
written right, whether the standardizer split it or it was stored before it did."""

from __future__ import annotations

from typing import Any

from mdm.matching.deterministic import guard_conflict
from mdm.matching.features import NAME_FEATURES, build_features
from mdm.matching.rules import load_rules
from mdm.standardize import standardize_record

NAME_COLUMNS = NAME_FEATURES


def _features(std: dict[str, Any], uid: str = "1") -> dict[str, Any]:
    return build_features("citizen", uid, "src", std)


def _standardized(name: str) -> dict[str, Any]:
    raw = {"full_name": name, "date_of_birth": "12/03/1991", "sex": "F"}
    return dict(standardize_record("citizen", raw).standardized)


def test_run_together_name_gives_the_same_name_features() -> None:
    right = _features(_standardized("Nguyễn Thị Minh Trang"))
    together = _features(_standardized("Nguyễn Thị Minhtrang"))
    for col in NAME_COLUMNS:
        assert together[col] == right[col], col
    assert together["given_fold"] == "trang"
    assert together["middle_fold"] == "thi minh"
    assert together["name_core"] == "nguyen minh trang"


def test_a_name_stored_before_the_split_reads_the_same() -> None:
    """Features are recomputed from stored standardized records (the feature signature
    covers the syllable code and data): one stored as ``Minhtrang`` reads split."""
    right = _features({"full_name": "Nguyễn Thị Minh Trang"})
    stored = _features({"full_name": "Nguyễn Thị Minhtrang"})
    caps = _features({"full_name": "NGUYEN THI MINHTRANG"})
    for col in NAME_COLUMNS:
        assert stored[col] == right[col], col
    assert caps["name_core"] == right["name_core"]
    assert caps["given_marked"] is None


def test_split_given_name_no_longer_looks_like_a_twin() -> None:
    rules = load_rules("citizen")
    left = _features(_standardized("Nguyễn Thị Minh Trang"), "1")
    right = _features(_standardized("Nguyễn Thị Minhtrang"), "2")
    assert guard_conflict(rules, left, right) is None
    # a real sibling is still refused
    sister = _features(_standardized("Nguyễn Thị Minh Thảo"), "3")
    assert guard_conflict(rules, left, sister) is not None
