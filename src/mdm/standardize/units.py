"""Administrative-unit reference data: legacy (pre-2025) and 2025 units, and the crosswalk.

The source is ``vietnam-provinces`` (official codes for both schemes, an old-to-new commune
table keyed by code), corrected by the reviewed ``data/admin_overrides.yaml``. Everything is
built once, lazily, into an immutable in-memory :class:`UnitIndex`; the registry loads the same
rows into its own versioned tables through :func:`iter_units` and :func:`iter_crosswalk`, tagged
with :func:`dataset_version`.

Codes are reused with new meanings after 2025 (``00004`` was Phường Trúc Bạch, is now Phường Ba
Đình), so every code here travels with its scheme; never compare codes across schemes.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml

Scheme = Literal["pre2025", "2025"]
Level = Literal["province", "district", "commune"]

_OVERRIDES_FILE = "admin_overrides.yaml"

# Unit-type words that prefix official names; two-word types first.
_TYPE_PREFIXES = (
    "Thành phố",
    "Thị trấn",
    "Thị xã",
    "Đặc khu",
    "Phường",
    "Huyện",
    "Quận",
    "Tỉnh",
    "Xã",
)

# Spelling variants that denote the same syllable (old vs new orthography, c/k in highland
# names). Applied to both index keys and input, so they only ever merge equal names.
WORD_EQUIV = {
    "qui": "quy",
    "ki": "ky",
    "li": "ly",
    "mi": "my",
    "ti": "ty",
    "si": "sy",
    "hi": "hy",
    "dac": "dak",
    "lac": "lak",
    "can": "kan",
}


def _build_fold_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for cp in range(0x00C0, 0x1EFF + 1):
        ch = chr(cp)
        base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
        base = base.lower()
        if base != ch:
            table[cp] = base
    for cp in range(0x0300, 0x0370):  # stray combining marks (NFD input)
        table[cp] = None
    # Đ/đ have no decomposition; Ɖ (U+0189) is a common look-alike in legacy encodings.
    table[ord("Đ")] = "d"
    table[ord("đ")] = "d"
    table[ord("Ɖ")] = "d"
    table[ord("'")] = None  # Đạ M'ri, Ia H'Drai: written with and without the apostrophe
    table[ord("’")] = None
    for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        table[ord(ch)] = ch.lower()
    return table


FOLD_TABLE = _build_fold_table()


def fold_word(word: str) -> str:
    """Diacritic- and case-free form of one word, with orthographic variants unified.

    ``Hoà``/``Hòa`` and ``Thuỷ``/``Thủy`` fold equal because all tone marks are dropped.
    """
    w = word.translate(FOLD_TABLE)
    if w.isdecimal():  # not isdigit: "¹" is a digit that int() cannot read
        return str(int(w))  # "Phường 02" is "Phường 2"
    return WORD_EQUIV.get(w, w)


def fold(text: str) -> str:
    """Fold a whole name: words folded and joined by single spaces; punctuation dropped."""
    cleaned = text
    for ch in "-–.,;/()":
        cleaned = cleaned.replace(ch, " ")
    return " ".join(fold_word(w) for w in cleaned.split())


_TONES = {"\u0300": "2", "\u0301": "1", "\u0303": "4", "\u0309": "3", "\u0323": "5"}


def accent_key(text: str) -> str:
    """Key that keeps vowel quality and tone but not where the tone mark sits.

    Used only to split names that fold equal yet differ (``Văn Lang``/``Văn Lăng``,
    ``Cẩm Giang``/``Cẩm Giàng``); ``Hoà`` and ``Hòa`` still get the same key.
    """
    out: list[str] = []
    for word in unicodedata.normalize("NFD", text.lower()).split():
        tone = ""
        chars: list[str] = []
        for c in word:
            if c in _TONES:
                tone = _TONES[c]
            elif c not in "'’-.":
                chars.append(c)
        out.append("".join(chars) + tone)
    return " ".join(out)


def split_type(name: str) -> tuple[str, str]:
    """Split an official name into (type prefix, bare name); type is '' when absent."""
    for prefix in _TYPE_PREFIXES:
        if name.startswith(prefix + " "):
            return prefix.lower(), name[len(prefix) + 1 :]
    return "", name


@dataclass(frozen=True, slots=True)
class Unit:
    scheme: Scheme
    level: Level
    code: str
    name: str
    type: str
    parent_code: str | None
    key: str  # folded bare name: the exact-match key
    akey: str  # accent key of the bare name: tie-breaker only

    def as_row(self) -> dict[str, str | None]:
        return {
            "scheme": self.scheme,
            "level": self.level,
            "code": self.code,
            "name": self.name,
            "type": self.type,
            "parent_code": self.parent_code,
        }


NameIndex = dict[str, tuple[Unit, ...]]


@dataclass(slots=True)
class UnitIndex:
    """Everything the address standardizer looks up; built once by :func:`get_index`."""

    version: str
    legacy_provinces: dict[str, Unit] = field(default_factory=dict)
    legacy_districts: dict[str, Unit] = field(default_factory=dict)
    legacy_communes: dict[str, Unit] = field(default_factory=dict)
    provinces: dict[str, Unit] = field(default_factory=dict)
    communes: dict[str, Unit] = field(default_factory=dict)
    # old commune code -> new commune codes (len > 1: split among several new communes)
    crosswalk: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # legacy district without communes (islands) -> its one new commune
    district_to_commune: dict[str, str] = field(default_factory=dict)
    legacy_province_to_new: dict[str, str] = field(default_factory=dict)
    new_province_sources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # exact-name indexes (folded bare name -> units), scoped by parent
    legacy_districts_by_province: dict[str, NameIndex] = field(default_factory=dict)
    legacy_communes_by_district: dict[str, NameIndex] = field(default_factory=dict)
    legacy_communes_by_province: dict[str, NameIndex] = field(default_factory=dict)
    communes_by_province: dict[str, NameIndex] = field(default_factory=dict)
    legacy_districts_all: NameIndex = field(default_factory=dict)
    communes_all: NameIndex = field(default_factory=dict)
    # folded province name or alias -> (legacy province code | None, new province code | None)
    province_keys: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    unmapped: frozenset[str] = frozenset()


def _add(index: dict[str, NameIndex], scope: str, unit: Unit) -> None:
    bucket = index.setdefault(scope, {})
    bucket[unit.key] = (*bucket.get(unit.key, ()), unit)


def _unit(
    scheme: Scheme, level: Level, code: str, name: str, type_: str, parent: str | None
) -> Unit:
    _, bare = split_type(name)
    return Unit(scheme, level, code, name, type_, parent, fold(bare), accent_key(bare))


def _load_overrides() -> tuple[dict[str, Any], str]:
    raw = resources.files("mdm.standardize").joinpath("data", _OVERRIDES_FILE).read_bytes()
    data = yaml.safe_load(raw) or {}
    return data, hashlib.sha256(raw).hexdigest()[:12]


# Informal province names seen in legacy data, keyed to the official name they mean.
_PROVINCE_ALIASES = {
    "hcm": "Thành phố Hồ Chí Minh",
    "tphcm": "Thành phố Hồ Chí Minh",
    "hochiminh": "Thành phố Hồ Chí Minh",
    "sai gon": "Thành phố Hồ Chí Minh",
    "saigon": "Thành phố Hồ Chí Minh",
    "hn": "Thành phố Hà Nội",
    "hanoi": "Thành phố Hà Nội",
    "tphn": "Thành phố Hà Nội",
    "hp": "Thành phố Hải Phòng",
    "thua thien hue": "Thành phố Huế",
    "tt hue": "Thành phố Huế",
    "brvt": "Tỉnh Bà Rịa - Vũng Tàu",
    "br vt": "Tỉnh Bà Rịa - Vũng Tàu",
    "ba ria": "Tỉnh Bà Rịa - Vũng Tàu",
    "daklak": "Tỉnh Đắk Lắk",
    "daknong": "Tỉnh Đắk Nông",
    "kontum": "Tỉnh Kon Tum",
}


def _build() -> UnitIndex:
    import vietnam_provinces
    from vietnam_provinces._lookup import PROVINCE_MAPPING as NEW_P
    from vietnam_provinces._lookup import WARD_MAPPING as NEW_W
    from vietnam_provinces._ward_conversion_2025 import OLD_TO_NEW
    from vietnam_provinces.legacy._lookup import DISTRICT_MAPPING as OLD_D
    from vietnam_provinces.legacy._lookup import PROVINCE_MAPPING as OLD_P
    from vietnam_provinces.legacy._lookup import WARD_MAPPING as OLD_W

    overrides, digest = _load_overrides()
    version = (
        f"vietnam-provinces {vietnam_provinces.__version__}"
        f" (data {vietnam_provinces.__data_version__}); overrides {digest}"
    )
    ix = UnitIndex(version=version)

    for p in OLD_P.values():
        code = f"{int(p.code):02d}"
        ix.legacy_provinces[code] = _unit(
            "pre2025", "province", code, p.name, p.division_type.value, None
        )
    for d in OLD_D.values():
        code, parent = f"{int(d.code):03d}", f"{int(d.province_code):02d}"
        ix.legacy_districts[code] = _unit(
            "pre2025", "district", code, d.name, d.division_type.value, parent
        )
    for w in OLD_W.values():
        code, parent = f"{int(w.code):05d}", f"{int(w.district_code):03d}"
        ix.legacy_communes[code] = _unit(
            "pre2025", "commune", code, w.name, w.division_type.value, parent
        )
    for extra in overrides.get("legacy_communes", []):
        code = str(extra["code"])
        ix.legacy_communes[code] = _unit(
            "pre2025", "commune", code, extra["name"], extra["type"], str(extra["district"])
        )
    for np in NEW_P.values():
        code = f"{int(np.code):02d}"
        ix.provinces[code] = _unit("2025", "province", code, np.name, np.division_type.value, None)
    for nw in NEW_W.values():
        code, parent = f"{int(nw.code):05d}", f"{int(nw.province_code):02d}"
        ix.communes[code] = _unit("2025", "commune", code, nw.name, nw.division_type.value, parent)

    for old_code, entry in OLD_TO_NEW.items():
        ix.crosswalk[f"{old_code:05d}"] = tuple(f"{t.code:05d}" for t in entry.new_wards)
    for row in overrides.get("crosswalk", []):
        old_key = str(row["old"])
        if "same_as" in row:
            ix.crosswalk[old_key] = ix.crosswalk[str(row["same_as"])]
        else:
            ix.crosswalk[old_key] = tuple(str(c) for c in row["new"])
    for row in overrides.get("districts_to_commune", []):
        ix.district_to_commune[str(row["district"])] = str(row["commune"])
    ix.unmapped = frozenset(str(r["old"]) for r in overrides.get("unmapped", []))

    # Old province -> new province from the unit lists' hierarchy, not the crosswalk's own
    # province column (which has wrong rows, see the override file).
    votes: dict[str, set[str]] = {}
    for old_key, targets in ix.crosswalk.items():
        commune = ix.legacy_communes.get(old_key)
        if commune is None or commune.parent_code is None:
            continue
        lp = ix.legacy_districts[commune.parent_code].parent_code
        assert lp is not None
        for t in targets:
            votes.setdefault(lp, set()).add(ix.communes[t].parent_code or "")
    for lp, news in votes.items():
        if len(news) != 1:
            raise ValueError(f"legacy province {lp} maps to several new provinces: {sorted(news)}")
        ix.legacy_province_to_new[lp] = next(iter(news))
    sources: dict[str, list[str]] = {}
    for lp, new in sorted(ix.legacy_province_to_new.items()):
        sources.setdefault(new, []).append(lp)
    for new, lps in sources.items():
        # the same-named legacy province first: it is the likeliest reading of the name
        same = [lp for lp in lps if ix.legacy_provinces[lp].key == ix.provinces[new].key]
        ix.new_province_sources[new] = tuple(same + [lp for lp in lps if lp not in same])

    for du in ix.legacy_districts.values():
        assert du.parent_code is not None
        _add(ix.legacy_districts_by_province, du.parent_code, du)
        ix.legacy_districts_all[du.key] = (*ix.legacy_districts_all.get(du.key, ()), du)
    for c in ix.legacy_communes.values():
        assert c.parent_code is not None
        _add(ix.legacy_communes_by_district, c.parent_code, c)
        lp = ix.legacy_districts[c.parent_code].parent_code
        assert lp is not None
        _add(ix.legacy_communes_by_province, lp, c)
    for c in ix.communes.values():
        assert c.parent_code is not None
        _add(ix.communes_by_province, c.parent_code, c)
        ix.communes_all[c.key] = (*ix.communes_all.get(c.key, ()), c)

    keys: dict[str, tuple[str | None, str | None]] = {}
    for code, pu in ix.legacy_provinces.items():
        keys[pu.key] = (code, keys.get(pu.key, (None, None))[1])
    for code, pu in ix.provinces.items():
        keys[pu.key] = (keys.get(pu.key, (None, None))[0], code)
    by_name = {u.name: u.key for u in (*ix.legacy_provinces.values(), *ix.provinces.values())}
    for alias, official in _PROVINCE_ALIASES.items():
        keys[fold(alias)] = keys[by_name[official]]
    ix.province_keys = keys
    return ix


@cache
def get_index() -> UnitIndex:
    """The process-wide index. First call loads the package data (about a second)."""
    return _build()


def dataset_version() -> str:
    """Identifies the reference data: package version and a hash of the override file.

    Store it beside every standardized address and every loaded unit table, so a later
    change to either source is visible and re-standardization can be targeted.
    """
    return get_index().version


def iter_units() -> Iterator[dict[str, str | None]]:
    """Every unit of both schemes, parents before children, for the registry's unit table."""
    ix = get_index()
    for group in (
        ix.legacy_provinces,
        ix.legacy_districts,
        ix.legacy_communes,
        ix.provinces,
        ix.communes,
    ):
        for code in sorted(group):
            yield group[code].as_row()


