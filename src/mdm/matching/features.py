"""Standardized record → flat feature row, the only input the matcher sees.

A feature row is a flat ``dict`` of scalars (``str``, ``int``, ``bool`` or ``None``)
whose keys are exactly :data:`FEATURE_COLUMNS` for the entity type, in that order.
Both the batch path (Splink on DuckDB) and the incremental scorer consume the same
rows, so every normalization that matters for matching happens here and only here:

* text is folded to lower-case ASCII (NFKD, combining marks removed, ``Đ`` → ``d``)
  so that string functions agree byte for byte between DuckDB and rapidfuzz and so
  that the tone-placement variants ``Hoà``/``Hòa`` are one value;
* empty strings become ``None``: Splink's null levels test ``IS NULL`` and DuckDB's
  ``jaro_winkler_similarity('', '')`` is 0 where rapidfuzz says 1;
* derived columns carry the domain knowledge the comparisons need: the surname
  *group* (``Hoàng``/``Huỳnh``, ``Vũ``/``Võ`` are similar-not-equal), the name without
  the common middle names ``Văn``/``Thị`` (dropped by some systems), the date split
  into parts with a precision flag (year-only dates, swapped day and month, the
  ``01/01/yyyy`` placeholder treated as a year-only date), and the 2025 and legacy
  commune codes kept apart (codes are reused across schemes and must never be
  compared across them).

The functions are pure and cheap (about 10 µs a record) so the store can compute
features while streaming rows, and can persist them instead of recomputing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date
from functools import lru_cache
from typing import Any, Final, Literal

from mdm.standardize.ids import id_region, personal_id_consistent, personal_id_province
from mdm.standardize.syllables import is_syllable, respace

EntityType = Literal["citizen", "organization", "dossier"]
ENTITY_TYPES: Final[tuple[EntityType, ...]] = ("citizen", "organization", "dossier")

FeatureValue = str | int | bool | None
FeatureRow = dict[str, FeatureValue]

#: Column name → DuckDB/Arrow logical type. ``unique_id`` and ``source_system`` first.
FEATURE_COLUMNS: Final[dict[str, dict[str, str]]] = {
    "citizen": {
        "unique_id": "VARCHAR",
        "source_system": "VARCHAR",
        "personal_id": "VARCHAR",
        "personal_id_doubtful": "BOOLEAN",
        "personal_id_sure": "VARCHAR",
        "old_id": "VARCHAR",
        "full_name_fold": "VARCHAR",
        "surname_fold": "VARCHAR",
        "middle_fold": "VARCHAR",
        "middle_core": "VARCHAR",
        "given_fold": "VARCHAR",
        "surname_group": "VARCHAR",
        "name_core": "VARCHAR",
        "name_variant": "VARCHAR",
        "given_known": "VARCHAR",
        "given_syllable": "VARCHAR",
        "given_marked": "VARCHAR",
        "dob": "VARCHAR",
        "dob_full": "VARCHAR",
        "birth_year": "INTEGER",
        "birth_month": "INTEGER",
        "birth_day": "INTEGER",
        "dob_is_partial": "BOOLEAN",
        "birth_md": "VARCHAR",
        "id_birth_year": "INTEGER",
        "birth_year_any": "INTEGER",
        "sex": "VARCHAR",
        "phone": "VARCHAR",
        "email": "VARCHAR",
        "province_code": "VARCHAR",
        "commune_code": "VARCHAR",
        "legacy_commune_code": "VARCHAR",
        "street_fold": "VARCHAR",
        "birth_province_code": "VARCHAR",
        "birth_province_any": "VARCHAR",
        "birth_province_legacy": "VARCHAR",
        "id_region": "VARCHAR",
        "ethnicity": "VARCHAR",
    },
    "organization": {
        "unique_id": "VARCHAR",
        "source_system": "VARCHAR",
        "tax_code": "VARCHAR",
        "tax_code_main": "VARCHAR",
        "is_branch": "BOOLEAN",
        "name_fold": "VARCHAR",
        "name_core": "VARCHAR",
        "name_en_fold": "VARCHAR",
        "short_name_fold": "VARCHAR",
        "legal_form": "VARCHAR",
        "province_code": "VARCHAR",
        "commune_code": "VARCHAR",
        "legacy_commune_code": "VARCHAR",
        "street_fold": "VARCHAR",
        "legal_representative_id": "VARCHAR",
        "founding_date": "VARCHAR",
        "founding_year": "INTEGER",
        "status": "VARCHAR",
    },
    "dossier": {
        "unique_id": "VARCHAR",
        "source_system": "VARCHAR",
        "dossier_code": "VARCHAR",
        "procedure_code": "VARCHAR",
        "applicant_id": "VARCHAR",
        "applicant_type": "VARCHAR",
        "receiving_agency_fold": "VARCHAR",
        "submitted_date": "VARCHAR",
        "submitted_day": "INTEGER",
        "decided_date": "VARCHAR",
        "status": "VARCHAR",
        "result_number": "VARCHAR",
    },
}

# --------------------------------------------------------------------------- text


def _local_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _resolve_fold() -> Callable[[str], str]:
    """Prefer the standardizers' fold when it exists, so both agree on edge cases."""
    try:
        from mdm.standardize.text import fold as shared_fold  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # the standardizers are being written in parallel
        return _local_fold
    return shared_fold  # type: ignore[no-any-return,unused-ignore]


