"""Birth province and identifier region: what a record's identifiers say about where
the person comes from, for the citizen comparisons ``birth_place`` and ``id_region``."""

from __future__ import annotations

from typing import Any

from mdm.matching.features import FEATURE_COLUMNS, build_features


def _row(**std: Any) -> dict[str, Any]:
    return build_features("citizen", "1", "src", {"full_name": "Nguyễn Văn An", **std})


def test_columns_in_order() -> None:
    assert list(_row()) == list(FEATURE_COLUMNS["citizen"])


def test_birth_province_from_the_place_of_birth_first() -> None:
    row = _row(personal_id="074188480349", place_of_birth={"province_code": "31"})
    assert row["birth_province_code"] == "31"
    assert row["birth_province_any"] == "31"


def test_birth_province_from_the_personal_id_in_2025_units() -> None:
    # Bình Dương (074) joined Hồ Chí Minh City (79); Hải Dương (030) joined Hải Phòng (31)
    assert _row(personal_id="074188480349")["birth_province_any"] == "79"
    assert _row(personal_id="030089322687")["birth_province_any"] == "31"
    assert _row(personal_id="001089322687")["birth_province_any"] == "01"
    assert _row(old_id_number="149500900")["birth_province_any"] is None


def test_id_region_of_either_identifier() -> None:
    assert _row(personal_id="030089322687")["id_region"] == "14"
    assert _row(old_id_number="149500900")["id_region"] == "14"
    assert _row(old_id_number="169500900")["id_region"] == "16"
    assert _row()["id_region"] is None
