"""Canonical Vietnamese text: NFC, whitespace, case, tone placement, folding, legacy encodings.

Every other standardizer builds on these helpers, so their contracts matter:

* ``canonical_text`` is idempotent: applying it to its own output changes nothing.
* Tone placement is normalized to the **new style** ("kiểu mới": the mark sits on
  the main vowel, as in the Ministry of Education's 2018 provisional spelling rules
  for textbooks, Decision 1989/QĐ-BGDĐT; to verify against the text): in an open
  syllable ending in ``oa``, ``oe`` or ``uy`` the mark sits on the second vowel
  (``Hoà``, ``Khoẻ``, ``Thuỷ``), not the first (``Hòa``, ``Khỏe``, ``Thủy``, the
  "old style"). Other syllables have one placement in both styles. Both spellings are correct; the
  registry stores one so that equal names are equal strings. Matching must not
  rely on it anyway: ``fold`` maps both to the same key.
* ``fold`` is the matching key: diacritics stripped, ``Đ/đ`` mapped to ``D/d``
  explicitly (``đ`` has no Unicode decomposition), lower-cased by default.
* Legacy encodings: text typed in the pre-Unicode TCVN3 (ABC) or VNI-Windows
  fonts, or exported as UTF-8/Windows-1258 and then read as Windows-1252, arrives
  as mojibake (``NguyÔn V¨n An``, ``Nguyeãn Vaên An``, ``Nguyá»…n``). ``repair_mojibake``
  re-decodes it when the result is clearly more Vietnamese than the input (more
  tokens become valid Vietnamese syllables); otherwise it leaves the text alone and
  ``looks_mis_decoded`` lets callers warn (``encoding_suspect``).
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from functools import lru_cache

from mdm.standardize.issues import Issue, warning

__all__ = [
    "canonical_text",
    "canonical_tones",
    "clean_whitespace",
    "fold",
    "looks_mis_decoded",
    "repair_mojibake",
    "standardize_text",
    "title_case",
]

# --- tone marks --------------------------------------------------------------------

GRAVE, ACUTE, TILDE, HOOK, DOT = "\u0300", "\u0301", "\u0303", "\u0309", "\u0323"
TONE_MARKS = frozenset({GRAVE, ACUTE, TILDE, HOOK, DOT})
# Marks that change the vowel's quality (â ê ô / ă / ơ ư); the tone goes on such a vowel.
_QUALITY_MARKS = frozenset({"\u0302", "\u0306", "\u031b"})
_VOWELS = frozenset("aeiouyAEIOUY")

_WS_RE = re.compile(r"\s+")
# Zero-width and control characters that legacy exports leave in text.
# (The soft hyphen U+00AD is kept here: it is TCVN3's "ư" and must survive until repair.)
_INVISIBLE_RE = re.compile("[\u200b-\u200f\u2060\ufeff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_whitespace(text: str) -> str:
    """Collapse every run of whitespace (incl. NBSP, tabs, newlines) to one space; strip."""
    if text.isprintable() and "  " not in text:
        # Fast path, same result: every whitespace character but the ASCII space, and every
        # invisible character removed below, is "non-printable" (categories C* and Z*).
        return text.strip()
    return _WS_RE.sub(" ", _INVISIBLE_RE.sub("", text)).strip()


# --- folding -----------------------------------------------------------------------


def _build_fold_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {cp: None for cp in range(0x300, 0x370)}
    table[ord("Đ")] = "D"
    table[ord("đ")] = "d"
    table[ord("Ð")] = "D"  # U+00D0 ETH, a frequent look-alike typed for Đ
    return table


_FOLD_TABLE = _build_fold_table()


def fold(text: str, *, lower: bool = True) -> str:
    """Matching key: no diacritics, ``Đ→D``, whitespace collapsed, lower-case by default.

    ``Hoà``/``Hòa``, ``Thuỷ``/``Thủy``, NFC/NFD input all fold equal. The result is
    ASCII for Vietnamese text (other scripts pass through without their marks).
    """
    out = clean_whitespace(unicodedata.normalize("NFD", text).translate(_FOLD_TABLE))
    return out.lower() if lower else out


# --- syllables and tone placement --------------------------------------------------

_ONSET = r"(?:ngh|ng|gh|gi|kh|nh|ph|th|tr|ch|qu|[bcdghklmnprstvxđ])?"
# Vowel clusters of Vietnamese rhymes, with vowel quality marks (tones removed).
_NUCLEI = (
    "oai|oay|oao|oeo|uây|uôi|ươi|ươu|uya|uyê|uyu|iêu|yêu|"
    "ai|ao|au|âu|ay|ây|eo|êu|ia|iê|iu|oa|oă|oe|oi|ôi|ơi|ua|uâ|uê|ui|uô|uơ|ươ|ưa|ưi|ưu|uy|yê|"
    "a|ă|â|e|ê|i|o|ô|ơ|u|ư|y"
)
_CODA = r"(?:ch|ng|nh|[cmnpt])?"
_SYLLABLE_RE = re.compile(rf"^{_ONSET}(?:(?:{_NUCLEI}){_CODA}|oo(?:ng|c))$")  # xoong, moóc
_GI_ONLY_RE = re.compile(r"^gi(?:ch|ng|nh|[cmnpt])?$")  # gì, gìn
_TONE_TABLE = {ord(m): None for m in TONE_MARKS}


@lru_cache(maxsize=65536)
def _is_syllable(token: str) -> bool:
    """True when ``token`` (any case, NFC or NFD) is a well-formed Vietnamese syllable."""
    nfd = unicodedata.normalize("NFD", token.lower())
    if sum(1 for ch in nfd if ch in TONE_MARKS) > 1:
        return False
    bare = unicodedata.normalize("NFC", nfd.translate(_TONE_TABLE))
    return bool(_SYLLABLE_RE.match(bare) or _GI_ONLY_RE.match(bare))


@lru_cache(maxsize=65536)
def _canonical_token(token: str) -> str:
    return _place_tone(token) if _is_syllable(token) else token


def _place_tone(syllable: str) -> str:
    """Move the tone mark of one syllable to its new-style position; NFC result."""
    nfd = unicodedata.normalize("NFD", syllable)
    tones = [ch for ch in nfd if ch in TONE_MARKS]
    if len(tones) != 1:
        return unicodedata.normalize("NFC", syllable)
    tone = tones[0]
    # Group into (base, marks-without-tone) clusters.
    clusters: list[list[str]] = []
    for ch in nfd:
        if unicodedata.combining(ch):
            if ch != tone and clusters:
                clusters[-1].append(ch)
        else:
            clusters.append([ch])
    bases = [c[0].lower() for c in clusters]
    vowel_idx = [i for i, b in enumerate(bases) if b in _VOWELS]
    if not vowel_idx:
        return unicodedata.normalize("NFC", syllable)
    # qu- and gi- onsets: the u / i belongs to the onset when another vowel follows.
    first = vowel_idx[0]
    if len(vowel_idx) > 1 and first >= 1:
        onset = "".join(bases[:first])
        if (onset == "q" and bases[first] == "u") or (
            onset == "g" and bases[first] == "i" and len(clusters[first]) == 1
        ):
            vowel_idx = vowel_idx[1:]
    quality = [i for i in vowel_idx if any(m in _QUALITY_MARKS for m in clusters[i][1:])]
    if quality:
        target = quality[-1]
    elif len(vowel_idx) == 1:
        target = vowel_idx[0]
    elif len(vowel_idx) >= 3:
        target = vowel_idx[1]
    else:
        closed = vowel_idx[-1] < len(clusters) - 1
        pair = bases[vowel_idx[0]] + bases[vowel_idx[1]]
        target = vowel_idx[1] if closed or pair in ("oa", "oe", "uy") else vowel_idx[0]
    clusters[target].append(tone)  # after the quality mark: canonical order
    return unicodedata.normalize("NFC", "".join("".join(c) for c in clusters))


_WORD_RE = re.compile(r"[^\W\d_]+")


def canonical_tones(text: str) -> str:
    """NFC text with every Vietnamese syllable's tone mark in new-style position.

    Tokens that are not well-formed Vietnamese syllables (foreign words, ethnic
    minority names like ``H'Hen``) are left as they are.
    """
    text = unicodedata.normalize("NFC", text)
    if text.isascii():
        return text
    return _WORD_RE.sub(lambda m: _canonical_token(m[0]), text)


def title_case(text: str) -> str:
    """Vietnamese title case: first letter of each word upper, the rest lower.

    Works on NFC text (``str.title`` on NFD text would capitalize the letter after a
    combining mark). ``đ`` upper-cases to ``Đ`` natively. Letters after an apostrophe
    or hyphen start a new word (``H'Hen``, ``Bru-Vân Kiều``).
    """
    return _WORD_RE.sub(_title_word, text)


def _case1(ch: str, upper: bool) -> str:
    """Case-map one character, keeping it as is when the mapping would change the length
    (``ß``→``SS``, ``İ``→``i̇``): title-casing must stay idempotent."""
    mapped = ch.upper() if upper else ch.lower()
    return mapped if len(mapped) == 1 else ch


def _title_word(m: re.Match[str]) -> str:
    return _title_token(m[0])


@lru_cache(maxsize=16384)
def _title_token(word: str) -> str:
    """Title case of one word; words (syllables) repeat, so each is cased once."""
    return _case1(word[0], True) + "".join(_case1(c, False) for c in word[1:])


# --- legacy encodings ---------------------------------------------------------------
#
# TCVN3 (TCVN 5712:1993, the "ABC" fonts .VnTime etc.): one byte per letter. The
# table below is the published TCVN 5712 VN1 upper half (0x80-0xFF) as shipped in
# glibc's TCVN5712-1 converter; TCVN3/ABC uses the same positions for the letters it
# encodes (upper-case toned letters live in separate ".VnTimeH" fonts that reuse the
# lower-case positions, so they repair to lower case; name title-casing fixes that).
_TCVN_HIGH = (
    0x00C0, 0x1EA2, 0x00C3, 0x00C1, 0x1EA0, 0x1EB6, 0x1EAC, 0x00C8,
    0x1EBA, 0x1EBC, 0x00C9, 0x1EB8, 0x1EC6, 0x00CC, 0x1EC8, 0x0128,
    0x00CD, 0x1ECA, 0x00D2, 0x1ECE, 0x00D5, 0x00D3, 0x1ECC, 0x1ED8,
    0x1EDC, 0x1EDE, 0x1EE0, 0x1EDA, 0x1EE2, 0x00D9, 0x1EE6, 0x0168,
    0x00A0, 0x0102, 0x00C2, 0x00CA, 0x00D4, 0x01A0, 0x01AF, 0x0110,
    0x0103, 0x00E2, 0x00EA, 0x00F4, 0x01A1, 0x01B0, 0x0111, 0x1EB0,
    0x0300, 0x0309, 0x0303, 0x0301, 0x0323, 0x00E0, 0x1EA3, 0x00E3,
    0x00E1, 0x1EA1, 0x1EB2, 0x1EB1, 0x1EB3, 0x1EB5, 0x1EAF, 0x1EB4,
    0x1EAE, 0x1EA6, 0x1EA8, 0x1EAA, 0x1EA4, 0x1EC0, 0x1EB7, 0x1EA7,
    0x1EA9, 0x1EAB, 0x1EA5, 0x1EAD, 0x00E8, 0x1EC2, 0x1EBB, 0x1EBD,
    0x00E9, 0x1EB9, 0x1EC1, 0x1EC3, 0x1EC5, 0x1EBF, 0x1EC7, 0x00EC,
    0x1EC9, 0x1EC4, 0x1EBE, 0x1ED2, 0x0129, 0x00ED, 0x1ECB, 0x00F2,
    0x1ED4, 0x1ECF, 0x00F5, 0x00F3, 0x1ECD, 0x1ED3, 0x1ED5, 0x1ED7,
    0x1ED1, 0x1ED9, 0x1EDD, 0x1EDF, 0x1EE1, 0x1EDB, 0x1EE3, 0x00F9,
    0x1ED6, 0x1EE7, 0x0169, 0x00FA, 0x1EE5, 0x1EEB, 0x1EED, 0x1EEF,
    0x1EE9, 0x1EF1, 0x1EF3, 0x1EF7, 0x1EF9, 0x00FD, 0x1EF5, 0x1ED0,
)  # fmt: skip

# VNI-Windows: a toned vowel is the base letter followed by one modifier byte; the
# modifier's upper-case form is the lower-case byte - 0x20 (Latin-1 case pairs). The
# modifiers are described as combining marks so Unicode NFC does the composition.
_VNI_MODIFIERS = {
    0xF8: GRAVE, 0xF9: ACUTE, 0xFB: HOOK, 0xF5: TILDE, 0xEF: DOT,
    0xE2: "\u0302", 0xE0: "\u0302" + GRAVE, 0xE1: "\u0302" + ACUTE, 0xE5: "\u0302" + HOOK,
    0xE3: "\u0302" + TILDE, 0xE4: "\u0302" + DOT,
    0xEA: "\u0306", 0xE8: "\u0306" + GRAVE, 0xE9: "\u0306" + ACUTE, 0xFA: "\u0306" + HOOK,
    0xFC: "\u0306" + TILDE, 0xEB: "\u0306" + DOT,
}  # fmt: skip
# Letters VNI encodes in one byte: lower-case byte -> letter (upper case is byte - 0x20).
_VNI_LETTERS = {
    0xF1: "đ", 0xF4: "ơ", 0xF6: "ư", 0xEE: "ỵ",
    0xEC: "ì", 0xED: "í", 0xE6: "ỉ", 0xF3: "ĩ", 0xF2: "ị",
}  # fmt: skip


def _byte_chars(byte: int) -> set[str]:
    """The characters a legacy byte shows up as when read as Windows-1252 or Latin-1."""
    chars = {bytes([byte]).decode("latin-1")}
    with contextlib.suppress(UnicodeDecodeError):  # 5 bytes are undefined in cp1252
        chars.add(bytes([byte]).decode("cp1252"))
    return chars


def _build_tcvn3_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for offset, cp in enumerate(_TCVN_HIGH):
        if cp == 0x00A0:
            continue
        for ch in _byte_chars(0x80 + offset):
            table[ord(ch)] = chr(cp)
    return table


def _build_vni_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for byte, marks in _VNI_MODIFIERS.items():
        for b, m in ((byte, marks), (byte - 0x20, marks)):
            for ch in _byte_chars(b):
                table[ord(ch)] = m
    for byte, letter in _VNI_LETTERS.items():
        for ch in _byte_chars(byte):
            table[ord(ch)] = letter
        upper = unicodedata.normalize("NFC", letter.upper())
        for ch in _byte_chars(byte - 0x20):
            table[ord(ch)] = upper
    return table


_TCVN3_TABLE = _build_tcvn3_table()
_VNI_TABLE = _build_vni_table()

# Latin-1 letters that occur in correctly encoded Vietnamese.
_VN_LATIN1 = frozenset("àáâãèéêìíòóôõùúýÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚÝ")
# Characters that never occur in Vietnamese Unicode text but are typical mojibake:
# the rest of U+0080-U+00FF (minus NBSP and common punctuation) and cp1252's extras.
_SUSPECT_CHARS = frozenset(
    ch
    for b in range(0x80, 0x100)
    for ch in _byte_chars(b)
    if ch not in _VN_LATIN1 and ch not in "\u00a0«»°·×±§©®¶" and not ch.isspace()
) | {"\ufffd"}


def _decode_as(text: str, encoding: str) -> str | None:
    try:
        return text.encode("cp1252").decode(encoding)
    except (UnicodeEncodeError, UnicodeDecodeError):
        try:
            return text.encode("latin-1").decode(encoding)
        except (UnicodeEncodeError, UnicodeDecodeError):
            return None


def _candidates(text: str) -> list[tuple[str, str]]:
    """``(encoding, re-decoded text)`` for each legacy encoding the text may be in."""
    out = [
        ("tcvn3", unicodedata.normalize("NFC", text.translate(_TCVN3_TABLE))),
        ("vni", unicodedata.normalize("NFC", text.translate(_VNI_TABLE))),
    ]
    for enc in ("utf-8", "cp1258"):
        decoded = _decode_as(text, enc)
        if decoded is not None:
            out.append((enc, unicodedata.normalize("NFC", decoded)))
    return out


def _vn_score(text: str) -> tuple[int, int]:
    """(valid Vietnamese syllables, minus suspicious characters): higher is better.

    Summed over the whitespace-separated tokens, each scored once (tokens repeat: a
    name or street is a few of a few thousand syllables). The sum is the whole text's
    score: whitespace is neither a combining mark nor suspicious (``_SUSPECT_CHARS``
    leaves out every space), and ``str.split`` drops nothing else.
    """
    valid = bad = 0
    for token in text.split():
        v, b = _token_score(token)
        valid += v
        bad += b
    return valid, -bad


@lru_cache(maxsize=65536)
def _token_score(token: str) -> tuple[int, int]:
    """(1 if ``token`` is a Vietnamese syllable else 0, its suspicious characters)."""
    valid = 1 if _is_syllable(token.strip(".,;:()'\"-")) else 0
    # No suspicious character is a combining mark (they all lie below U+0300), so the two
    # counts add up; map() keeps the per-character loop in C.
    combining = len(token) - list(map(unicodedata.combining, token)).count(0)
    return valid, combining + sum(map(_SUSPECT_CHARS.__contains__, token))


def looks_mis_decoded(text: str) -> bool:
    """True when ``text`` contains characters typical of mis-decoded legacy bytes."""
    return not _SUSPECT_CHARS.isdisjoint(text)


@lru_cache(maxsize=65536)
def repair_mojibake(text: str) -> tuple[str, str | None]:
    """Return ``(text, encoding)``: the repaired text and the legacy encoding recognized.

    ``encoding`` is ``None`` when the text was left unchanged. A repair is accepted only
    when it strictly improves the score (more valid syllables, fewer junk characters)
    *and* leaves no suspicious character behind, so correct Unicode text (every token
    already a valid syllable) is never touched.
    """
    if text.isascii():
        return text, None
    text = unicodedata.normalize("NFC", text)
    base = _vn_score(text)
    tokens = len(text.split())
    if base[0] == tokens and base[1] == 0:
        return text, None
    original = text.split()
    best, best_score, best_enc = text, base, None
    for enc, cand in _candidates(text):
        if cand == text or looks_mis_decoded(cand):
            continue
        if any(unicodedata.combining(ch) for ch in cand):
            continue
        # Every token the re-decoding changed must become a Vietnamese syllable (3 in
        # 4 for long texts with foreign words): random junk never passes that.
        changed = [c for o, c in zip(original, cand.split(), strict=False) if o != c]
        good = sum(1 for c in changed if _is_syllable(c.strip(".,;:()'\"-")))
        if not changed or good * 4 < len(changed) * 3:
            continue
        score = _vn_score(cand)
        if score[0] > base[0] and score > best_score:
            best, best_score, best_enc = cand, score, enc
    return best, best_enc


# --- the composite ------------------------------------------------------------------


@lru_cache(maxsize=131072)
def canonical_text(text: str) -> str:
    """NFC + whitespace cleanup + new-style tone placement. Idempotent; case kept."""
    text = unicodedata.normalize("NFC", text).replace("\u00ad", "")
    return canonical_tones(clean_whitespace(text))


def standardize_text(value: object, field: str) -> tuple[str | None, list[Issue]]:
    """Free text: repair legacy encodings, canonical form; ``None`` for empty input."""
    if value is None:
        return None, []
    text = clean_whitespace(str(value))
    if not text:
        return None, []
    issues: list[Issue] = []
    repaired, enc = repair_mojibake(text)
    if enc is not None:
        issues.append(warning(field, "encoding_repaired", f"text was mis-decoded {enc}; repaired"))
    elif looks_mis_decoded(repaired):
        issues.append(
            warning(field, "encoding_suspect", "text looks mis-decoded and could not be repaired")
        )
    return canonical_text(repaired), issues
