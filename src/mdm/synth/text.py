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


# VNI (VNI-Windows fonts) writes a letter as its base letter followed by one byte
# for the vowel modifier and/or tone; read as Windows-1252 the bytes show as
# Latin-1 letters ("Tiếng Việt" -> "Tieáng Vieät"). Capitals use the byte 0x20 lower.
_VNI_TONES = "\u0300\u0301\u0309\u0303\u0323"  # grave acute hook tilde dot
_VNI_PLAIN = "øùûõï"  # tone byte after a, e, o, u, y, ơ, ư
_VNI_CIRC = "àáåãä"  # tone with circumflex (â ê ô)
_VNI_BREVE = "èéúüë"  # tone with breve (ă)
_VNI_I = "ìíæóò"  # i with a tone is a single byte
_VNI_SPECIAL = {"â": "aâ", "ê": "eâ", "ô": "oâ", "ă": "aê", "ơ": "ô", "ư": "ö", "đ": "ñ", "ỵ": "î"}


def _build_vni() -> dict[int, str]:
    lower: dict[str, str] = dict(_VNI_SPECIAL)
    for tone, plain, circ, breve, i_code in zip(
        _VNI_TONES, _VNI_PLAIN, _VNI_CIRC, _VNI_BREVE, _VNI_I, strict=True
    ):
        for base in "aeouy":
            lower.setdefault(unicodedata.normalize("NFC", base + tone), base + plain)
        for ch, base in (("â", "a"), ("ê", "e"), ("ô", "o")):
            lower[unicodedata.normalize("NFC", ch + tone)] = base + circ
        lower[unicodedata.normalize("NFC", "ă" + tone)] = "a" + breve
        lower[unicodedata.normalize("NFC", "ơ" + tone)] = "ô" + plain
        lower[unicodedata.normalize("NFC", "ư" + tone)] = "ö" + plain
        lower[unicodedata.normalize("NFC", "i" + tone)] = i_code
    table: dict[int, str] = {}
    for u, v in lower.items():
        table[ord(u)] = v
        table[ord(u.upper())] = "".join(c.upper() if c.isascii() else chr(ord(c) - 0x20) for c in v)
    return table


_VNI_TABLE = _build_vni()


def vni_mojibake(s: str) -> str:
    """``s`` as it appears when VNI-Windows bytes are read as Windows-1252."""
    return unicodedata.normalize("NFC", s).translate(_VNI_TABLE)


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