_fold: Callable[[str], str] = _resolve_fold()


def _resolve_tones() -> Callable[[str], str]:
    """The standardizers' tone placement (``Hòa`` → ``Hoà``), else NFC only."""
    try:
        from mdm.standardize.text import canonical_tones
    except ImportError:  # pragma: no cover - the standardizers ship it
        return lambda text: unicodedata.normalize("NFC", text)
    return canonical_tones


_tones: Callable[[str], str] = _resolve_tones()
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def fold_text(value: object) -> str | None:
    """Lower-case ASCII, punctuation → single spaces; ``None`` for empty input."""
    if value is None:
        return None
    text = str(value)
    if not text.strip():
        return None
    folded = _NON_ALNUM.sub(" ", _fold(text).lower()).strip()
    return folded or None


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


# -------------------------------------------------------------------------- names

#: Regional spellings of one historical surname: similar, not equal (DOMAIN.md).
SURNAME_GROUPS: Final[dict[str, str]] = {"huynh": "hoang", "vo": "vu"}
#: Common Vietnamese given names, folded. Two records whose given names are two
#: *different* names of this list are two people (twins are named An and Anh, Loan
#: and Lan), not one person and a typo: ``given_known`` carries the given name only
#: when it is listed, so a guard can tell a sibling's name from a clerk's slip.
_COMMON_GIVEN_NAMES_TEXT: Final = """
    an anh bach bang bao bich binh cam canh chau chi chien chinh cuc cuong dai dan dang
    danh dao dat diem diep dieu dinh doan dong duc dung duong duy giang ha hai han hang
    hanh hao hau hien hieu hoa hoai hoan hoang hong hue hung huong huu huy huyen kha
    khang khanh khoa khoi khuong kien kim lam lan lang le lien linh loan loc loi long
    luan luong ly mai manh minh my nam nga ngan nghia ngoc nguyen nhan nhat nhi nhu
    nhung ninh oanh phat phong phu phuc phuong quan quang que quoc quy quyen quynh sang
    son tai tam tan thach thai thang thanh thao the thi thien thinh tho thoa thu thuan
    thuc thuong thuy tien tin toan trang tri trinh trung truong tu tuan tue tung tuong
    tuyen tuyet uyen van vi viet vinh vu vuong vy xuan yen
"""
COMMON_GIVEN_NAMES: Final[frozenset[str]] = frozenset(_COMMON_GIVEN_NAMES_TEXT.split())
#: Middle names that one system writes and another drops.
COMMON_MIDDLE_NAMES: Final[frozenset[str]] = frozenset({"van", "thi"})


