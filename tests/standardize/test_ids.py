"""Where identifiers point: the personal ID's province and the CMND's issuing region."""

from __future__ import annotations

import pytest

from mdm.standardize.ids import (
    CMND_REGIONS,
    LEGACY_PROVINCE_CODES,
    cmnd_region_of_province,
    id_region,
    personal_id_province,
)


def test_every_pre2025_province_has_one_cmnd_region() -> None:
    listed = [f"{code:03d}" for codes in CMND_REGIONS.values() for code in codes]
    assert len(listed) == len(set(listed)), "a province is listed under two prefixes"
    assert set(listed) == set(LEGACY_PROVINCE_CODES)
    assert all(len(prefix) == 2 and prefix.isdigit() for prefix in CMND_REGIONS)


@pytest.mark.parametrize(
    ("province", "region"),
    [("001", "01"), ("079", "02"), ("031", "03"), ("030", "14"), ("033", "14"), ("036", "16")],
)
def test_region_of_province(province: str, region: str) -> None:
    assert cmnd_region_of_province(province) == region


def test_personal_id_province() -> None:
    assert personal_id_province("074188480349") == "074"
    assert personal_id_province("099188480349") is None  # no province 99
    assert personal_id_province("07418848034") is None
    assert personal_id_province(None) is None


@pytest.mark.parametrize(
    ("pid", "old_id", "region"),
    [
        ("074188480349", None, "28"),  # Bình Dương's births
        (None, "149500900", "14"),  # a CMND issued in Hải Dương or Hưng Yên
        ("030089322687", "163054659", "16"),  # the CMND's office first
        (None, "001099000001", "01"),  # a 12-digit old card has the ID's layout
        ("099188480349", "024368895", "02"),  # not a province: the CMND decides
        (None, "990000000", None),  # no office issued 99
        (None, None, None),
    ],
)
def test_id_region(pid: str | None, old_id: str | None, region: str | None) -> None:
    assert id_region(pid, old_id) == region
