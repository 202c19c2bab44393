"""Vietnamese syllables: the closed inventory, and words of a name written together or apart.

Vietnamese is written in a closed set of syllables, one a word. Legacy records run two
of a name's syllables together (``Minhtrang`` for ``Minh Trang``, ``NGUYENVANAN``) or
split one (``Ng uyễn``); the same person's records then disagree on the given name.

The inventory (``data/vi_syllables.txt``, built by ``scripts/build_vi_syllables.py``
from the phonotactics: onsets x rhymes x tones in the standard spelling) says what a
syllable is; a name prior (``data/vi_name_syllables.txt``: each name syllable's rough
share in personal names, as a name's first syllable and after it) says which syllables
names are made of.

* A word that is a syllable is never touched (``Nguyễn``, ``Khuyến``, ``Hoàng``).
* :func:`split_word` splits a word that is not into two to four syllables, and only
  when every part is a name syllable, no part repeats the one before (``Vi|vi|an``),
  and that reading is the clearly best one: its prior at least ``RATIO`` times that of
  any other reading into syllables (``Hoangan`` reads as ``Hoàng An`` or ``Hoa Ngân``:
  left alone). A syllable weighs as a surname only at the start of a name
  (``HOANGUYEN`` after a surname: ``Hoang Uyen``, not ``Hoa Nguyen``). Tone and vowel
  marks constrain the parts (``Thịtrang``: ``Thị Trang``): a name written with marks
  is read as written, one without any on folded syllables (``NGUYENVANAN``). Foreign
  names do not split into name syllables (``Maria``, ``John``, ``Smith``, ``Anna``).
* :func:`join_pair` joins two neighbouring words into one name syllable when at least
  one of them is no syllable (``Ng uyễn``, ``Tr ang``) and no other join competes for
  them; never two syllables (``Nguy ễn`` stays), and never a one-letter word onto a
  name syllable (``Lê V An``: ``V`` is likely an initial) unless the case shows one
  word (``L an``).

Lookups do not depend on where the tone mark sits (``Hoà``/``Hòa``) nor on case.
"""

from __future__ import annotations

import hashlib
import itertools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

from mdm.standardize.text import TONE_MARKS, canonical_tones, fold, title_case

__all__ = [
    "OTHER_TONE",
    "RATIO",
    "data_version",
    "is_name_syllable",
    "is_syllable",
    "join_pair",
    "respace",
    "split_word",
]

#: How much likelier than any other reading a split must be to be taken.
RATIO = 10.0
#: The share of a name syllable's weight a marked syllable of another tone gets.
OTHER_TONE = 0.1
_MAX_PARTS = 4
_MAX_LEN = 7  # nghiêng, khuyếch
# Letters of the Vietnamese alphabet once folded (no f j w z).
_FOLDED_LETTERS = frozenset("abcdeghiklmnopqrstuvxy")
_TONE_TABLE = {ord(m): None for m in TONE_MARKS}


Weights = tuple[float, float]  # (at the start of a name, after its first syllable)


@dataclass(frozen=True, slots=True)
class _Tables:
    toned: frozenset[str]  # as the file writes them (new-style tone placement)
    keys: frozenset[str]  # placement-free: the syllable without its tone, then the tone
    folded: frozenset[str]
    prior_keys: dict[str, Weights]
    prior_folded: dict[str, Weights]
    version: str


def _read(name: str) -> tuple[list[str], bytes]:
    raw = resources.files("mdm.standardize").joinpath("data", name).read_bytes()
    lines = [ln for ln in raw.decode("utf-8").splitlines() if ln and not ln.startswith("#")]
    return lines, raw


def _key(low: str) -> str | None:
    """``low`` (lower case) without its tone mark, followed by the mark: the same for
    every placement of the mark and for NFC and NFD. ``None`` with two marks or more."""
    nfd = unicodedata.normalize("NFD", low)
    tones = [ch for ch in nfd if ch in TONE_MARKS]
    if len(tones) > 1:
        return None
    return unicodedata.normalize("NFC", nfd.translate(_TONE_TABLE)) + "".join(tones)