#: Distinct values the per-value caches below keep. A national load repeats names,
#: birth dates and street names heavily (300,000 synthetic citizens hold 45,000
#: distinct full names, 34,000 birth dates and 49,000 streets), and a value's
#: features depend on the value alone, so each is computed once. The cached dicts
#: are shared: callers spread them into a new row and never change them.
_VALUE_CACHE: Final = 1 << 18


def _cached_for_text[T](fn: Callable[[object], T]) -> Callable[[object], T]:
    """``fn`` with its results for text arguments cached (``_VALUE_CACHE`` values);
    anything else (``None``, a number from a JSON source) is computed each time."""
    cached = lru_cache(maxsize=_VALUE_CACHE)(fn)

    def wrapper(value: object) -> T:
        return cached(value) if type(value) is str else fn(value)

    wrapper.__doc__ = fn.__doc__
    return wrapper


def _respaced(full_name: object) -> object:
    """The name with run-together syllables split and split ones joined, as the name
    standardizer does (:func:`mdm.standardize.syllables.respace`): a no-op on names it
    standardized, the same reading for one stored before it did (``Minhtrang``)."""
    if type(full_name) is not str:
        return full_name
    words = full_name.split()
    respaced, splits, joins = respace(words)
    return " ".join(respaced) if splits or joins else full_name


#: The features a citizen's name gives (all None without a usable name).
NAME_FEATURES: Final[tuple[str, ...]] = (
    "full_name_fold",
    "surname_fold",
    "middle_fold",
    "middle_core",
    "given_fold",
    "surname_group",
    "name_core",
    "name_variant",
    "given_known",
    "given_syllable",
    "given_marked",
)


@_cached_for_text
def _name_features(full_name: object) -> dict[str, FeatureValue]:
    full_name = _respaced(full_name)
    folded = fold_text(full_name)
    if folded is None:
        return dict.fromkeys(NAME_FEATURES)
    words = folded.split()
    surname = words[0]
    given = words[-1] if len(words) > 1 else None
    middle_words = words[1:-1]
    core_middle = [w for w in middle_words if w not in COMMON_MIDDLE_NAMES]
    group = SURNAME_GROUPS.get(surname, surname)
    core = " ".join([surname, *core_middle, *([given] if given else [])])
    variant = " ".join([group, *core_middle, *([given] if given else [])])
    return {
        "full_name_fold": folded,
        "surname_fold": surname,
        "middle_fold": " ".join(middle_words) or None,
        # without Văn/Thị, which some systems drop and which mark the sex
        "middle_core": " ".join(core_middle) or None,
        "given_fold": given,
        "surname_group": group,
        "name_core": core,
        "name_variant": variant,
        "given_known": given if given in COMMON_GIVEN_NAMES else None,
        # a given name that is a Vietnamese syllable (the closed inventory, not a
        # list of names): twins' names are; most typos (Ami, Onh, Lnih) are not
        "given_syllable": given if given and is_syllable(given) else None,
        "given_marked": _marked_given(full_name) if given else None,
    }


def _marked_given(full_name: object) -> str | None:
    """The given name with its tone marks (canonical placement, lower case), only when
    the record kept its diacritics: Hoa and Hòa are two names (twins get both), which
    folding makes one. ``None`` for names written without any mark."""
    text = unicodedata.normalize("NFC", str(full_name)).strip()
    if text.isascii():
        return None
    words = text.split()
    return _tones(words[-1].lower()) if len(words) > 1 else None


# -------------------------------------------------------------------------- dates

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def _date_parts(value: object) -> tuple[int | None, int | None, int | None]:
    text = _clean(value)
    if text is None:
        return None, None, None
    found = _DATE.match(text[:10])
    if found is None:
        return None, None, None
    year = int(found.group(1))
    month = int(found.group(2)) if found.group(2) else None
    day = int(found.group(3)) if found.group(3) else None
    return year, month, day


_NO_DOB: Final[dict[str, FeatureValue]] = {
    "dob": None,
    "dob_full": None,
    "birth_year": None,
    "birth_month": None,
    "birth_day": None,
    "dob_is_partial": None,
    "birth_md": None,
}
#: no date of birth, but a personal ID: the ID gives the year, so the date is partial
_NO_DOB_BUT_ID: Final[dict[str, FeatureValue]] = {**_NO_DOB, "dob_is_partial": True}


