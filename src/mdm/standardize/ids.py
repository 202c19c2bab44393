"""Identifiers: the 12-digit personal ID, the old CMND, and enterprise tax codes.

Personal identification number (số định danh cá nhân, Decree 137/2015/NĐ-CP,
Circular 59/2021/TT-BCA): 12 digits, no check digit.

* digits 1-3: the **pre-2025** province code (zero-padded statistics code) where
  the birth was registered. The list is taken from ``vietnam_provinces.legacy``
  (the official pre-2025 codes), not typed by hand. The ID never changes, so its
  prefix keeps naming a pre-2025 province after the 2025 merger.
* digit 4: sex and century: 0/1 = male/female born 1900-1999, 2/3 = 2000-2099,
  4/5 = 2100-2199, 6/7 = 2200-2299, 8/9 = 2300-2399 (even = male).
* digits 5-6: last two digits of the birth year; digits 7-12: random.

A disagreement with the record's date of birth or sex is a **warning**
(``personal_id_inconsistent``): one of the two values is wrong but nothing says
which, and the record stays useful.

Old identity card (CMND): 9 digits (the 12-digit CMND issued 2012-2016 follows the
personal-ID layout). Nothing links a CMND arithmetically to the later 12-digit ID,
but both name a place: the CMND's first two digits the police office of the
province that issued it (several provinces share one prefix), the personal ID's
first three the province where the birth was registered. Most people got their
CMND where they were born, so the two agree for most people and for few pairs of
strangers: :func:`id_region` puts both on one scale for the matcher.

Tax code (mã số thuế = enterprise code): 10 digits, the 10th a check digit over
the first nine (weights 31, 29, 23, 19, 17, 13, 7, 5, 3; check = 10 - (Σ mod 11);
a prefix giving 10 is never issued); dependent units add ``-NNN``
(``0101234567-001``). Standard form: digits, with the dash before a branch suffix.
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache

from mdm.standardize.issues import Issue, warning

__all__ = [
    "CMND_REGIONS",
    "LEGACY_PROVINCE_CODES",
    "cmnd_region_of_province",
    "id_region",
    "personal_id_birth_century",
    "personal_id_consistent",
    "personal_id_province",
    "personal_id_sex",
    "standardize_old_id",
    "standardize_personal_id",
    "standardize_tax_code",
    "tax_code_check_digit",
    "tax_code_valid",
]

_NON_DIGIT_SEP = re.compile(r"[\s.\-_/]")


def _legacy_province_codes() -> frozenset[str]:
    from vietnam_provinces.legacy.codes import ProvinceCode

    return frozenset(f"{int(code):03d}" for code in ProvinceCode)


LEGACY_PROVINCE_CODES: frozenset[str] = _legacy_province_codes()
"""The 63 pre-2025 province codes, 3-digit zero-padded as in the personal ID."""

#: CMND prefix (first two digits, the issuing province's police office) → the
#: pre-2025 province codes it served, as the prefix list is commonly published
#: (several provinces share one office's range; Hà Tây's former 11 is not listed:
#: it joined Hà Nội in 2008 and its people's later IDs say 001). Not an official
#: table: verify against the Ministry of Public Security's before relying on one
#: region. A wrong entry costs only evidence (the matcher learns how often the
#: regions of one person's two numbers differ), never a decision.
CMND_REGIONS: dict[str, tuple[int, ...]] = {
    "01": (1,),
    "02": (79,),
    "03": (31,),
    "04": (11, 12),
    "05": (14,),
    "06": (10, 15),
    "07": (2, 8),
    "08": (4, 20),
    "09": (6, 19),
    "10": (22,),
    "11": (17,),
    "12": (24, 27),
    "13": (25, 26),
    "14": (30, 33),
    "15": (34,),
    "16": (35, 36, 37),
    "17": (38,),
    "18": (40, 42),
    "19": (44, 45, 46),
    "20": (48, 49),
    "21": (51, 52),
    "22": (54, 56),
    "23": (62, 64),
    "24": (66, 67),
    "25": (68,),
    "26": (58, 60),
    "27": (75, 77),
    "28": (70, 74),
    "29": (72,),
    "30": (80,),
    "31": (82,),
    "32": (83,),
    "33": (84, 86),
    "34": (87,),
    "35": (89,),
    "36": (92, 93, 94),
    "37": (91,),
    "38": (95, 96),
}
_REGION_OF_PROVINCE: dict[str, str] = {
    f"{code:03d}": prefix for prefix, codes in CMND_REGIONS.items() for code in codes
}


def cmnd_region_of_province(province: str) -> str | None:
    """The CMND prefix of a pre-2025 province (code zero-padded to 3 digits)."""
    return _REGION_OF_PROVINCE.get(province)


def personal_id_province(pid: str | None) -> str | None:
    """The pre-2025 province code (3 digits) a 12-digit personal ID starts with, if
    it is one."""
    if pid is None or len(pid) != 12:
        return None
    code = pid[:3]
    return code if code in LEGACY_PROVINCE_CODES else None


def id_region(personal_id: str | None, old_id: str | None) -> str | None:
    """The CMND region (see :data:`CMND_REGIONS`) a record's identifiers name: the
    9-digit CMND's issuing office, else the province of birth registration of the
    personal ID (or of a 12-digit old card, which has its layout). ``None`` when
    neither names a known region.

    A record with both numbers is compared by each with records holding the same
    kind; the region adds the cross comparison with records holding only the other.
    Which of the two comes first hardly matters: in 1M synthetic citizens, pairs of
    one person whose regions are both known disagree 6,230 times in 140,747 (4.4%)
    this way, 6,195 times the other way round."""
    if old_id is not None and len(old_id) == 9 and old_id[:2] in CMND_REGIONS:
        return old_id[:2]
    province = personal_id_province(personal_id)
    if province is None and old_id is not None and len(old_id) == 12:
        province = personal_id_province(old_id)
    return None if province is None else _REGION_OF_PROVINCE.get(province)


_TAX_WEIGHTS = (31, 29, 23, 19, 17, 13, 7, 5, 3)


def _digits_only(value: str) -> str:
    return _NON_DIGIT_SEP.sub("", value)


def personal_id_sex(pid: str) -> str | None:
    """``"male"``/``"female"`` encoded in digit 4 of a 12-digit ID, else ``None``."""
    if len(pid) != 12 or not pid.isdecimal():
        return None
    return "male" if int(pid[3]) % 2 == 0 else "female"


def personal_id_birth_century(pid: str) -> int | None:
    """First year of the birth century encoded in digit 4 (1900, 2000, ...)."""
    if len(pid) != 12 or not pid.isdecimal():
        return None
    return 1900 + 100 * (int(pid[3]) // 2)


def personal_id_birth_year(pid: str) -> int | None:
    century = personal_id_birth_century(pid)
    return None if century is None else century + int(pid[4:6])


def personal_id_consistent(pid: str, dob: str | date | None, sex: str | None) -> bool:
    """True unless the ID's sex/century/year digits contradict ``dob`` or ``sex``.

    ``dob`` may be a standardized date string (``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``)
    or a ``date``; ``sex`` is ``"male"``/``"female"``. Missing values cannot
    contradict anything.
    """
    # personal_id_birth_year and personal_id_sex, inlined: this runs once per citizen.
    if len(pid) != 12 or not pid.isdecimal():
        return True
    digit = int(pid[3])
    year = 1900 + 100 * (digit // 2) + int(pid[4:6])
    if sex in ("male", "female") and ("male" if digit % 2 == 0 else "female") != sex:
        return False
    if dob is None:
        return True
    dob_year = dob.year if isinstance(dob, date) else _year_of(dob)
    return dob_year is None or dob_year == year


def _year_of(value: str) -> int | None:
    head = value[:4]
    return int(head) if len(head) == 4 and head.isdigit() else None


@lru_cache(maxsize=65536)
def _personal_id(raw: str) -> tuple[str | None, str | None, tuple[Issue, ...]]:
    """(personal_id, old_id_moved, issues) for one raw value."""
    f = "personal_id"
    digits = _digits_only(raw)
    if not digits.isdecimal():  # not isdigit: "²" is a digit, but no ID digit (int() fails)
        return None, None, (warning(f, "personal_id_invalid", "personal ID is not all digits"),)
    if len(digits) == 9:
        return (
            None,
            digits,
            (warning(f, "personal_id_is_cmnd", "9-digit old CMND given as personal ID; moved"),),
        )
    if len(digits) == 11 and f"0{digits}"[:3] in LEGACY_PROVINCE_CODES:
        # A spreadsheet dropped the leading zero.
        digits = f"0{digits}"
        note: tuple[Issue, ...] = (warning(f, "personal_id_leading_zero", "leading zero restored"),)
    elif len(digits) != 12:
        return None, None, (warning(f, "personal_id_invalid", "personal ID must have 12 digits"),)
    else:
        note = ()
    if digits[:3] not in LEGACY_PROVINCE_CODES:
        return (
            None,
            None,
            (
                *note,
                warning(f, "personal_id_invalid", f"{digits[:3]} is not a pre-2025 province code"),
            ),
        )
    return digits, None, note


def standardize_personal_id(value: object) -> tuple[str | None, str | None, list[Issue]]:
    """Return ``(personal_id, moved_old_id, issues)``.

    An invalid value is dropped with a ``personal_id_invalid`` warning (the raw value
    survives in the source record). A 9-digit value is an old CMND typed in the wrong
    column: it is returned as ``moved_old_id`` for the caller to keep as
    ``old_id_number``.
    """
    if value is None:
        return None, None, []
    raw = str(value).strip()
    if not raw:
        return None, None, []
    if len(raw) == 12 and raw.isascii() and raw.isdigit() and raw[:3] in LEGACY_PROVINCE_CODES:
        return raw, None, []  # the well-formed case; IDs are unique, a cache would only churn
    pid, moved, issues = _personal_id(raw)
    return pid, moved, list(issues)


def standardize_old_id(value: object) -> tuple[str | None, list[Issue]]:
    """Old CMND: 9 digits (or the 12-digit CMND form). Invalid values are dropped."""
    if value is None:
        return None, []
    raw = str(value).strip()
    if len(raw) in (9, 12) and raw.isascii() and raw.isdigit():
        return raw, []  # the well-formed case, without the regex
    digits = _digits_only(raw)
    if not digits:
        return None, []
    if digits.isdigit() and len(digits) in (9, 12):
        return digits, []
    if digits.isdigit() and len(digits) == 8:
        # Excel dropped the leading zero of a 9-digit CMND (Hà Nội's start with 0).
        return f"0{digits}", [warning("old_id_number", "old_id_leading_zero", "zero restored")]
    return None, [warning("old_id_number", "old_id_invalid", "old ID must have 9 or 12 digits")]


def tax_code_check_digit(first9: str) -> int | None:
    """The check digit for a 9-digit prefix, or ``None`` if no code has this prefix.

    ``10 - (Σ dᵢ·wᵢ mod 11)``; a result of 10 (Σ mod 11 = 0) is never issued, so such
    a prefix gives ``None``.
    """
    if len(first9) != 9 or not first9.isdigit():
        return None
    total = sum(int(d) * w for d, w in zip(first9, _TAX_WEIGHTS, strict=True))
    check = 10 - total % 11
    return check if check < 10 else None


def tax_code_valid(code: str) -> bool:
    """True for a well-formed 10-digit code (with optional ``-NNN``) whose check digit holds."""
    base = code.split("-", 1)[0]
    if len(base) != 10 or not base.isdigit():
        return False
    if "-" in code:
        suffix = code.split("-", 1)[1]
        if len(suffix) != 3 or not suffix.isdigit():
            return False
    return tax_code_check_digit(base[:9]) == int(base[9])


@lru_cache(maxsize=65536)
def _tax_code(raw: str) -> tuple[str | None, tuple[Issue, ...]]:
    f = "tax_code"
    digits = re.sub(r"[\s._/]", "", raw)
    digits = digits.replace("–", "-").replace("—", "-")
    if "-" in digits:
        base, _, suffix = digits.partition("-")
        suffix = suffix.replace("-", "")
    elif len(digits) == 13:
        base, suffix = digits[:10], digits[10:]
    else:
        base, suffix = digits, ""
    if len(base) == 9 and base.isdigit():
        base = f"0{base}"  # leading zero eaten by a spreadsheet
    if (
        not base.isdigit()
        or len(base) != 10
        or (suffix and (len(suffix) != 3 or not suffix.isdigit()))
    ):
        return None, (warning(f, "tax_code_invalid", "tax code must be 10 digits [+ -NNN]"),)
    if tax_code_check_digit(base[:9]) != int(base[9]):
        return None, (warning(f, "tax_code_check_digit", "tax code check digit does not match"),)
    if suffix == "000":
        return None, (warning(f, "tax_code_invalid", "branch suffix 000 is not issued"),)
    return (f"{base}-{suffix}" if suffix else base), ()


def standardize_tax_code(value: object) -> tuple[str | None, list[Issue]]:
    """``0101234567`` or ``0101234567-001``; a bad code is dropped with a warning.

    A 12-digit value is accepted as an individual's tax code (from 1 July 2025
    individuals use their personal ID) when its prefix is a valid province code.
    """
    if value is None:
        return None, []
    raw = str(value).strip()
    if not raw:
        return None, []
    digits = _digits_only(raw)
    individual = "-" not in raw and len(digits) == 12 and digits.isdigit()
    if individual and digits[:3] in LEGACY_PROVINCE_CODES:
        return digits, []
    code, issues = _tax_code(raw)
    return code, list(issues)