@cache
def _tables() -> _Tables:
    syllables, raw_inv = _read("vi_syllables.txt")
    prior_lines, raw_prior = _read("vi_name_syllables.txt")
    keys = frozenset(k for s in syllables if (k := _key(s)) is not None)
    prior_keys: dict[str, Weights] = {}
    prior_folded: dict[str, Weights] = {}
    for line in prior_lines:
        syl, first, inner = line.split()
        key = _key(syl)
        if key is None or key not in keys:
            raise ValueError(f"name syllable {syl!r} is not in the inventory")
        prior_keys[key] = (float(first), float(inner))
        f0, i0 = prior_folded.get(fold(syl), (0.0, 0.0))
        prior_folded[fold(syl)] = (f0 + float(first), i0 + float(inner))
    digest = hashlib.sha256(raw_inv + b"\0" + raw_prior).hexdigest()[:12]
    return _Tables(
        toned=frozenset(syllables),
        keys=keys,
        folded=frozenset(fold(s) for s in syllables),
        prior_keys=prior_keys,
        prior_folded=prior_folded,
        version=f"vi_syllables {digest}",
    )


def data_version() -> str:
    """Identifies the inventory and the name prior (a hash of both files)."""
    return _tables().version


def _valid(low: str, marked: bool) -> bool:
    """``low`` (lower case, NFC) is a syllable: as written when the name it comes from
    carries marks, on its folded form when that name has none."""
    t = _tables()
    if not marked:
        return low in t.folded
    if low in t.toned:
        return True
    key = _key(low)
    return key is not None and key in t.keys


_NONE: Weights = (0.0, 0.0)


def _weights(low: str, marked: bool) -> Weights:
    """The name prior of a syllable; 0 for one names are not made of. A marked syllable
    the prior lacks with its tone (``Huyến``, rarer than ``Huyền``) gets ``OTHER_TONE``
    of the weight of its folded form; one without any mark in a name written with marks
    (``le``: not ``Lê``) gets none."""
    t = _tables()
    if not marked:
        return t.prior_folded.get(low, _NONE)
    key = _key(low)
    if key is None:
        return _NONE
    found = t.prior_keys.get(key)
    if found is not None or low.isascii():
        return found or _NONE
    first, inner = t.prior_folded.get(fold(low), _NONE)
    return OTHER_TONE * first, OTHER_TONE * inner


@lru_cache(maxsize=65536)
def is_syllable(word: str) -> bool:
    """True when ``word`` (any case, NFC or NFD, any tone placement) is a Vietnamese
    syllable; a word without any mark counts when some syllable folds to it."""
    low = unicodedata.normalize("NFC", word.lower())
    return _valid(low, not low.isascii())


def is_name_syllable(word: str) -> bool:
    """True when ``word`` is a syllable Vietnamese personal names are made of."""
    low = unicodedata.normalize("NFC", word.lower())
    return _weights(low, not low.isascii())[0] > 0.0


def _readings(low: str, marked: bool, first: bool) -> list[tuple[float, tuple[str, ...]]]:
    """Every reading of ``low`` as 2 to ``_MAX_PARTS`` syllables, with its prior: the
    product of its parts' weights (a part names are not made of weighs 1e-9), the first
    part weighed as a name's first syllable when ``first``."""
    out: list[tuple[float, tuple[str, ...]]] = []
    n = len(low)

    def walk(start: int, parts: tuple[str, ...], score: float) -> None:
        if start == n:
            if len(parts) > 1:
                out.append((score, parts))
            return
        if len(parts) == _MAX_PARTS:
            return
        at = 0 if first and not parts else 1
        for end in range(start + 1, min(n, start + _MAX_LEN) + 1):
            piece = low[start:end]
            if _valid(piece, marked):
                weight = _weights(piece, marked)[at]
                walk(end, (*parts, piece), score * (weight if weight > 0.0 else 1e-9))

    walk(0, (), 1.0)
    return out


