"""Address standardizer: legacy and 2025 addresses resolved to official 2025 codes.

Expected codes come from the official unit lists and the old->new crosswalk, looked up by
the names of the legacy province, district and commune (not from the function under test);
all non-split rows were also checked against vietnamadminunits' converter (offline path,
geocoder disabled), which agreed on every one.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdm.standardize.addresses import (
    format_address,
    standardize_address,
    standardize_address_compact,
)
from mdm.standardize.units import (
    accent_key,
    audit,
    dataset_version,
    fold,
    get_index,
    iter_crosswalk,
    iter_units,
)

# (legacy address as written, expected 2025 province code, expected 2025 commune code)
LEGACY = [
    # Hà Giang -> Tuyên Quang
    ("Thôn Việt Thành, Xã Tùng Bá, Huyện Vị Xuyên, Tỉnh Hà Giang", "08", "00925"),  # Xã Tùng Bá
    ("X. Lũng Chinh, H. Mèo Vạc, Hà Giang", "08", "00787"),  # Xã Sủng Máng
    # Bà Rịa - Vũng Tàu -> Hồ Chí Minh
    ("Ấp 3, xã Hòa Bình, huyện Xuyên Mộc, tỉnh Bà Rịa - Vũng Tàu", "79", "26641"),  # Xã Hòa Hội
    ("12 Lê Lợi, P. Thắng Nhì, TP. Vũng Tàu, BR-VT", "79", "26506"),  # Phường Vũng Tàu
    # Bình Dương -> Hồ Chí Minh
    ("Khu phố 2, Phường Tân An, Thành phố Thủ Dầu Một, Tỉnh Bình Dương", "79", "25768"),  # Phú An
    ("TT. Tân Bình, H. Bắc Tân Uyên, Bình Dương", "79", "25912"),  # Phường Vĩnh Tân
    # Hải Dương -> Hải Phòng
    ("Phuong Ben Tam, Thanh pho Chi Linh, Tinh Hai Duong", "31", "10552"),  # Phường Nguyễn Trãi
    ("Thôn Đông, Xã Thanh Sơn, Huyện Thanh Hà, Hải Dương", "31", "10813"),  # Xã Thanh Hà
    # Hà Nam, Nam Định, Ninh Bình -> Ninh Bình
    ("Xóm 4, xã Chính Lý, huyện Lý Nhân, tỉnh Hà Nam", "37", "13573"),  # Xã Lý Nhân
    ("25 Trần Phú, P. Tân Hiệp, TP. Phủ Lý, Hà Nam", "37", "13366"),  # Phường Hà Nam
    ("Xã Xuân Ninh, Huyện Xuân Trường, Tỉnh Nam Định", "37", "14089"),  # Xã Xuân Trường
    ("xa yen dong, huyen y yen, nam dinh", "37", "13879"),  # Xã Yên Đồng
    ("Xã Yên Sơn, Thành phố Tam Điệp, Tỉnh Ninh Bình", "37", "14371"),  # Phường Yên Sơn
    ("Thôn Đồng Tâm, X. Gia Sơn, H. Nho Quan, T. Ninh Bình", "37", "14389"),  # Xã Gia Lâm
    # Quảng Nam -> Đà Nẵng
    ("Xã Quế Phong, Huyện Quế Sơn, Tỉnh Quảng Nam", "48", "20641"),  # Xã Quế Sơn
    ("Thon 2, Xa Phuoc Ninh, Huyen Que Son, Quang Nam", "48", "20669"),  # Xã Quế Phước
    # Kon Tum -> Quảng Ngãi
    ("45 Bà Triệu, Phường Nguyễn Trãi, Thành phố Kon Tum, Tỉnh Kon Tum", "51", "23302"),  # Đăk Bla
    ("Xã Đắk Long, Huyện Đắk Glei, Kon Tum", "51", "23368"),  # Xã Đăk Long
    # Bắc Giang -> Bắc Ninh
    ("Xã Lãng Sơn, TP Bắc Giang, Tỉnh Bắc Giang", "24", "07682"),  # Phường Tân An
    ("Thôn Mặn, Xã An Bá, Huyện Sơn Động, Bắc Giang", "24", "07615"),  # Xã Sơn Động
    # Vĩnh Phúc, Phú Thọ, Hòa Bình -> Phú Thọ
    ("Thị trấn Đại Đình, Huyện Tam Đảo, Tỉnh Vĩnh Phúc", "25", "08923"),  # Xã Đại Đình
    ("Số 8 Nguyễn Tất Thành, P.Khai Quang, TP.Vĩnh Yên, Vĩnh Phúc", "25", "08716"),  # P Vĩnh Phúc
    ("TT Lâm Thao, H. Lâm Thao, Phú Thọ", "25", "08494"),  # Xã Lâm Thao
    ("Xã Bằng Luân, Huyện Đoan Hùng, Tỉnh Phú Thọ", "25", "07996"),  # Xã Bằng Luân
    ("Xóm Bái, Xã Nam Thượng, Huyện Kim Bôi, Tỉnh Hòa Bình", "25", "05068"),  # Xã Hợp Kim
    ("xa quang tien, tp hoa binh, tinh hoa binh", "25", "04897"),  # Xã Thịnh Minh
    # Yên Bái -> Lào Cai
    ("Xã Xuân Long, Huyện Yên Bình, Tỉnh Yên Bái", "15", "04726"),  # Xã Cảm Nhân
    ("Thôn 1, Xã Ngọc Chấn, H. Yên Bình, Yên Bái", "15", "04726"),  # Xã Cảm Nhân
    # Bắc Kạn -> Thái Nguyên (Cạn/Kạn spelling)
    ("Xã Nguyên Phúc, Huyện Bạch Thông, Tỉnh Bắc Cạn", "19", "02008"),  # Xã Cẩm Giàng
    ("Xã Nông Thượng, Thành phố Bắc Kạn, Bắc Kạn", "19", "01843"),  # Phường Bắc Kạn
    # Long An -> Tây Ninh
    ("Thị trấn Thạnh Hóa, Huyện Thạnh Hóa, Tỉnh Long An", "80", "27865"),  # Xã Thạnh Hóa
    ("P. Khánh Hậu, TP. Tân An, Long An", "80", "27715"),  # Phường Khánh Hậu
    # Tiền Giang -> Đồng Tháp
    ("Ấp Bình Hòa, Xã Bình Tân, Huyện Gò Công Tây, Tỉnh Tiền Giang", "82", "28687"),  # Long Bình
    ("Xa Tan Hoi, Thi xa Cai Lay, Tien Giang", "82", "28468"),  # Xã Tân Phú
    # Bến Tre -> Vĩnh Long
    ("Xã Hưng Nhượng, Huyện Giồng Trôm, Tỉnh Bến Tre", "86", "29044"),  # Xã Hưng Nhượng
    # Bình Định -> Gia Lai
    ("P. Hoài Thanh, TX. Hoài Nhơn, Bình Định", "52", "21664"),  # Phường Hoài Nhơn
    ("Thôn Quảng Tín, Xã Phước Quang, Huyện Tuy Phước, Tỉnh Bình Định", "52", "21964"),
    # Phú Yên -> Đắk Lắk
    ("Xã Sơn Thành Tây, Huyện Tây Hoà, Tỉnh Phú Yên", "66", "22250"),  # Xã Sơn Thành
    # Ninh Thuận -> Khánh Hòa
    ("Xã Tri Hải, Huyện Ninh Hải, Tỉnh Ninh Thuận", "56", "22852"),  # Xã Ninh Hải
    # Đắk Nông -> Lâm Đồng (Đắk/Đăk/Dak spellings)
    ("TT. Đắk Mil, H. Đắk Mil, Đắk Nông", "68", "24664"),  # Xã Đức Lập
    ("Xa Dak Plao, Huyen Dak Glong, Tinh Dak Nong", "68", "24631"),  # Xã Quảng Khê
    # Bình Phước -> Đồng Nai
    ("Ấp 4, Xã Đồng Tiến, Huyện Đồng Phú, Tỉnh Bình Phước", "75", "25390"),  # Xã Đồng Tâm
    # Sóc Trăng, Hậu Giang -> Cần Thơ
    ("Xã Thới An Hội, Huyện Kế Sách, Tỉnh Sóc Trăng", "92", "31540"),  # Xã Thới An Hội
    ("Phường Hiệp Lợi, Thành phố Ngã Bảy, Tỉnh Hậu Giang", "92", "31411"),  # Phường Đại Thành
    # Bạc Liêu -> Cà Mau
    ("Xã Vĩnh Trạch Đông, TP. Bạc Liêu, Bạc Liêu", "96", "31840"),  # Phường Hiệp Thành
    # Kiên Giang -> An Giang
    ("Xã Thổ Châu, Thành phố Phú Quốc, Tỉnh Kiên Giang", "91", "31105"),  # Đặc khu Thổ Châu
    # Thái Bình -> Hưng Yên
    ("Xã Thụy Duyên, Huyện Thái Thụy, Tỉnh Thái Bình", "33", "12904"),  # Xã Nam Thụy Anh
    # Quảng Bình -> Quảng Trị
    ("Xã An Thủy, Huyện Lệ Thủy, Tỉnh Quảng Bình", "44", "19249"),  # Xã Lệ Thủy
    # Gia Lai (KBang) and Trà Vinh
    ("Xã Lơ Ku, Huyện KBang, Tỉnh Gia Lai", "52", "23638"),  # Xã Kbang
    ("Thị trấn Trà Cú, Huyện Trà Cú, Tỉnh Trà Vinh", "86", "29461"),  # Xã Trà Cú
    # Hồ Chí Minh City, abbreviated and glued forms
    ("123 Nguyen Trai P2 Q5 TPHCM", "79", "27301"),  # Phường Chợ Quán
    ("12 Lê Lợi, Phường Bến Nghé, Quận 1, TP.HCM", "79", "26740"),  # Phường Sài Gòn
    # island district without communes -> special zone
    ("Huyện Côn Đảo, Tỉnh Bà Rịa - Vũng Tàu", "79", "26732"),  # Đặc khu Côn Đảo
]

# 2025 form: street, commune, province
NEW_STYLE = [
    ("Phường Sài Gòn, TP Hồ Chí Minh", "79", "26740"),
    ("12 Hàng Bài, Phường Hoàn Kiếm, Thành phố Hà Nội", "01", "00070"),
    ("Phường Ba Đình, Hà Nội", "01", "00004"),
    ("Thôn 5, Xã Sủng Máng, Tỉnh Tuyên Quang", "08", "00787"),
    ("Xã Hòa Hội, Thành phố Hồ Chí Minh", "79", "26641"),
    ("Phường Vũng Tàu, TP.HCM", "79", "26506"),
    ("Xã Lý Nhân, Tỉnh Ninh Bình", "37", "13573"),
    ("Phuong Dak Bla, Quang Ngai", "51", "23302"),
    ("Xã Cẩm Giàng, Tỉnh Thái Nguyên", "19", "02008"),
    ("Đặc khu Côn Đảo, TP. Hồ Chí Minh", "79", "26732"),
    ("Xã Văn Lăng, Thái Nguyên", "19", "05665"),  # differs from Xã Văn Lang only by a breve
]

# split former communes: (address, legacy commune code, expected candidate codes)
SPLITS = [
    (
        "Số 12 ngõ 34 Phố Huế, P. Phạm Đình Hổ, Q. Hai Bà Trưng, TP. Hà Nội",
        "00247",
        ["00082", "00256"],
    ),
    ("Phường Đông Hải 2, Quận Hải An, Hải Phòng", "11411", ["11411", "11413"]),
    ("Xã Quang Đức, Huyện Gia Lộc, Tỉnh Hải Dương", "11071", ["11050", "11065"]),
    ("Xã Vân Côn, Huyện Hoài Đức, Hà Nội", "09883", ["09871", "09877"]),
    ("88 Lũy Bán Bích, P. Tân Thới Hòa, Q. Tân Phú, TP HCM", "27040", ["27028", "27031"]),
    ("Xa Cong Hoa, Huyen Nam Sach, Hai Duong", "10639", ["10645", "10705", "10756"]),
    ("Phường Yên Hoà, Quận Cầu Giấy, Hà Nội", "00172", ["00166", "00175"]),
]


@pytest.mark.parametrize(("text", "province", "commune"), LEGACY)
def test_legacy_addresses_resolve_to_2025_units(text: str, province: str, commune: str) -> None:
    result, issues = standardize_address(text)
    assert result is not None
    assert (result["province_code"], result["commune_code"]) == (province, commune), result
    assert result["scheme_written"] == "pre2025"
    assert result["legacy_province_code"] is not None
    assert not result["ambiguous"]
    assert issues == []


def test_legacy_table_is_broad_enough() -> None:
    merged_provinces = {
        get_index().legacy_districts[r["legacy_district_code"]].parent_code
        for r in (standardize_address(t)[0] for t, _, _ in LEGACY)
        if r is not None and r["legacy_district_code"]
    }
    assert len(LEGACY) >= 45
    assert len(merged_provinces) >= 12


@pytest.mark.parametrize(("text", "province", "commune"), NEW_STYLE)
def test_2025_addresses(text: str, province: str, commune: str) -> None:
    result, issues = standardize_address(text)
    assert result is not None
    assert (result["province_code"], result["commune_code"]) == (province, commune), result
    assert result["scheme_written"] == "2025"
    assert result["legacy_commune_code"] is None
    assert result["legacy_district_code"] is None
    assert issues == []


@pytest.mark.parametrize(("text", "legacy", "candidates"), SPLITS)
def test_split_communes_are_ambiguous(text: str, legacy: str, candidates: list[str]) -> None:
    result, issues = standardize_address(text)
    assert result is not None
    assert result["legacy_commune_code"] == legacy
    assert result["ambiguous"] is True
    assert result["commune_code"] is None
    assert [c["commune_code"] for c in result["candidates"]] == candidates
    assert all(c["commune_name"] for c in result["candidates"])
    assert result["province_code"] is not None
    assert [(i.code, i.severity) for i in issues] == [("address_ambiguous", "warning")]


@pytest.mark.parametrize(
    "text",
    [
        "12 Lê Lợi, Phường Bến Nghé, Quận 1, Thành phố Hồ Chí Minh",
        "12 Le Loi, Phuong Ben Nghe, Quan 1, TP Ho Chi Minh",
        "12 LÊ LỢI,P.BẾN NGHÉ,Q.1,TP.HCM",
        "12 lê lợi   p ben nghe  q1   tp hcm",
        "12 Lê Lợi, Bến Nghé, Q1, Tp HCM",
        "12 Lê Lợi, F. Bến Nghé, Q. 1, Sài Gòn",
        "12 Lê Lợi, Phường Bến Nghé, Quận 01, TP. Hồ Chí Minh, Việt Nam",
        unicodedata.normalize("NFD", "12 Lê Lợi, Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh"),
    ],
)
def test_abbreviation_case_and_unicode_variants(text: str) -> None:
    result, issues = standardize_address(text)
    assert result is not None
    assert result["commune_code"] == "26740"
    assert result["legacy_commune_code"] == "26740"
    assert result["legacy_district_code"] == "760"
    assert result["street"] is not None and fold(result["street"]) == "12 le loi"
    assert issues == []


def test_tone_placement_variants_fold_equal() -> None:
    assert fold("Hoà Bình") == fold("Hòa Bình") == "hoa binh"
    assert fold("Thuỷ") == fold("Thủy")
    assert fold("Đắk Lắk") == fold("Dak Lak") == fold("Đắc Lắc")
    assert accent_key("Hoà") == accent_key("Hòa")
    assert accent_key("Văn Lang") != accent_key("Văn Lăng")
    a, _ = standardize_address("Xã Nam Thượng, Huyện Kim Bôi, Tỉnh Hoà Bình")
    b, _ = standardize_address("Xã Nam Thượng, Huyện Kim Bôi, Tỉnh Hòa Bình")
    assert a == b and a is not None and a["commune_code"] == "05068"


def test_hanoi_hn_and_hcm_aliases() -> None:
    r, _ = standardize_address("P. Trúc Bạch, Q. Ba Đình, HN")
    assert r is not None and r["legacy_commune_code"] == "00004"
    assert r["commune_code"] == "00004"  # same code, now Phường Ba Đình
    assert r["commune_name"] == "Phường Ba Đình"
    assert r["legacy_commune_name"] == "Phường Trúc Bạch"


def test_2025_commune_written_with_its_old_district() -> None:
    r, _ = standardize_address("Phường Bàn Cờ, Quận 3, TP HCM")
    assert r is not None and r["commune_code"] == "27154" and r["scheme_written"] == "2025"


def test_district_absorbed_before_2025_is_skipped() -> None:
    r, _ = standardize_address("Phường Thảo Điền, Quận 2, TP HCM")  # Quận 2 -> Thủ Đức, 2021
    assert r is not None and r["legacy_commune_code"] == "27088" and r["commune_code"] == "27094"


def test_missing_province_resolves_only_when_unique() -> None:
    r, _ = standardize_address("P. Bến Nghé, Q.1")
    assert r is not None and r["commune_code"] == "26740"
    r, _ = standardize_address("Phường 2, Quận 5")  # unique district name in the country
    assert r is not None and r["legacy_district_code"] == "774"


def test_unresolved_keeps_province() -> None:
    r, issues = standardize_address("Số 5, Xóm Chùa, Tỉnh Hà Giang")
    assert r is not None
    assert r["province_code"] == "08" and r["legacy_province_code"] == "02"
    assert r["commune_code"] is None
    assert [i.code for i in issues] == ["address_unresolved"]
    r, issues = standardize_address("Xã Không Có, Huyện Vị Xuyên, Hà Giang")
    assert r is not None and r["province_code"] == "08" and r["legacy_district_code"] == "030"
    assert [i.code for i in issues] == ["address_unresolved"]


def test_override_fills_package_gaps() -> None:
    r, issues = standardize_address("Xã Mỹ Hưng, Huyện Quảng Hòa, Tỉnh Cao Bằng")
    assert r is not None and r["commune_code"] == "01648" and issues == []
    r, _ = standardize_address("Phường 14, Quận Bình Thạnh, TP HCM")
    assert r is not None and r["commune_code"] == "26929"


def test_empty_and_non_text() -> None:
    assert standardize_address(None) == (None, [])
    assert standardize_address("   ") == (None, [])
    r, issues = standardize_address(123)  # type: ignore[arg-type]
    assert r is None and issues[0].code == "address_invalid"


def test_mapping_with_parts() -> None:
    r, _ = standardize_address(
        {"street": "Thôn 1", "ward": "Xã Tùng Bá", "district": "Vị Xuyên", "province": "Hà Giang"}
    )
    assert r is not None and r["commune_code"] == "00925" and r["street"] == "Thôn 1"


def test_result_is_a_fresh_copy() -> None:
    a, _ = standardize_address(SPLITS[0][0])
    assert a is not None
    a["candidates"].clear()
    a["province_code"] = "XX"
    b, _ = standardize_address(SPLITS[0][0])
    assert b is not None and b["province_code"] == "01" and len(b["candidates"]) == 2


ALL_TEXTS = [t for t, *_ in LEGACY + NEW_STYLE + SPLITS]


@pytest.mark.parametrize("text", ALL_TEXTS)
def test_idempotent_on_table(text: str) -> None:
    _check_idempotent(text)


def _check_idempotent(text: str) -> None:
    first, issues = standardize_address(text)
    if first is None:
        return
    again, issues_again = standardize_address(first)
    assert again == first
    assert issues_again == issues
    codes = ("province_code", "commune_code", "ambiguous")
    texts = [format_address(first)]
    if first["commune_name"]:  # the plain 2025 form, as a new system would write it
        texts.append(
            ", ".join(first[k] for k in ("street", "commune_name", "province_name") if first[k])
        )
    for text2 in texts:
        as_text, _ = standardize_address(text2)
        if as_text is None:
            assert first["province_code"] is None and first["commune_code"] is None
        else:
            assert {k: as_text[k] for k in codes} == {k: first[k] for k in codes}, text2


_PIECES = st.sampled_from(
    [
        "Phường",
        "P.",
        "Xã",
        "Quận",
        "Q.",
        "Huyện",
        "TP",
        "Tỉnh",
        "1",
        "12",
        "Bến Nghé",
        "Hà Nội",
        "HCM",
        "Hoàn Kiếm",
        "Tân An",
        "Hòa Bình",
        "Hà Giang",
        "Vị Xuyên",
        ",",
        " ",
        ".",
        "Đ",
        "đ",
        "\u0301",
        "Thị trấn",
        "TT",
        "Thành phố",
        "Quảng Nam",
        "Long An",
        "Phú Thọ",
    ]
)
_ADDRESSISH = st.lists(_PIECES, max_size=12).map(" ".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=80), _ADDRESSISH))
def test_never_raises_and_is_idempotent(text: str) -> None:
    _, issues = standardize_address(text)
    assert all(i.severity == "warning" for i in issues)
    assert not any(i.code == "address_error" for i in issues)
    _check_idempotent(text)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["province_code", "commune_code", "legacy_commune_code", "street", "ward", "province"]
        ),
        st.one_of(st.none(), st.text(max_size=8), st.integers()),
    )
)
def test_never_raises_on_mappings(value: dict[str, object]) -> None:
    _, issues = standardize_address(value)
    assert not any(i.code == "address_error" for i in issues)


# ---------------------------------------------------------------- reference data


def test_reference_data_is_consistent() -> None:
    assert audit() == {
        "legacy_communes_without_mapping": [],
        "crosswalk_sources_not_in_legacy_list": [],
        "crosswalk_targets_not_in_2025_list": [],
        "new_communes_without_source": [],
    }
    assert "vietnam-provinces" in dataset_version() and "overrides" in dataset_version()


def test_iterators_for_registry_tables() -> None:
    units = list(iter_units())
    by_scheme: dict[tuple[object, object], int] = {}
    for u in units:
        by_scheme[(u["scheme"], u["level"])] = by_scheme.get((u["scheme"], u["level"]), 0) + 1
        assert set(u) == {"scheme", "level", "code", "name", "type", "parent_code"}
    assert by_scheme[("2025", "province")] == 34
    assert by_scheme[("2025", "commune")] == 3321
    assert by_scheme[("pre2025", "province")] == 63
    keys = {(u["scheme"], u["level"], u["code"]) for u in units}
    rows = list(iter_crosswalk())
    assert all(("pre2025", "commune", r["old_commune_code"]) in keys for r in rows)
    assert all(("2025", "commune", r["new_commune_code"]) in keys for r in rows)
    split_sources = {r["old_commune_code"] for r in rows if r["split"]}
    assert 400 < len(split_sources) < 500
    assert {r["new_province_code"] for r in rows if r["old_commune_code"] == "27691"} == {"80"}


def test_every_legacy_province_maps_to_one_new_province() -> None:
    ix = get_index()
    assert len(ix.legacy_province_to_new) == 63
    assert set(ix.legacy_province_to_new.values()) == set(ix.provinces)
    assert ix.legacy_province_to_new["82"] == "82"  # package's own table says 80 and 82


def test_override_file_ships_in_the_package() -> None:
    from importlib import resources

    assert resources.files("mdm.standardize").joinpath("data", "admin_overrides.yaml").is_file()


@pytest.mark.parametrize("text", ["¹", "Số ², Phường 1, Quận 3, TP.HCM", "①, Hà Nội"])
def test_superscript_digits_do_not_break_the_reading(text: str) -> None:
    # "¹" passes str.isdigit() but int() cannot read it: once an address_error
    result, issues = standardize_address(text)
    assert not any(i.code == "address_error" for i in issues)
    compact, compact_issues = standardize_address_compact(text)
    assert compact_issues == issues
    assert result is not None
    assert compact == {k: v for k, v in result.items() if v is not None}