@_cached_for_text
def _dob_features(value: object) -> dict[str, FeatureValue]:
    year, month, day = _date_parts(value)
    if year is None:
        return _NO_DOB
    full = f"{year:04d}-{month:02d}-{day:02d}" if month and day else None
    # 01/01/yyyy is what several legacy systems wrote for "year only": keep the
    # full string (two such records do agree on it) but mark the parts unknown so
    # that it never contradicts a real date and never counts as a precise one.
    placeholder = month == 1 and day == 1
    return {
        "dob": full or (f"{year:04d}-{month:02d}" if month else f"{year:04d}"),
        "dob_full": full,
        "birth_year": year,
        "birth_month": None if placeholder else month,
        "birth_day": None if placeholder or full is None else day,
        "dob_is_partial": full is None or placeholder,
        # month and day as an unordered pair: a day/month swap is a clerk's slip,
        # not a different birth date (the same-ID rule compares this, not the parts)
        "birth_md": None
        if placeholder or full is None or month is None or day is None
        else f"{min(month, day):02d}-{max(month, day):02d}",
    }


def personal_id_birth_year(pid: str | None) -> int | None:
    """The birth year a 12-digit personal ID encodes: digit 4 is sex and century
    (0/1 → 1900s, 2/3 → 2000s, 4/5 → 2100s, …), digits 5–6 the year's last two."""
    if pid is None or len(pid) != 12 or not pid.isdigit():
        return None
    return 1900 + 100 * (int(pid[3]) // 2) + int(pid[4:6])


_EPOCH = date(1970, 1, 1).toordinal()


def _day_number(value: object) -> tuple[str | None, int | None]:
    year, month, day = _date_parts(value)
    if year is None or month is None or day is None:
        return None, None
    try:
        parsed = date(year, month, day)
    except ValueError:
        return None, None
    return parsed.isoformat(), parsed.toordinal() - _EPOCH


# ---------------------------------------------------------------------- addresses


def _address(value: object) -> dict[str, FeatureValue]:
    if not isinstance(value, Mapping):
        return {
            "province_code": None,
            "commune_code": None,
            "legacy_commune_code": None,
            "street_fold": None,
        }
    ambiguous = bool(value.get("ambiguous"))
    return {
        "province_code": _clean(value.get("province_code")),
        # an ambiguous (split) commune has no 2025 code; never guess one
        "commune_code": None if ambiguous else _clean(value.get("commune_code")),
        "legacy_commune_code": _clean(value.get("legacy_commune_code")),
        "street_fold": street_key(value.get("street")),
    }


#: Words for a rural hamlet; regions and clerks use them interchangeably for one place.
_HAMLET_WORDS: Final[frozenset[str]] = frozenset({"thon", "xom", "ap"})
#: Words a clerk may add between a house number and the street name.
_STREET_WORDS: Final[frozenset[str]] = frozenset({"duong", "pho"})


@_cached_for_text
def street_key(value: object) -> str | None:
    """The street part folded, without the words clerks add or drop:
    ``Số 36, đường Lạc Long Quân`` → ``36 lac long quan``; ``Xóm 9`` → ``thon 9``."""
    folded = fold_text(value)
    if folded is None:
        return None
    words = folded.split()
    if len(words) > 1 and words[0] == "so" and words[1][0].isdigit():
        words = words[1:]
    i = 0
    while i < len(words) and words[i][0].isdigit():
        i += 1
    if 0 < i < len(words) - 1 and words[i] in _STREET_WORDS:
        del words[i]
    if len(words) > 1 and words[0] in _HAMLET_WORDS:
        words[0] = "thon"
    return " ".join(words)


def _first_address(raw: Mapping[str, Any], *keys: str) -> object:
    for key in keys:
        value = raw.get(key)
        # (spelled out: a generator and an ABC check here were a tenth of a pass)
        if (type(value) is dict or isinstance(value, Mapping)) and (
            value.get("province_code")
            or value.get("commune_code")
            or value.get("legacy_commune_code")
        ):
            return value
    return None


# ------------------------------------------------------------------------ ids


def _digits(value: object, *lengths: int) -> str | None:
    text = _clean(value)
    if text is None or not text.isdigit() or len(text) not in lengths:
        return None
    return text


_TAX_CODE = re.compile(r"^(\d{10})(?:-(\d{3}))?$")


@lru_cache(maxsize=1)
def _new_province_of_legacy() -> dict[str, str]:
    """Pre-2025 province code (3 digits, as in the personal ID) → its 2025 province
    (2 digits, as standardized addresses hold it), from the unit index."""
    from mdm.standardize.units import get_index

    return {f"{int(old):03d}": new for old, new in get_index().legacy_province_to_new.items()}


def id_birth_province(personal_id: str | None) -> str | None:
    """The 2025 province of the province where the personal ID's birth was registered."""
    province = personal_id_province(personal_id)
    return None if province is None else _new_province_of_legacy().get(province)


def legacy_birth_province(place: object, personal_id: str | None) -> str | None:
    """The pre-2025 province of birth (2 digits, as addresses hold province codes).

    From the place of birth (or hometown) when its text names a pre-2025 province
    (``Nam Định``: the standardizer keeps its legacy code beside the 2025 one), or a
    province whose name survived the reform (``Ninh Bình``, read as the old Ninh
    Bình: a legacy system wrote it, and a 2025 system writing it for someone born
    in Nam Định only loses this level, not the 2025 one); else the province where
    the personal ID's birth was registered (its first three digits, pre-2025 codes).
    """
    if isinstance(place, Mapping):
        code = _clean(place.get("legacy_province_code")) or _clean(place.get("province_code"))
        if code is not None:
            return code
    province = personal_id_province(personal_id)
    return None if province is None else province[-2:]


# ---------------------------------------------------------------------- entities


def citizen_features(unique_id: str, source_system: str, std: Mapping[str, Any]) -> FeatureRow:
    """The row is built in ``FEATURE_COLUMNS`` order directly (no reordering copy).

    ``id_birth_year`` is the birth year the personal ID encodes; ``birth_year_any``
    the date's year, else the ID's. A record with no date of birth but an ID counts
    as a partial date. Likewise ``birth_province_any`` is the place of birth's (or
    hometown's) 2025 province, else the one the personal ID was registered in, and
    ``id_region`` the CMND region the identifiers name (:func:`~mdm.standardize.ids.id_region`).
    ``personal_id_doubtful``: the ID's sex/century/year digits contradict the record's
    own sex or date of birth (the standardizer's ``personal_id_inconsistent``): one of
    the two is wrong, so the ID keeps no cluster apart; ``personal_id_sure`` is the ID
    only when it is not in doubt, so that guards lift only on an ID that agrees with
    its own record (a relative's ID typed into a record often does not)."""
    pob = std.get("place_of_birth")
    if not isinstance(pob, Mapping) or not pob.get("province_code"):
        pob = std.get("hometown")
    personal_id = _digits(std.get("personal_id"), 12)
    dob = _dob_features(std.get("date_of_birth"))
    birth_year = dob["birth_year"]
    id_year = personal_id_birth_year(personal_id)
    if birth_year is None and id_year is not None:
        dob = _NO_DOB_BUT_ID
    email = _clean(std.get("email"))
    sex = _clean(std.get("sex"))
    old_id = _digits(std.get("old_id_number"), 9, 12)
    birth_province = _clean(pob.get("province_code")) if isinstance(pob, Mapping) else None
    doubtful = (
        None
        if personal_id is None
        else not personal_id_consistent(personal_id, std.get("date_of_birth"), sex)
    )
    return {
        "unique_id": unique_id,
        "source_system": source_system,
        "personal_id": personal_id,
        "personal_id_doubtful": doubtful,
        "personal_id_sure": personal_id if doubtful is False else None,
        "old_id": old_id,
        **_name_features(std.get("full_name")),
        **dob,
        "id_birth_year": id_year,
        "birth_year_any": birth_year if birth_year is not None else id_year,
        "sex": sex,
        "phone": _clean(std.get("phone")),
        "email": email.lower() if email else None,
        **_address(_first_address(std, "permanent_address", "current_address")),
        "birth_province_code": birth_province,
        "birth_province_any": birth_province or id_birth_province(personal_id),
        "birth_province_legacy": legacy_birth_province(pob, personal_id),
        "id_region": id_region(personal_id, old_id),
        "ethnicity": _clean(std.get("ethnicity")),
    }


_LEGAL_FORM_WORDS: Final[tuple[str, ...]] = (
    "cong ty trach nhiem huu han mot thanh vien",
    "cong ty trach nhiem huu han hai thanh vien tro len",
    "cong ty trach nhiem huu han",
    "cong ty co phan",
    "cong ty tnhh mtv",
    "cong ty tnhh",
    "cong ty cp",
    "doanh nghiep tu nhan",
    "cong ty hop danh",
    "hop tac xa",
    "chi nhanh",
    "cong ty",
    "tnhh",
    "mtv",
    "jsc",
    "co ltd",
    "ltd",
)
_LEGAL_FORM_RE = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in _LEGAL_FORM_WORDS) + r")\b")


