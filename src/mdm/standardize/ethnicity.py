"""The 54 officially recognized ethnic groups, by canonical Vietnamese name.

Names and codes follow the General Statistics Office catalogue (Decision
121-TCTK/PPCĐ, 1979, the list used by the civil registry and censuses). Matching is
on the folded name with spaces and hyphens removed, so ``Ê Đê``, ``Ê-đê`` and ``ede``
all give ``Ê Đê``; a few common alternative names (``Khmer``, ``Mông``, ``Jrai``...)
are aliases. An unknown value is dropped with a warning (the raw value survives in
the source record).
"""

from __future__ import annotations

from functools import lru_cache

from mdm.standardize.issues import Issue, warning
from mdm.standardize.text import fold

__all__ = ["ETHNIC_GROUPS", "standardize_ethnicity"]

# GSO code → canonical name.
ETHNIC_GROUPS: dict[str, str] = {
    "01": "Kinh", "02": "Tày", "03": "Thái", "04": "Hoa", "05": "Khơ-me", "06": "Mường",
    "07": "Nùng", "08": "Mông", "09": "Dao", "10": "Gia-rai", "11": "Ngái", "12": "Ê Đê",
    "13": "Ba Na", "14": "Xơ Đăng", "15": "Sán Chay", "16": "Cơ Ho", "17": "Chăm",
    "18": "Sán Dìu", "19": "Hrê", "20": "Mnông", "21": "Ra Glai", "22": "Xtiêng",
    "23": "Bru-Vân Kiều", "24": "Thổ", "25": "Giáy", "26": "Cơ Tu", "27": "Gié Triêng",
    "28": "Mạ", "29": "Khơ Mú", "30": "Co", "31": "Tà Ôi", "32": "Chơ Ro", "33": "Kháng",
    "34": "Xinh Mun", "35": "Hà Nhì", "36": "Chu Ru", "37": "Lào", "38": "La Chí",
    "39": "La Ha", "40": "Phù Lá", "41": "La Hủ", "42": "Lự", "43": "Lô Lô", "44": "Chứt",
    "45": "Mảng", "46": "Pà Thẻn", "47": "Cờ Lao", "48": "Cống", "49": "Bố Y", "50": "Si La",
    "51": "Pu Péo", "52": "Brâu", "53": "Ơ Đu", "54": "Rơ Măm",
}  # fmt: skip

_ALIASES = {
    "viet": "Kinh",
    "khmer": "Khơ-me",
    "hmong": "Mông",
    "jrai": "Gia-rai",
    "giarai": "Gia-rai",
    "rade": "Ê Đê",
    "bahnar": "Ba Na",
    "sedang": "Xơ Đăng",
    "koho": "Cơ Ho",
    "cham": "Chăm",
    "raglai": "Ra Glai",
    "stieng": "Xtiêng",
    "bru": "Bru-Vân Kiều",
    "vankieu": "Bru-Vân Kiều",
    "katu": "Cơ Tu",
    "khomu": "Khơ Mú",
    "kmhmu": "Khơ Mú",
    "taoi": "Tà Ôi",
    "choro": "Chơ Ro",
    "churu": "Chu Ru",
    "colao": "Cờ Lao",
    "boy": "Bố Y",
    "pupeo": "Pu Péo",
    "odu": "Ơ Đu",
    "romam": "Rơ Măm",
    "hoa(han)": "Hoa",
    "han": "Hoa",
    "thai(tay)": "Thái",
}


def _key(text: str) -> str:
    return "".join(ch for ch in fold(text) if ch.isalnum())


_INDEX: dict[str, str] = {_key(name): name for name in ETHNIC_GROUPS.values()}
_INDEX.update({_key(k): v for k, v in _ALIASES.items()})
_INDEX.update({code: name for code, name in ETHNIC_GROUPS.items()})
_INDEX.update({str(int(code)): name for code, name in ETHNIC_GROUPS.items()})


@lru_cache(maxsize=4096)
def _ethnicity(text: str, field: str) -> tuple[str | None, tuple[Issue, ...]]:
    key = _key(text)
    if key.startswith("dantoc"):
        key = key[6:]
    if not key:
        return None, ()
    name = _INDEX.get(key)
    if name is None:
        return None, (warning(field, "ethnicity_unknown", f"unknown ethnic group {text[:40]!r}"),)
    return name, ()


def standardize_ethnicity(
    value: object, field: str = "ethnicity"
) -> tuple[str | None, list[Issue]]:
    if value is None:
        return None, []
    name, issues = _ethnicity(str(value), field)
    return name, list(issues)