@lru_cache(maxsize=16384)
def split_word(word: str, marked: bool | None = None, first: bool = True) -> tuple[str, ...] | None:
    """The name syllables a run-together ``word`` is made of (title case, canonical tone
    placement), or ``None``: ``word`` is a syllable, not Vietnamese, or not clearly one
    reading (see the module's docstring).

    ``marked`` says whether the name the word comes from is written with marks (default:
    whether the word is): then the parts must be syllables as written (``Minhtrang``
    in ``Nguyễn Thị Minhtrang``: ``minh`` and ``trang`` without marks), else folded
    ones (``NGUYENVANAN``). ``first``: the word starts the name (may hold the surname)."""
    if not word.isalpha() or is_syllable(word) or len(word) > _MAX_PARTS * _MAX_LEN:
        return None
    low = unicodedata.normalize("NFC", word.lower())
    if any(unicodedata.combining(ch) for ch in low) or not _FOLDED_LETTERS.issuperset(fold(low)):
        return None
    if marked is None or not low.isascii():
        marked = not low.isascii()
    readings = _readings(low, marked, first)
    if not readings:
        return None
    readings.sort(key=lambda r: r[0], reverse=True)
    best_score, best = readings[0]
    if len(readings) > 1 and best_score < RATIO * readings[1][0]:
        return None
    if not all(_weights(p, marked)[0 if first and i == 0 else 1] > 0.0 for i, p in enumerate(best)):
        return None  # some part is no name syllable
    # no reduplication (Vi Vi An: a foreign name); Thanh Thành is two names
    same = (lambda a, b: a == b) if marked else (lambda a, b: fold(a) == fold(b))
    if any(same(a, b) for a, b in itertools.pairwise(best)):
        return None
    return tuple(canonical_tones(title_case(p)) for p in best)


@lru_cache(maxsize=16384)
def _join_candidate(left: str, right: str) -> str | None:
    """``left`` + ``right`` (title case) when it is a name syllable and at least one of
    the two is no syllable."""
    if not (left.isalpha() and right.isalpha()):
        return None
    if is_syllable(left) and is_syllable(right):
        return None
    word = canonical_tones(title_case(left + right.lower()))
    return word if is_name_syllable(word) else None


@lru_cache(maxsize=16384)
def join_pair(left: str, right: str) -> str | None:
    """``left`` and ``right`` as the one name syllable they were split from (title case),
    or ``None`` (see the module's docstring).

    A one-letter word beside a name syllable is more likely an initial (``Lê V An``)
    than a piece of a word, unless the case says the two were one word: an upper-case
    letter followed by a lower-case rest (``Trần Thị L an``)."""
    word = _join_candidate(left, right)
    if word is None:
        return None
    continued = left[0].isupper() and right[0].islower()
    if len(left) == 1 and not is_syllable(left) and is_name_syllable(right) and not continued:
        return None
    if len(right) == 1 and not is_syllable(right) and is_name_syllable(left):
        return None
    return word


def respace(words: Sequence[str]) -> tuple[list[str], int, int]:
    """``words`` (one name) with split syllables joined and run-together ones split; and
    how many words were split and how many pairs joined. Repeated until nothing changes,
    so the result is a fixed point (each step leaves fewer words that are not
    syllables). A name with a mark anywhere is read as written (:func:`split_word`)."""
    out = list(words)
    if all(map(is_syllable, out)):  # the usual case: a set lookup a word
        return out, 0, 0
    marked = not all(w.isascii() for w in out)
    splits = joins = 0
    while True:
        changed = False
        # A join is taken when no neighbouring pair could be joined too (the candidates,
        # before the one-letter rule: which rule applies depends on case, and a second
        # pass sees the words title-cased).
        pairs = [join_pair(a, b) for a, b in itertools.pairwise(out)]
        rivals = [_join_candidate(a, b) for a, b in itertools.pairwise(out)]
        joined: list[str] = []
        i = 0
        while i < len(out):
            word = pairs[i] if i < len(pairs) else None
            if (
                word is not None
                and (i == 0 or rivals[i - 1] is None)
                and (i + 1 >= len(rivals) or rivals[i + 1] is None)
            ):
                joined.append(word)
                joins += 1
                changed = True
                i += 2
            else:
                joined.append(out[i])
                i += 1
        out = []
        for i, w in enumerate(joined):
            parts = split_word(w, marked, i == 0)
            if parts is None:
                out.append(w)
            else:
                out.extend(parts)
                splits += 1
                changed = True
        if not changed:
            return out, splits, joins
