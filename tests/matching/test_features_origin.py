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


def _standardized_row(**raw: Any) -> dict[str, Any]:
    """Features of a record as ingest stores it: through the standardizer."""
    from mdm.standardize.records import standardize_record

    std = standardize_record("citizen", {"full_name": "Trần Văn Anh", **raw}).standardized
    return build_features("citizen", "1", "src", std)


def test_pre2025_birth_province_survives_the_merger() -> None:
    # Nam Định, Hà Nam and Ninh Bình became one province (37) on 1 July 2025: the
    # 2025 code no longer tells their natives apart, the pre-2025 one still does
    nam_dinh = _standardized_row(place_of_birth="Nam Định")
    ha_nam = _standardized_row(hometown="Tỉnh Hà Nam")
    assert nam_dinh["birth_province_any"] == ha_nam["birth_province_any"] == "37"
    assert nam_dinh["birth_province_legacy"] == "36"
    assert ha_nam["birth_province_legacy"] == "35"
    # a name that survived the reform is read as the old province of that name
    assert _standardized_row(place_of_birth="Ninh Bình")["birth_province_legacy"] == "37"


def test_pre2025_birth_province_from_the_personal_id() -> None:
    # the first three digits are the pre-2025 province of birth registration
    assert _row(personal_id="036079696128")["birth_province_legacy"] == "36"
    assert _row(personal_id="030089322687")["birth_province_legacy"] == "30"
    # the place of birth comes first
    row = _row(personal_id="036079696128", place_of_birth={"province_code": "01"})
    assert row["birth_province_legacy"] == "01"
    # a CMND names a region of several provinces, not one province
    assert _row(old_id_number="169500900")["birth_province_legacy"] is None
    assert _row()["birth_province_legacy"] is None


def test_ethnicity_is_compared_as_standardized() -> None:
    assert _standardized_row(ethnicity="kinh")["ethnicity"] == "Kinh"
    assert (
        _standardized_row(ethnicity="Dân tộc Tày")["ethnicity"]
        == (_standardized_row(ethnicity="Tày")["ethnicity"])
    )
    assert _row()["ethnicity"] is None
