"""Text damage that real legacy systems do to Vietnamese, and the Windows-1258 form.

Each function is deterministic given its random draws, so the generator stays
reproducible with a seed.
"""

from __future__ import annotations

import unicodedata


def strip_diacritics(s: str) -> str:
    """ASCII-fold as old systems did; ``Đ`` has no decomposition so it is mapped by hand.

    Anything else outside ASCII is dropped, as those systems did.
    """
    if s.isascii():
        return s
    nfd = unicodedata.normalize("NFD", s.replace("Đ", "D").replace("đ", "d"))
    return nfd.encode("ascii", "ignore").decode("ascii")


def to_nfd(s: str) -> str:
    return unicodedata.normalize("NFD", s)


def _recompose_pairs() -> list[tuple[str, str]]:
    """NFD sequences to fold back into cp1258's precomposed â ê ô ơ ư ă (any case).

    With a dot below the canonical order puts U+0323 before the circumflex or
    breve (``ậ`` = a, U+0323, U+0302), so those need their own pattern.
    """
    pairs: list[tuple[str, str]] = []
    for ch in "âêôơưăÂÊÔƠƯĂ":
        nfd = unicodedata.normalize("NFD", ch)
        pairs.append((unicodedata.normalize("NFD", ch + "\u0323"), ch + "\u0323"))
        pairs.append((nfd, ch))
    return pairs


_RECOMPOSE = _recompose_pairs()


def to_cp1258_text(s: str) -> str:
    """Rewrite NFC Vietnamese into the decomposed form that encodes to cp1258.

    ``to_cp1258_text(s).encode("cp1258").decode("cp1258")`` normalized to NFC
    gives ``s`` back. Works on whole files: NFD and ``str.replace`` run in C.
    """
    t = unicodedata.normalize("NFD", s)
    for seq, rep in _RECOMPOSE:
        t = t.replace(seq, rep)
    return t


# TCVN3 (ABC) single-byte code points, read as Windows-1252/Latin-1: that is the
# mojibake a TCVN3 database shows when exported without conversion. Uppercase
# toned letters have no TCVN3 code of their own (a separate capitals font was
# used), so they fall back to the lowercase code, as such data really does.
_TCVN3_LOWER = "àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ"
_TCVN3_LOWER_CODES = "µ¸¶·¹¨»¾¼½Æ©ÇÊÈÉË®ÌÐÎÏÑªÒÕÓÔÖ×ÝØÜÞßãáâä«åèæçé¬êíëìîïóñòô\xadõøö÷ùúýûüþ"
_TCVN3_UPPER = "ĂÂĐÊÔƠƯ"
_TCVN3_UPPER_CODES = "¡¢§£¤¥¦"


def _build_tcvn3() -> dict[int, str]:
    assert len(_TCVN3_LOWER) == len(_TCVN3_LOWER_CODES)
    table = {ord(u): t for u, t in zip(_TCVN3_LOWER, _TCVN3_LOWER_CODES, strict=True)}
    table.update({ord(u): t for u, t in zip(_TCVN3_UPPER, _TCVN3_UPPER_CODES, strict=True)})
    for u, t in zip(_TCVN3_LOWER, _TCVN3_LOWER_CODES, strict=True):
        up = u.upper()
        if ord(up) not in table and up != u:
            table[ord(up)] = t
    return table


_TCVN3_TABLE = _build_tcvn3()


def tcvn3_mojibake(s: str) -> str:
    """``s`` as it appears when TCVN3 bytes are read as Windows-1252."""
    return unicodedata.normalize("NFC", s).translate(_TCVN3_TABLE)


def typo(s: str, r1: float, r2: float) -> str:
    """One keyboard-style error at a position chosen by ``r1``; kind chosen by ``r2``."""
    letters = [i for i, c in enumerate(s) if c.isalpha()]
    if len(letters) < 3:
        return s
    i = letters[int(r1 * len(letters)) % len(letters)]
    if r2 < 0.35 and i + 1 < len(s) and s[i + 1].isalpha():  # transpose
        return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
    if r2 < 0.65:  # delete
        return s[:i] + s[i + 1 :]
    if r2 < 0.85:  # double
        return s[:i] + s[i] + s[i:]
    # lose the accent of one letter only
    return s[:i] + strip_diacritics(s[i]) + s[i + 1 :]