def iter_crosswalk() -> Iterator[dict[str, str | bool]]:
    """One row per (old commune, new commune) pair; ``split`` marks old communes with 2+ targets.

    Legacy island districts without communes are not commune rows and are not listed here;
    see ``UnitIndex.district_to_commune``.
    """
    ix = get_index()
    for old in sorted(ix.crosswalk):
        targets = ix.crosswalk[old]
        for new in targets:
            yield {
                "old_commune_code": old,
                "new_commune_code": new,
                "new_province_code": ix.communes[new].parent_code or "",
                "split": len(targets) > 1,
            }


def audit() -> dict[str, list[str]]:
    """Consistency problems left in the corrected data; empty lists mean a clean load.

    This is how the override file's entries were found; a test keeps it clean.
    """
    ix = get_index()
    missing = [
        c for c in sorted(ix.legacy_communes) if c not in ix.crosswalk and c not in ix.unmapped
    ]
    orphan_sources = [c for c in sorted(ix.crosswalk) if c not in ix.legacy_communes]
    bad_targets = sorted({t for ts in ix.crosswalk.values() for t in ts if t not in ix.communes})
    sourceless = sorted(
        set(ix.communes)
        - {t for ts in ix.crosswalk.values() for t in ts}
        - set(ix.district_to_commune.values())
    )
    return {
        "legacy_communes_without_mapping": missing,
        "crosswalk_sources_not_in_legacy_list": orphan_sources,
        "crosswalk_targets_not_in_2025_list": bad_targets,
        "new_communes_without_source": sourceless,
    }
