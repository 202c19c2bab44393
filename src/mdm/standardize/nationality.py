"""Nationality as an ISO 3166-1 alpha-2 code (``VN``).

Accepted: alpha-2 codes (checked against the region list that ``phonenumbers``
ships, which covers ISO 3166-1), the alpha-3 codes and Vietnamese / English names of
the nationalities common in Vietnamese registers. Anything else is dropped with a
warning. Known gap: names of less common countries are not recognized (their
alpha-2 code is).
"""

from __future__ import annotations

from functools import lru_cache

from mdm.standardize.issues import Issue, warning
from mdm.standardize.text import fold

__all__ = ["standardize_nationality"]

_NAMES: dict[str, str] = {
    "viet nam": "VN", "vietnam": "VN", "vnm": "VN", "viet": "VN", "nuoc chxhcn viet nam": "VN",
    "cong hoa xa hoi chu nghia viet nam": "VN", "quoc tich viet nam": "VN",
    "trung quoc": "CN", "china": "CN", "chn": "CN",
    "lao": "LA", "laos": "LA", "lao pdr": "LA",
    "campuchia": "KH", "cambodia": "KH", "khm": "KH",
    "thai lan": "TH", "thailand": "TH", "tha": "TH",
    "han quoc": "KR", "korea": "KR", "south korea": "KR", "kor": "KR",
    "trieu tien": "KP", "north korea": "KP", "prk": "KP",
    "nhat ban": "JP", "japan": "JP", "jpn": "JP",
    "dai loan": "TW", "taiwan": "TW", "twn": "TW",
    "hoa ky": "US", "my": "US", "usa": "US", "united states": "US",
    "phap": "FR", "france": "FR", "fra": "FR",
    "duc": "DE", "germany": "DE", "deu": "DE",
    "anh": "GB", "united kingdom": "GB", "gbr": "GB", "uk": "GB",
    "uc": "AU", "australia": "AU", "aus": "AU",
    "nga": "RU", "russia": "RU", "rus": "RU",
    "philippines": "PH", "phl": "PH", "phi-lip-pin": "PH",
    "malaysia": "MY", "mys": "MY", "singapore": "SG", "sgp": "SG",
    "indonesia": "ID", "idn": "ID", "an do": "IN", "india": "IN", "ind": "IN",
    "canada": "CA", "can": "CA", "myanmar": "MM", "mmr": "MM",
}  # fmt: skip


@lru_cache(maxsize=1)
def _alpha2() -> frozenset[str]:
    import phonenumbers

    return frozenset(r for r in phonenumbers.SUPPORTED_REGIONS if len(r) == 2 and r.isalpha())


def standardize_nationality(
    value: object, field: str = "nationality"
) -> tuple[str | None, list[Issue]]:
    if value is None:
        return None, []
    code, issues = _nationality(str(value), field)
    return code, list(issues)


@lru_cache(maxsize=4096)
def _nationality(value: str, field: str) -> tuple[str | None, tuple[Issue, ...]]:
    raw = value.strip(" .")
    text = fold(raw)
    if not text:
        return None, ()
    # Alpha-2 only on undecorated input: "Mỹ" (the USA) folds to "my" (Malaysia).
    if len(raw) == 2 and raw.isascii() and raw.upper() in _alpha2():
        return raw.upper(), ()
    code = _NAMES.get(text)
    if code is None:
        return None, (warning(field, "nationality_unknown", f"unknown nationality {raw[:40]!r}"),)
    return code, ()
