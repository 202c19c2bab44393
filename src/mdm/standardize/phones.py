"""Phone numbers to E.164 (``+84…``), renumbering-aware.

Two national renumberings mean one line can appear under two numbers:

* **Mobile, 2018** (MIC Circular 22/2014/TT-BTTTT, Decision 798/QĐ-BTTTT): 11-digit
  numbers 01xx xxx xxxx became 10-digit 0xx xxx xxxx. ``MOBILE_2018`` is applied
  first, so an old and a new number of the same line standardize to the same value.
* **Landline area codes, 2017** (Decision 2036/QĐ-BTTTT, 2015; three phases from
  11 Feb, 15 Apr and 17 Jun 2017; Vĩnh Phúc, Phú Thọ, Hoà Bình and Hà Giang kept
  their codes). ``LANDLINE_2017`` lists each pre-2017 area code with the pre-2025
  province it served; the new code is taken from ``vietnam_provinces`` (its
  ``phone_code``), and a test checks the two agree. Old codes were freed and some
  were later reused by mobile ranges (``036``, ``038``, ``070``, ``083``…), so a
  number is read with the old landline code only when it is *not* a valid number
  today, or when the area code is written in parentheses (``(08) 3822 1234``).
  Ambiguous pre-2017 landlines that are also valid mobiles today are read as
  mobiles: a known gap, rare because old landlines also carried a 7/8-digit
  subscriber number starting with 2-8 that seldom collides with a live mobile.

Validity of the result is checked with ``phonenumbers`` (current ranges). An
invalid number is dropped with a warning: a bad phone never rejects a record.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

import phonenumbers

from mdm.standardize.issues import Issue, warning

__all__ = ["LANDLINE_2017", "MOBILE_2018", "landline_2017_table", "standardize_phone"]

MOBILE_2018: dict[str, str] = {
    # Viettel
    "162": "32", "163": "33", "164": "34", "165": "35", "166": "36", "167": "37",
    "168": "38", "169": "39",
    # MobiFone
    "120": "70", "121": "79", "122": "77", "126": "76", "128": "78",
    # VinaPhone
    "123": "83", "124": "84", "125": "85", "127": "81", "129": "82",
    # Vietnamobile
    "186": "56", "188": "58",
    # Gmobile
    "199": "59",
}  # fmt: skip
"""Old 11-digit mobile prefix (without the trunk 0) → new 10-digit prefix."""

# Pre-2017 area code (without trunk 0) → pre-2025 province code (statistics code).
LANDLINE_2017: dict[str, int] = {
    "4": 1, "219": 2, "26": 4, "281": 6, "27": 8, "20": 10, "230": 11, "231": 12,
    "22": 14, "29": 15, "218": 17, "280": 19, "25": 20, "33": 22, "240": 24,
    "210": 25, "211": 26, "241": 27, "320": 30, "31": 31, "321": 33, "36": 34,
    "351": 35, "350": 36, "30": 37, "37": 38, "38": 40, "39": 42, "52": 44, "53": 45,
    "54": 46, "511": 48, "510": 49, "55": 51, "56": 52, "57": 54, "58": 56, "68": 58,
    "62": 60, "60": 62, "59": 64, "500": 66, "501": 67, "63": 68, "651": 70, "66": 72,
    "650": 74, "61": 75, "64": 77, "8": 79, "72": 80, "73": 82, "75": 83, "74": 84,
    "70": 86, "67": 87, "76": 89, "77": 91, "710": 92, "711": 93, "79": 94, "781": 95,
    "780": 96,
}  # fmt: skip


@lru_cache(maxsize=1)
def landline_2017_table() -> dict[str, str]:
    """Old area code → new area code, the new one read from ``vietnam_provinces``."""
    from vietnam_provinces.legacy._lookup import PROVINCE_MAPPING

    return {old: str(PROVINCE_MAPPING[prov].phone_code) for old, prov in LANDLINE_2017.items()}


_PAREN_AREA = re.compile(r"^\(\s*(?:\+?84\s*)?0?(\d{1,3})\s*\)")
# "04 3822 1234" / "08.3822.1234": a lone one-digit code group is the old Hà Nội / HCM
# code (mobiles are never grouped that way).
_HN_HCM_GROUP = re.compile(r"^(?:\+?84\s*)?0?([48])[\s.\-]+\d{4}[\s.\-]?\d{4}$")
_SPLIT_MANY = re.compile(r"[;,/|]|\s-\s|\s+(?:hoặc|hoac|or)\s+", re.IGNORECASE)
_EXTENSION = re.compile(r"(?:ext\.?|x|máy lẻ|may le|nhánh|nhanh)\s*\d+\s*$", re.IGNORECASE)


_NUMBER_TYPES = (
    "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number",
    "voip", "pager", "uan", "voicemail",
)  # fmt: skip


@lru_cache(maxsize=1)
def _vn_pattern() -> re.Pattern[str]:
    """Vietnam's valid national numbers, compiled from ``phonenumbers``' own metadata.

    Equivalent to ``phonenumbers.is_valid_number`` for +84 numbers (a number is valid
    when it matches one of the region's number-type patterns) but about 100 times
    faster than parsing a ``PhoneNumber`` object per call.
    """
    meta = phonenumbers.PhoneMetadata.metadata_for_region("VN")
    patterns = []
    for name in _NUMBER_TYPES:
        desc = getattr(meta, name, None)
        if desc is not None and desc.national_number_pattern:
            patterns.append(f"(?:{desc.national_number_pattern})")
    return re.compile("|".join(patterns))


_vn_fullmatch: Callable[[str], re.Match[str] | None] | None = None


def _valid_vn(nsn: str) -> bool:
    global _vn_fullmatch
    if _vn_fullmatch is None:
        _vn_fullmatch = _vn_pattern().fullmatch
    return _vn_fullmatch(nsn) is not None


def _old_landline(nsn: str) -> str | None:
    table = landline_2017_table()
    for size in (1, 2, 3):
        old = nsn[:size]
        if old in table:
            new = table[old] + nsn[size:]
            return new if len(new) == 10 else None
    return None


@lru_cache(maxsize=131072)
def _phone(raw: str, field: str) -> tuple[str | None, tuple[Issue, ...]]:
    # Fast path for the common plain form "0xxxxxxxxx" of a current mobile number.
    plain = len(raw) == 10 and raw[0] == "0" and raw[1] in "35789" and raw.isdigit()
    if plain and _valid_vn(raw[1:]):
        return "+84" + raw[1:], ()
    issues: list[Issue] = []
    pieces = [p for p in _SPLIT_MANY.split(raw) if any(ch.isdigit() for ch in p)]
    if len(pieces) > 1:
        issues.append(warning(field, "phone_multiple", "several numbers given; kept the first"))
    text = (pieces[0] if pieces else raw).strip()
    text = _EXTENSION.sub("", text).strip()
    paren = _PAREN_AREA.match(text) or _HN_HCM_GROUP.match(text)
    explicit_area = paren[1] if paren else None
    plus = text.startswith("+")
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits:
        return None, (*issues, warning(field, "phone_invalid", "no digits in phone number"))

    if plus or digits.startswith("00"):
        digits = digits[2:] if digits.startswith("00") else digits
        if not digits.startswith("84"):
            try:
                num = phonenumbers.parse("+" + digits)
            except phonenumbers.NumberParseException:
                num = None
            if num is not None and phonenumbers.is_valid_number(num):
                e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
                return e164, tuple(issues)
            return None, (*issues, warning(field, "phone_invalid", "invalid foreign number"))
        nsn = digits[2:].lstrip("0")
    elif digits.startswith("84") and len(digits) in (11, 12):
        nsn = digits[2:]
    elif digits.startswith("0"):
        nsn = digits[1:]
    else:
        nsn = digits  # a spreadsheet ate the trunk 0

    if len(nsn) == 10 and nsn[:3] in MOBILE_2018:
        nsn = MOBILE_2018[nsn[:3]] + nsn[3:]
    elif explicit_area is not None and explicit_area in LANDLINE_2017:
        converted = _old_landline(nsn)
        if converted is not None:
            nsn = converted
    elif not _valid_vn(nsn):
        converted = _old_landline(nsn)
        if converted is not None and _valid_vn(converted):
            nsn = converted
    if not _valid_vn(nsn):
        return None, (*issues, warning(field, "phone_invalid", f"{raw!r} is not a valid number"))
    return "+84" + nsn, tuple(issues)


def _plain(raw: str) -> str | None:
    """E.164 for a number written as bare digits (or ``+84`` and digits) that reads as a
    valid number without any landline conversion; ``None`` sends it the long way.

    The same decisions as ``_phone`` takes for such input (no separators, extensions or
    parentheses to look at), without its regexes and without the cache: phone numbers are
    nearly unique per person, so caching them would only churn.
    """
    if len(raw) == 10 and raw[0] == "0" != raw[1] and raw.isascii() and raw.isdigit():
        # "0xxxxxxxxx", the usual form of a current number: what the branches below do for it
        return "+84" + raw[1:] if _valid_vn(raw[1:]) else None
    if raw[0] == "+":
        digits = raw[1:]
        if not (digits.startswith("84") and digits.isascii() and digits.isdigit()):
            return None
        nsn = digits[2:].lstrip("0")
    else:
        if not (raw.isascii() and raw.isdigit()) or raw.startswith("00"):
            return None
        if raw.startswith("84") and len(raw) in (11, 12):
            nsn = raw[2:]
        elif raw[0] == "0":
            nsn = raw[1:]
        else:
            nsn = raw
    if len(nsn) == 10 and nsn[:3] in MOBILE_2018:
        nsn = MOBILE_2018[nsn[:3]] + nsn[3:]
    return "+84" + nsn if _valid_vn(nsn) else None


def standardize_phone(value: object, field: str = "phone") -> tuple[str | None, list[Issue]]:
    """E.164 string or ``None``; invalid input gives a ``phone_invalid`` warning."""
    if value is None:
        return None, []
    raw = str(value).strip()
    if not raw:
        return None, []
    if len(raw) > 64:
        return None, [warning(field, "phone_invalid", "phone text is too long")]
    fast = _plain(raw)
    if fast is not None:
        return fast, []
    result, issues = _phone(raw, field)
    return result, list(issues)
