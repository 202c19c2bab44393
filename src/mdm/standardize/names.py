"""Personal names: canonical form and surname / middle / given split.

Vietnamese order is surname, middle name(s), given name. People are known by the
given name, so matching compares given names strongly and surnames weakly (a few
surnames cover most of the population). The split is positional with one
refinement: a short list of **compound surnames** (``Tôn Nữ``, ``Tôn Thất``,
``Nguyễn Phúc``, ``Âu Dương``, ...) is kept together as the surname when the name
has enough words left for a given name. Compound surnames are rare; a two-word
name is always surname + given. What cannot be known from the string alone (a
foreigner's given-name-first order, a double given name) is not guessed.

Syllables written together (``Minhtrang``, ``NGUYENVANAN``) are split, and a syllable
written in two pieces (``Ng uyễn``) joined, against the closed set of Vietnamese
syllables, only when the reading is clear (:mod:`mdm.standardize.syllables`); the
warnings ``name_syllables_split`` and ``name_syllables_joined`` say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from mdm.standardize.issues import Issue, error, warning
from mdm.standardize.syllables import respace
from mdm.standardize.text import (
    canonical_text,
    clean_whitespace,
    fold,
    looks_mis_decoded,
    repair_mojibake,
    title_case,
)

__all__ = ["COMPOUND_SURNAMES", "NameParts", "parse_name", "standardize_name"]

# Folded forms. Royal / noble lineages (Nguyễn Phúc, Tôn Thất, Tôn Nữ) and the
# Chinese-origin two-syllable surnames still met in Vietnam.
COMPOUND_SURNAMES = frozenset(
    {
        "ton nu",
        "ton that",
        "nguyen phuc",
        "nguyen huu",  # lineage name in some families; only taken with >= 4 words
        "au duong",
        "tu ma",
        "gia cat",
        "thuong quan",
        "hoang phu",
    }
)
# "nguyen huu" is very often surname + ordinary middle name; require a longer name.
_LONG_ONLY = frozenset({"nguyen huu"})

_ALLOWED_PUNCT = frozenset("'-. ")


@dataclass(frozen=True, slots=True)
class NameParts:
    full: str
    surname: str
    middle: str
    given: str
    folded_full: str
    folded_surname: str
    folded_given: str


# Surnames, given names and their pairs repeat across millions of names: fold each once.
_fold_part = lru_cache(maxsize=16384)(fold)


def _split(words: list[str]) -> tuple[str, str, str]:
    if len(words) == 1:
        return "", "", words[0]
    take = 1
    if len(words) >= 3:
        two = _fold_part(" ".join(words[:2]))
        if two in COMPOUND_SURNAMES and (two not in _LONG_ONLY or len(words) >= 4):
            take = 2
    surname = " ".join(words[:take])
    given = words[-1]
    middle = " ".join(words[take:-1])
    return surname, middle, given


def _parse(raw: str) -> tuple[NameParts | None, tuple[Issue, ...]]:
    return _parse_at(raw, 0)


@lru_cache(maxsize=131072)
def _parse_at(raw: str, restarts: int) -> tuple[NameParts | None, tuple[Issue, ...]]:
    issues: list[Issue] = []
    # Separators that legacy systems put between parts.
    raw = raw.replace(",", " ").replace("_", " ").replace("/", " ")
    text, enc = repair_mojibake(clean_whitespace(raw))
    if enc is not None:
        issues.append(warning("full_name", "encoding_repaired", f"name was mis-decoded {enc}"))
    elif looks_mis_decoded(text):
        issues.append(
            warning("full_name", "encoding_suspect", "name looks mis-decoded, not repaired")
        )
    text = canonical_text(text)
    if not text:
        return None, (*issues, error("full_name", "name_empty", "name is empty"))
    if text.replace(" ", "").isalpha():  # the usual case: letters and single spaces
        bad: list[str] = []
    elif not any(ch.isalpha() for ch in text):
        return None, (*issues, error("full_name", "name_not_letters", "name has no letters"))
    else:
        bad = [ch for ch in text if not (ch.isalpha() or ch in _ALLOWED_PUNCT)]
    if bad:
        if any(ch.isdecimal() for ch in bad):  # "¹" in mojibake is not a digit
            return None, (*issues, error("full_name", "name_has_digits", "name contains digits"))
        issues.append(
            warning("full_name", "name_odd_characters", f"unexpected characters {''.join(bad)!r}")
        )
        # Start over on the cleaned text so the result is a fixed point (idempotence):
        # a second pass must not find anything left to repair.
        cleaned = "".join(ch if ch not in bad else " " for ch in text)
        parts, more = _parse(cleaned)
        return parts, (*issues, *more)
    # Before title case: a split word's lower-case rest ("L an") tells it from an initial.
    words, splits, joins = respace(text.split(" "))
    if splits or joins:
        text = " ".join(words)
        if joins:
            issues.append(
                warning(
                    "full_name",
                    "name_syllables_joined",
                    f"{joins} syllable(s) written in two pieces joined",
                )
            )
        if splits:
            issues.append(
                warning(
                    "full_name",
                    "name_syllables_split",
                    f"{splits} word(s) of syllables written together split",
                )
            )
    text = title_case(text)
    if restarts < 2 and repair_mojibake(text)[1] is not None:
        # Title case made mis-decoded text out of text that was not ("ªÏ" -> "ªï",
        # TCVN3 for "êù"): start over on it, so that a second pass finds nothing left
        # to repair (idempotence; found by tests/fuzz).
        parts, more = _parse_at(text, restarts + 1)
        return parts, (*issues, *more)
    words = text.split(" ")
    surname, middle, given = _split(words)
    if len(words) == 1:
        issues.append(warning("full_name", "name_single_word", "name has a single word"))
    parts = NameParts(
        full=text,
        surname=surname,
        middle=middle,
        given=given,
        # Equal to fold(text): folding works character by character and never crosses
        # the single spaces between words (a test holds the two equal).
        folded_full=" ".join(map(_fold_part, words)),
        folded_surname=_fold_part(surname),
        folded_given=_fold_part(given),
    )
    return parts, tuple(issues)


def parse_name(value: object) -> tuple[NameParts | None, list[Issue]]:
    """Canonical name parts (NFC, new-style tones, title case) and issues.

    Errors (``name_empty``, ``name_not_letters``, ``name_has_digits``) mean no usable
    name; ``None`` is returned with them. Issues are reported on field ``full_name``.
    """
    if value is None:
        return None, [error("full_name", "name_empty", "name is missing")]
    raw = str(value)
    if len(raw) > 300:
        return None, [error("full_name", "name_too_long", "name is longer than 300 characters")]
    parts, issues = _parse(raw)
    return parts, list(issues)


def standardize_name(value: object, field: str = "full_name") -> tuple[str | None, list[Issue]]:
    """The canonical full name only, issues re-labelled with ``field``."""
    parts, issues = parse_name(value)
    if field != "full_name":
        issues = [Issue(field, i.code, i.severity, i.message) for i in issues]
    return (parts.full if parts else None), issues
