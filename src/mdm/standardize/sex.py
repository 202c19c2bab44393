"""Sex as ``male``/``female``.

Sources code it every way: ``Nam/Nữ``, ``nam/nu``, ``M/F``, ``1/2`` (the civil
registry and most Vietnamese systems: 1 = male, 2 = female). ``0/1`` is ambiguous
between systems (0 = female in some, 0 = male in others) and is therefore **not**
accepted: such a value is dropped with a warning rather than guessed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from mdm.standardize.issues import Issue, warning
from mdm.standardize.text import fold

__all__ = ["Sex", "standardize_sex"]

Sex = Literal["male", "female"]

_SEX: dict[str, Sex] = {
    "nam": "male", "trai": "male", "m": "male", "male": "male", "man": "male",
    "1": "male", "gioi tinh nam": "male", "ong": "male",
    "nu": "female", "gai": "female", "f": "female", "female": "female", "woman": "female",
    "2": "female", "gioi tinh nu": "female", "ba": "female", "w": "female",
}  # fmt: skip


@lru_cache(maxsize=4096)
def _sex(text: str, field: str) -> tuple[Sex | None, tuple[Issue, ...]]:
    key = fold(text).strip(" .")
    if not key:
        return None, ()
    sex = _SEX.get(key)
    if sex is None:
        return None, (warning(field, "sex_unknown", f"cannot read sex {text[:40]!r}"),)
    return sex, ()


def standardize_sex(value: object, field: str = "sex") -> tuple[Sex | None, list[Issue]]:
    if value is None:
        return None, []
    sex, issues = _sex(str(value), field)
    return sex, list(issues)
