"""Administrative units for the generator, all drawn from ``vietnam_provinces``.

The generator simulates former provinces that really merged on 1 July 2025, so
legacy exports carry real pre-2025 communes/districts and the national system
carries their real 2025 successors (first target of the official crosswalk; for
a split commune the true successor would depend on the street, which is the
ambiguity the registry must report, not something the generator can know).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

# Merged groups in the order the generator takes them: tight clusters first so
# that five provinces give people plenty of reasons to move between them.
_PREFERRED_NEW = [37, 79, 31, 33, 25, 92, 86, 48, 24, 75, 80, 91]


@dataclass(frozen=True, slots=True)
class LegacyWard:
    code: int
    name: str  # "Phường Vị Xuyên"
    kind: str  # "phường" | "xã" | "thị trấn"
    district: str  # "Thành phố Nam Định"
    district_kind: str
    province: str  # "Tỉnh Nam Định"
    new_ward: str  # 2025 successor, "Phường Nam Định"
    new_province: str  # "Tỉnh Ninh Bình"


@dataclass(frozen=True, slots=True)
class LegacyProvince:
    code: int  # pre-2025 statistics code (also the personal-ID prefix)
    name: str
    short: str  # "Nam Định"
    slug: str  # "nam-dinh"
    new_code: int
    new_name: str
    wards: tuple[LegacyWard, ...]


_PREFIX = re.compile(r"^(Tỉnh|Thành phố|Thành Phố)\s+")


def short_name(name: str) -> str:
    return _PREFIX.sub("", name)


@cache
def merged_provinces() -> list[int]:
    """Pre-2025 province codes that merged with another in 2025, in generator order."""
    from vietnam_provinces._province_conversion_2025 import NEW_TO_OLD, OLD_TO_NEW

    order = _PREFERRED_NEW + sorted(k for k in NEW_TO_OLD if k not in _PREFERRED_NEW)
    out: list[int] = []
    for new in order:
        entry = NEW_TO_OLD.get(new)
        if entry is None or len(entry.old_provinces) < 2:
            continue
        for old in entry.old_provinces:
            # The package's draft table lists a few stray wards under a second
            # province; keep only provinces that map wholly into this one.
            targets = {n.code for n in OLD_TO_NEW[old.code].new_provinces}
            if targets == {new} and old.code not in out:
                out.append(old.code)
    return out


@cache
def all_legacy_province_names() -> dict[int, str]:
    from vietnam_provinces.legacy import Province

    return {int(p.code): p.name for p in Province.iter_all()}


@cache
def load_province(code: int) -> LegacyProvince:
    from vietnam_provinces import Province as NewProvince
    from vietnam_provinces import ProvinceCode, WardCode
    from vietnam_provinces import Ward as NewWard
    from vietnam_provinces._province_conversion_2025 import OLD_TO_NEW as PROV_OLD_TO_NEW
    from vietnam_provinces._ward_conversion_2025 import OLD_TO_NEW
    from vietnam_provinces.legacy import District, Province, Ward
    from vietnam_provinces.legacy import ProvinceCode as LegacyProvinceCode

    legacy_code = LegacyProvinceCode(code)
    prov = Province.from_code(legacy_code)
    new_code = int(PROV_OLD_TO_NEW[code].new_provinces[0].code)
    new_prov = NewProvince.from_code(ProvinceCode(new_code))
    districts = {int(d.code): d for d in District.iter_by_province(legacy_code)}
    wards: list[LegacyWard] = []
    for w in sorted(Ward.iter_by_province(legacy_code), key=lambda w: int(w.code)):
        entry = OLD_TO_NEW.get(int(w.code))
        if entry is None:
            continue  # the draft crosswalk misses a few wards; do not invent a successor
        target = entry.new_wards[0]
        try:
            new_ward = NewWard.from_code(WardCode(target.code)).name
            new_province = NewProvince.from_code(ProvinceCode(target.province_code)).name
        except ValueError:
            continue
        d = districts[int(w.district_code)]
        wards.append(
            LegacyWard(
                code=int(w.code),
                name=w.name,
                kind=str(w.division_type.value),
                district=d.name,
                district_kind=str(d.division_type.value),
                province=prov.name,
                new_ward=new_ward,
                new_province=new_province,
            )
        )
    short = short_name(prov.name)
    slug = prov.codename.removeprefix("tinh_").removeprefix("thanh_pho_").replace("_", "-")
    return LegacyProvince(
        code=code,
        name=prov.name,
        short=short,
        slug=slug,
        new_code=new_code,
        new_name=new_prov.name,
        wards=tuple(wards),
    )


_WARD_ABBR = {"phường": "P.", "xã": "X.", "thị trấn": "TT."}
_DISTRICT_ABBR = {"quận": "Q.", "huyện": "H.", "thị xã": "TX.", "thành phố": "TP."}
_KIND_PREFIX = re.compile(r"^(Phường|Xã|Thị trấn|Quận|Huyện|Thị xã|Thành phố|Tỉnh)\s+")


def bare(name: str) -> str:
    return _KIND_PREFIX.sub("", name)


def legacy_unit_forms(w: LegacyWard) -> tuple[str, str, str]:
    """(full, abbreviated, bare) legacy "commune, district, province" strings."""
    full = f"{w.name}, {w.district}, {w.province}"
    prov_abbr = ("TP. " if w.province.startswith("Thành phố") else "") + short_name(w.province)
    abbr = (
        f"{_WARD_ABBR.get(w.kind, '')} {bare(w.name)}, "
        f"{_DISTRICT_ABBR.get(w.district_kind, '')} {bare(w.district)}, {prov_abbr}"
    )
    ward = bare(w.name)
    district = bare(w.district)
    # "Phường 1", "Quận 3": a bare number names nothing, so keep the kind.
    ward = w.name if ward.isdigit() else ward
    district = w.district if district.isdigit() else district
    plain = f"{ward}, {district}, {short_name(w.province)}"
    return full, abbr, plain


def new_unit_form(w: LegacyWard) -> str:
    return f"{w.new_ward}, {w.new_province}"