def organization_features(unique_id: str, source_system: str, std: Mapping[str, Any]) -> FeatureRow:
    tax = _clean(std.get("tax_code"))
    found = _TAX_CODE.match(tax) if tax else None
    name = fold_text(std.get("name"))
    core = " ".join(_LEGAL_FORM_RE.sub(" ", name).split()) or None if name else None
    founded, _ = _day_number(std.get("founding_date"))
    year, _m, _d = _date_parts(std.get("founding_date"))
    return {
        "unique_id": unique_id,
        "source_system": source_system,
        "tax_code": found.group(0) if found else None,
        "tax_code_main": found.group(1) if found else None,
        "is_branch": bool(found.group(2)) if found else None,
        "name_fold": name,
        "name_core": core,
        "name_en_fold": fold_text(std.get("name_en")),
        "short_name_fold": fold_text(std.get("short_name")),
        "legal_form": _clean(std.get("legal_form")),
        **_address(std.get("address")),
        "legal_representative_id": _digits(std.get("legal_representative_id"), 9, 12),
        "founding_date": founded,
        "founding_year": year,
        "status": _clean(std.get("status")),
    }


def dossier_features(unique_id: str, source_system: str, std: Mapping[str, Any]) -> FeatureRow:
    submitted, submitted_day = _day_number(std.get("submitted_at"))
    decided, _ = _day_number(std.get("decided_at"))
    code = _clean(std.get("dossier_code"))
    result = _clean(std.get("result_number"))
    return {
        "unique_id": unique_id,
        "source_system": source_system,
        "dossier_code": code.upper() if code else None,
        "procedure_code": _clean(std.get("procedure_code")),
        "applicant_id": _clean(std.get("applicant_id")),
        "applicant_type": _clean(std.get("applicant_type")),
        "receiving_agency_fold": fold_text(std.get("receiving_agency")),
        "submitted_date": submitted,
        "submitted_day": submitted_day,
        "decided_date": decided,
        "status": _clean(std.get("status")),
        "result_number": result.upper() if result else None,
    }


_BUILDERS: Final[dict[str, Callable[[str, str, Mapping[str, Any]], FeatureRow]]] = {
    "citizen": citizen_features,
    "organization": organization_features,
    "dossier": dossier_features,
}


def build_features(
    entity_type: str, unique_id: str, source_system: str, standardized: Mapping[str, Any]
) -> FeatureRow:
    """Feature row for one standardized record; keys are ``FEATURE_COLUMNS[entity_type]``."""
    try:
        builder = _BUILDERS[entity_type]
    except KeyError:
        raise ValueError(f"unknown entity type {entity_type!r}") from None
    return builder(unique_id, source_system, standardized)
