"""Address standardizer: free-text Vietnamese addresses -> 2025 administrative units.

Reads both ways of writing: legacy (street, commune, district, province) and 2025 (street,
commune, province), with the usual abbreviations (``TP.HCM``, ``Q.1``, ``P.``, ``F2``, ``TT.``),
with or without diacritics, NFC or NFD. Matching is exact on folded names, scoped by the unit
above (province -> district -> commune), read right to left; no fuzzy matching, so a result is
either backed by the reference data or reported as unresolved.

Split former communes: ``vietnam-provinces`` has no street- or hamlet-level data (no street
lists, no boundaries), so nothing offline can decide which new commune a street of a split
commune now belongs to. Such addresses are always reported ``ambiguous`` with all candidates;
a steward or a later source with the 2025 commune settles them.

Guarantees callers may rely on:

* never raises; problems are :class:`~mdm.standardize.issues.Issue` warnings;
* idempotent: the output dict fed back in gives an equal dict, and the text
  ``street, commune_name, province_name`` gives the same 2025 codes;
* every code is a zero-padded string of the scheme its field names (``legacy_*`` = pre-2025).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from mdm.standardize.issues import Issue, warning
from mdm.standardize.units import (
    FOLD_TABLE,
    WORD_EQUIV,
    NameIndex,
    Unit,
    UnitIndex,
    accent_key,
    get_index,
)

__all__ = ["format_address", "standardize_address", "standardize_address_compact"]

OUTPUT_KEYS = (
    "province_code",
    "province_name",
    "commune_code",
    "commune_name",
    "street",
    "legacy_province_code",
    "legacy_province_name",
    "legacy_district_code",
    "legacy_district_name",
    "legacy_commune_code",
    "legacy_commune_name",
    "scheme_written",
    "ambiguous",
    "candidates",
)

_CODE_KEYS = ("province_code", "commune_code", "legacy_province_code", "legacy_commune_code")

# Unit-type words as written before a name (folded), and the unit types each may denote.
_COMMUNE_TYPES = frozenset({"phường", "xã", "thị trấn", "đặc khu"})
_MARKERS: dict[str, frozenset[str]] = {
    "phuong": frozenset({"phường"}),
    "p": frozenset({"phường"}),
    "f": frozenset({"phường"}),
    "xa": frozenset({"xã"}),
    "x": frozenset({"xã"}),
    "thi tran": frozenset({"thị trấn"}),
    "tt": frozenset({"thị trấn"}),
    "dac khu": frozenset({"đặc khu"}),
    "quan": frozenset({"quận"}),
    "q": frozenset({"quận"}),
    "huyen": frozenset({"huyện"}),
    "h": frozenset({"huyện"}),
    "thi xa": frozenset({"thị xã"}),
    "tx": frozenset({"thị xã"}),
    "thanh pho": frozenset({"thành phố", "thành phố trung ương"}),
    "tp": frozenset({"thành phố", "thành phố trung ương"}),
    "t p": frozenset({"thành phố", "thành phố trung ương"}),
    "tinh": frozenset({"tỉnh"}),
    "t": frozenset({"tỉnh"}),
}
_LEVEL_TYPES = {
    "commune": _COMMUNE_TYPES,
    "district": frozenset({"quận", "huyện", "thị xã", "thành phố"}),
    "province": frozenset({"tỉnh", "thành phố trung ương"}),
}
_TRAILING_NOISE = frozenset({"viet nam", "vietnam", "vn"})

_STREET_STRIP = " \t\r\n,;|.-–—/\\:"
_TOKEN_RE = re.compile(r"[,;|\n]|[^\s,;|\n.\-–—/\\()\[\]:#\"]+")
_GLUED_RE = re.compile(r"^(q|p|f|x|phuong|quan)(\d{1,3})$")
_MAX_WORDS = 6


class _Toks:
    """Tokens as parallel lists (cheaper than one object per token on the hot path)."""

    __slots__ = ("ends", "floor_hit", "folds", "n", "segs", "starts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.folds: list[str] = []
        self.segs: list[int] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.n = 0
        # set when a reading looked left of token 0 (see ``_read``)
        self.floor_hit = False


@dataclass(frozen=True, slots=True)
class _Match:
    start: int  # first token consumed, marker included
    units: tuple[Unit, ...]
    has_marker: bool


_SEPARATORS = frozenset(",;|\n")
_FOLD_CACHE: dict[str, tuple[str, ...]] = {}


def _fold_token(raw: str) -> tuple[str, ...]:
    """Folded form of one raw token: (), (word,), or (type letter, number, cut) if glued."""
    f = raw.translate(FOLD_TABLE)
    if not f:
        return ()
    if f[-1].isdigit():
        if f.isdecimal():  # not isdigit: "¹" is a digit that int() cannot read
            return (str(int(f)),)
        g = _GLUED_RE.match(f)
        if g and len(f) == len(raw):  # "Q1", "P12", "F2": a type letter glued to a number
            return (g.group(1), str(int(g.group(2))), str(len(g.group(1))))
    return (WORD_EQUIV.get(f, f),)


def _tokenize(text: str) -> _Toks:
    # Words repeat across millions of addresses: fold each distinct word once.
    cache = _FOLD_CACHE
    if len(cache) > 500_000:
        cache.clear()
    toks = _Toks(text)
    folds, segs, starts, ends = toks.folds, toks.segs, toks.starts, toks.ends
    seg = 0
    pos = 0
    find = text.find
    for raw in _TOKEN_RE.findall(text):
        start = find(raw, pos)
        pos = start + len(raw)
        if raw in _SEPARATORS:
            seg += 1
            continue
        folded = cache.get(raw)
        if folded is None:
            folded = cache[raw] = _fold_token(raw)
        if len(folded) == 1:
            folds.append(folded[0])
            segs.append(seg)
            starts.append(start)
            ends.append(pos)
        elif folded:
            cut = start + int(folded[2])
            folds += folded[:2]
            segs += (seg, seg)
            starts += (start, cut)
            ends += (cut, pos)
    toks.n = len(toks.folds)
    return toks


def _marker_before(toks: _Toks, i: int, seg: int) -> tuple[int, frozenset[str]] | None:
    """The type word(s) ending just before token ``i`` in the same segment, if any."""
    if i >= 2 and toks.segs[i - 2] == seg:
        two = toks.folds[i - 2] + " " + toks.folds[i - 1]
        if two in _MARKERS:
            return i - 2, _MARKERS[two]
    if i >= 1 and toks.segs[i - 1] == seg and toks.folds[i - 1] in _MARKERS:
        return i - 1, _MARKERS[toks.folds[i - 1]]
    return None


def _match(toks: _Toks, end: int, index: NameIndex | None, level: str) -> _Match | None:
    """Best name of ``index`` ending at token ``end`` (exclusive), with its type word.

    Prefers a match introduced by a type word (or starting its comma segment), then the
    longest. A type word of another level rejects the match ("Phường Hoàn Kiếm" is no
    district); a bare number needs a type word ("12" alone is a house number).
    """
    if not index:
        return None
    if end <= 0:
        toks.floor_hit = True
        return None
    seg = toks.segs[end - 1]
    best: tuple[tuple[bool, int], _Match] | None = None
    key = ""
    for length in range(1, min(_MAX_WORDS, end) + 1):
        i = end - length
        if toks.segs[i] != seg:
            break
        key = toks.folds[i] + " " + key if key else toks.folds[i]
        units = index.get(key)
        if not units:
            continue
        marker = _marker_before(toks, i, seg)
        start = i
        if marker is not None:
            start, types = marker
            if not types & _LEVEL_TYPES[level]:
                continue
            if len(units) > 1:  # (one unit is kept either way: an empty filter keeps all)
                exact = tuple(u for u in units if u.type in types)
                if exact:
                    units = exact
        elif key.isdigit() and not (
            (i == 0 or toks.segs[i - 1] != seg) and (end == toks.n or toks.segs[end] != seg)
        ):
            continue  # a bare number is a unit only as a whole comma segment: "5, 11, TP.HCM"
        if len(units) > 1:
            ak = accent_key(toks.text[toks.starts[i] : toks.ends[end - 1]])
            same = tuple(u for u in units if u.akey == ak)
            if same:
                units = same
        aligned = marker is not None or i == 0 or toks.segs[i - 1] != seg
        rank = (aligned, length)
        if best is None or rank > best[0]:
            best = (rank, _Match(start, units, marker is not None))
    return best[1] if best else None


def _seg_end_before(toks: _Toks, end: int) -> int:
    """Token index where the comma segment before the one ending at ``end`` ends."""
    if end <= 0:
        toks.floor_hit = True
        return 0
    seg = toks.segs[end - 1]
    i = end
    while i > 0 and toks.segs[i - 1] == seg:
        i -= 1
    if i == 0:
        toks.floor_hit = True
    return i


# ---------------------------------------------------------------------------- results


def _name(unit: Unit | None) -> str | None:
    return unit.name if unit else None


def _code(unit: Unit | None) -> str | None:
    return unit.code if unit else None


def _build(
    ix: UnitIndex,
    field: str,
    street: str | None,
    *,
    legacy_commune: Unit | None = None,
    legacy_district: Unit | None = None,
    legacy_province: Unit | None = None,
    commune: Unit | None = None,
    province: Unit | None = None,
    scheme: str | None = None,
    unresolved: Sequence[Unit] = (),
) -> tuple[dict[str, Any], list[Issue]]:
    """The one place an output dict is made, so text and dict inputs agree exactly."""
    issues: list[Issue] = []
    candidates: list[dict[str, str]] = []
    ambiguous = False
    if legacy_commune is not None:
        legacy_district = ix.legacy_districts[legacy_commune.parent_code or ""]
        scheme = "pre2025"
        targets = ix.crosswalk.get(legacy_commune.code, ())
        if len(targets) == 1:
            commune = ix.communes[targets[0]]
        elif len(targets) > 1:
            ambiguous = True
            units = [ix.communes[t] for t in targets]
            candidates = [{"commune_code": u.code, "commune_name": u.name} for u in units]
            province = ix.provinces[units[0].parent_code or ""]
            issues.append(
                warning(
                    field,
                    "address_ambiguous",
                    f"{legacy_commune.name} was split among {len(units)} communes in 2025; "
                    "the street cannot decide which one",
                )
            )
        else:
            issues.append(
                warning(
                    field,
                    "address_unresolved",
                    f"{legacy_commune.name} ({legacy_commune.code}) has no reviewed 2025 successor",
                )
            )
    if legacy_district is not None:
        legacy_province = ix.legacy_provinces[legacy_district.parent_code or ""]
        scheme = "pre2025"
        if legacy_commune is None:
            island = ix.district_to_commune.get(legacy_district.code)
            if island is not None:
                commune = ix.communes[island]
            elif unresolved:
                names = ", ".join(u.name for u in unresolved)
                issues.append(
                    warning(field, "address_unresolved", f"commune name fits several: {names}")
                )
            else:
                issues.append(
                    warning(
                        field,
                        "address_unresolved",
                        f"no commune of {legacy_district.name} found in the address",
                    )
                )
    if legacy_province is not None:
        scheme = "pre2025"
        if province is None and commune is None:
            province = ix.provinces.get(ix.legacy_province_to_new.get(legacy_province.code, ""))
            if legacy_district is None:
                issues.append(warning(field, "address_unresolved", "no commune found"))
    if commune is not None:
        province = ix.provinces[commune.parent_code or ""]
        if scheme is None:
            scheme = "2025"
    elif province is not None and legacy_province is None:
        issues.append(warning(field, "address_unresolved", "no commune found"))
    if province is None and not issues:
        issues.append(warning(field, "address_unresolved", "no administrative unit found"))
    return (
        {
            "province_code": _code(province),
            "province_name": _name(province),
            "commune_code": _code(commune),
            "commune_name": _name(commune),
            "street": street or None,
            "legacy_province_code": _code(legacy_province),
            "legacy_province_name": _name(legacy_province),
            "legacy_district_code": _code(legacy_district),
            "legacy_district_name": _name(legacy_district),
            "legacy_commune_code": _code(legacy_commune),
            "legacy_commune_name": _name(legacy_commune),
            "scheme_written": scheme,
            "ambiguous": ambiguous,
            "candidates": candidates,
        },
        issues,
    )


def _unique(units: Sequence[Unit]) -> Unit | None:
    """The one unit meant, or None. Legacy duplicates that the crosswalk sends to the same
    place (a ward and its re-formed code, see the override file) count as one: lowest code."""
    if len(units) == 1:
        return units[0]
    if units and units[0].scheme == "pre2025":
        ix = get_index()
        targets = {ix.crosswalk.get(u.code) for u in units}
        if len(targets) == 1 and None not in targets:
            return min(units, key=lambda u: u.code)
    return None


def _successors(ix: UnitIndex, district: Unit) -> set[str]:
    communes = ix.legacy_communes_by_district.get(district.code, {})
    return {t for units in communes.values() for u in units for t in ix.crosswalk.get(u.code, ())}


class _Reading(NamedTuple):
    """What ``_read`` found: units (``_build``'s keyword arguments) and where the street ends.

    ``units`` is ``None`` when no province is written (the caller then tries the whole-country
    reading). The street is ``text[:street_end]`` without its separators.
    """

    end: int  # tokens left after a trailing country name or postal code
    street_end: int
    units: dict[str, Any] | None


def _street(text: str, end: int) -> str | None:
    return text[:end].strip(_STREET_STRIP) or None


def _read(ix: UnitIndex, toks: _Toks) -> _Reading:
    """Right-to-left reading of the tokens; no dicts built, no issues raised.

    Every look at a token left of the first one (index 0) is recorded in ``toks.floor_hit``:
    when the tokens are only an address's tail, such a reading could change with the part
    cut off, so the caller must not reuse it for the whole text.
    """
    folds, segs, starts = toks.folds, toks.segs, toks.starts
    end = toks.n
    # country name or a postal code at the very end
    while end and (
        folds[end - 1] in ("vn", "vietnam")
        or (len(folds[end - 1]) >= 5 and folds[end - 1].isdigit())
    ):
        end -= 1
    if end < 2:
        toks.floor_hit = True  # the two-word check below would reach across the cut
    if end >= 2 and folds[end - 2] + " " + folds[end - 1] in _TRAILING_NOISE:
        end -= 2

    # province: longest known name or alias at the end
    lp: str | None = None
    np: str | None = None
    p_start = end
    for length in range(min(4, end), 0, -1):
        i = end - length
        if segs[i] != segs[end - 1]:
            continue
        key = " ".join(folds[i:end])
        hit = ix.province_keys.get(key)
        if hit is not None:
            lp, np = hit
            marker = _marker_before(toks, i, segs[i])
            p_start = marker[0] if marker and marker[1] & _LEVEL_TYPES["province"] else i
            break

    def at(i: int) -> int:
        return starts[i] if i > 0 else 0

    if lp is None and np is None:
        toks.floor_hit = True
        return _Reading(end, 0, None)

    legacy_scope: list[str] = []
    if lp is not None:
        legacy_scope.append(lp)
    new_p = np if np is not None else ix.legacy_province_to_new.get(lp or "")
    if np is not None:
        legacy_scope += [p for p in ix.new_province_sources.get(np, ()) if p != lp]

    # 1. legacy, three levels: commune, district, province
    district_only: tuple[_Match, Unit] | None = None
    for scope in legacy_scope:
        dm = _match(toks, p_start, ix.legacy_districts_by_province.get(scope), "district")
        if dm is None:
            continue
        name_clash: tuple[_Match, Unit] | None = None
        for d in dm.units:
            cm = _match(toks, dm.start, ix.legacy_communes_by_district.get(d.code), "commune")
            if cm is not None:
                if (c := _unique(cm.units)) is not None:
                    return _Reading(end, at(cm.start), {"legacy_commune": c})
                name_clash = name_clash or (cm, d)
        if name_clash is not None:
            # written without diacritics, the name fits several communes of the district
            cm, d = name_clash
            return _Reading(end, at(cm.start), {"legacy_district": d, "unresolved": cm.units})
        if district_only is None and (d1 := _unique(dm.units)) is not None:
            district_only = (dm, d1)
        if district_only is not None:
            break

    # 2. 2025: commune, province
    new_index = ix.communes_by_province.get(new_p or "")
    cm2 = _match(toks, p_start, new_index, "commune")
    if cm2 is not None and (c2 := _unique(cm2.units)) is not None:
        return _Reading(end, at(cm2.start), {"commune": c2})

    if district_only is not None:
        dm, d = district_only
        # "Phường Bàn Cờ, Quận 3, TP.HCM": a 2025 commune written with its old district
        cm = _match(toks, dm.start, new_index, "commune")
        if (
            cm is not None
            and cm.has_marker
            and (c := _unique(cm.units)) is not None
            and c.code in _successors(ix, d)
        ):
            return _Reading(end, at(cm.start), {"commune": c})
        return _Reading(end, at(dm.start), {"legacy_district": d})

    # 3. legacy commune without its district (also: a district name we do not know, e.g.
    #    "Quận 2" absorbed into Thủ Đức in 2021, skipped as one comma segment). Only with a
    #    type word: street names often equal ward names ("Phố Huế" vs Phường Phố Huế).
    ends = [p_start]
    skipped = _seg_end_before(toks, p_start)
    if 0 < skipped < p_start:
        ends.append(skipped)
    for e in ends:
        for scope in legacy_scope:
            cm3 = _match(toks, e, ix.legacy_communes_by_province.get(scope), "commune")
            if cm3 is not None and cm3.has_marker and (c3 := _unique(cm3.units)) is not None:
                return _Reading(end, at(cm3.start), {"legacy_commune": c3})
        if e != p_start:
            cm4 = _match(toks, e, new_index, "commune")
            if cm4 is not None and cm4.has_marker and (c4 := _unique(cm4.units)) is not None:
                return _Reading(end, at(cm4.start), {"commune": c4})

    if np is None and lp is not None:  # a name only the legacy scheme has
        return _Reading(end, at(p_start), {"legacy_province": ix.legacy_provinces[lp]})
    return _Reading(end, at(p_start), {"province": ix.provinces.get(new_p or "")})


def _parse(ix: UnitIndex, text: str, field: str) -> tuple[dict[str, Any], list[Issue]]:
    """The full reading of one (NFC) text; uncached."""
    toks = _tokenize(text)
    reading = _read(ix, toks)
    if reading.units is None:
        return _parse_without_province(ix, toks, reading.end, text, field)
    return _build(ix, field, _street(text, reading.street_end), **reading.units)


def _parse_without_province(
    ix: UnitIndex,
    toks: _Toks,
    end: int,
    text: str,
    field: str,
) -> tuple[dict[str, Any], list[Issue]]:
    """No province written: accept only a reading that the whole country makes unique."""
    found: list[tuple[int, Unit]] = []
    dm = _match(toks, end, ix.legacy_districts_all, "district")
    if dm is not None:
        for d in dm.units:
            cm = _match(toks, dm.start, ix.legacy_communes_by_district.get(d.code), "commune")
            if cm is not None and len(cm.units) == 1:
                found.append((cm.start, cm.units[0]))
    if len(found) == 1:
        start, c = found[0]
        return _build(
            ix, field, _street(text, toks.starts[start] if start > 0 else 0), legacy_commune=c
        )
    cm2 = _match(toks, end, ix.communes_all, "commune")
    if not found and cm2 is not None and (c2 := _unique(cm2.units)) is not None and cm2.has_marker:
        return _build(
            ix, field, _street(text, toks.starts[cm2.start] if cm2.start > 0 else 0), commune=c2
        )
    # What is left once a trailing country or postal code is cut off; the whole text when
    # nothing is left ("10000" alone): reading it again must give the same street.
    street = _street(text, toks.starts[end]) if 0 < end < toks.n else text.strip() or None
    return _build(ix, field, street)
    return _build(ix, field, street)


# ---------------------------------------------------------------------------- dict input


def _pad(value: Any, width: int) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    s = str(value).strip()
    return s.zfill(width) if s.isdigit() and len(s) <= width else None


def _from_codes(
    ix: UnitIndex, value: Mapping[str, Any], field: str
) -> tuple[dict[str, Any], list[Issue]] | None:
    """Rebuild from codes (our own output, or a source that already carries codes)."""
    street = value.get("street")
    street = str(street).strip() or None if street is not None else None
    lc = ix.legacy_communes.get(_pad(value.get("legacy_commune_code"), 5) or "")
    if lc is not None:
        return _build(ix, field, street, legacy_commune=lc)
    ld = ix.legacy_districts.get(_pad(value.get("legacy_district_code"), 3) or "")
    if ld is not None:
        return _build(ix, field, street, legacy_district=ld)
    c = ix.communes.get(_pad(value.get("commune_code"), 5) or "")
    if c is not None:
        return _build(ix, field, street, commune=c)
    lp = ix.legacy_provinces.get(_pad(value.get("legacy_province_code"), 2) or "")
    if lp is not None:
        return _build(ix, field, street, legacy_province=lp)
    p = ix.provinces.get(_pad(value.get("province_code"), 2) or "")
    if p is not None:
        return _build(ix, field, street, province=p)
    return None


# Field names source systems use for address parts, most specific first.
_PART_KEYS = (
    ("street", "address_line", "street_address", "so_nha", "duong"),
    ("commune", "ward", "commune_name", "xa", "phuong", "phuong_xa"),
    ("district", "quan_huyen", "huyen", "quan", "legacy_district_name"),
    ("province", "city", "province_name", "tinh", "tinh_thanh"),
)


def _text_from_parts(value: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for keys in _PART_KEYS:
        for k in keys:
            v = value.get(k)
            if v:
                parts.append(str(v))
                break
    if not parts and value.get("address"):
        parts.append(str(value["address"]))
    return ", ".join(parts)


# ---------------------------------------------------------------------------- public


# Legacy writing puts the commune, district and province in the last three comma segments,
# 2025 writing the commune and province in the last two. Those tails repeat across millions
# of addresses while the street before them (house number, hamlet) mostly does not, so the
# tail is read once and cached; the street is whatever precedes the units found in it.
_TAIL_SEGMENTS = (2, 3)
_OTHER_SEPARATORS = frozenset(";|\n")
_SEP_RE = re.compile(r"[,;|\n]")


def _cuts(text: str) -> tuple[int, ...]:
    """Start offsets of the last 2 and 3 comma segments, when a part precedes them."""
    if ";" in text or "|" in text or "\n" in text:
        seps = [m.start() for m in _SEP_RE.finditer(text)][::-1][:3]
        return tuple(seps[k - 1] + 1 for k in _TAIL_SEGMENTS if len(seps) >= k)
    parts = text.rsplit(",", 3)  # the common case: commas only
    if len(parts) < 3:
        return ()
    cut2 = len(text) - len(parts[-1]) - len(parts[-2]) - 1
    return (cut2,) if len(parts) == 3 else (cut2, cut2 - len(parts[-3]) - 1)


class _Resolved(NamedTuple):
    """One cached reading, in the two shapes callers want, built once; never mutated."""

    result: dict[str, Any]  # the full output dict with ``street`` None
    head: dict[str, Any]  # its non-None members before ``street``
    rest: dict[str, Any]  # ... and after it, but ``candidates`` (always last)
    empty: bool  # nothing but ``ambiguous``/``candidates`` is set
    issues: tuple[Issue, ...]


_ALWAYS_SET = frozenset({"ambiguous", "candidates"})


def _resolved(result: dict[str, Any], issues: list[Issue]) -> _Resolved:
    result["street"] = None
    # A tuple, not a list: callers copy it into a fresh list, and a cached dict holding only
    # strings, booleans and tuples drops out of the garbage collector's scans.
    result["candidates"] = tuple(result["candidates"])
    items = list(result.items())
    at = list(result).index("street")
    head = {k: v for k, v in items[:at] if v is not None}
    rest = {k: v for k, v in items[at + 1 :] if v is not None and k != "candidates"}
    empty = not head and rest.keys() <= _ALWAYS_SET
    return _Resolved(result, head, rest, empty, tuple(issues))


@lru_cache(maxsize=32768)
def _tail_reading(tail: str, field: str) -> tuple[int, _Resolved] | None:
    """``(street end within the tail, reading)`` for the last comma segments of an address.

    ``None`` when the reading looked further left than the tail (e.g. a district found at
    the tail's start: its commune may be in the part cut off). Otherwise the reading of the
    whole address is this one: ``_read`` inspects a token left of its start only through
    ``_match``/``_seg_end_before``, which record it, and tokens never span a separator.
    """
    ix = get_index()
    toks = _tokenize(tail)
    reading = _read(ix, toks)
    if reading.units is None or toks.floor_hit:
        return None
    return reading.street_end, _resolved(*_build(ix, field, None, **reading.units))


@lru_cache(maxsize=16384)
def _whole_text(text: str, field: str) -> tuple[str | None, _Resolved]:
    result, issues = _parse(get_index(), text, field)
    return result["street"], _resolved(result, issues)


def _resolve(text: str, field: str) -> tuple[str | None, _Resolved]:
    """``(street, shared reading)`` of a text; the tail cache first, then the whole text."""
    nfc = unicodedata.normalize("NFC", text)
    for cut in _cuts(nfc):
        hit = _tail_reading(nfc[cut:], field)
        if hit is not None:
            street_end, resolved = hit
            return _street(nfc, cut + street_end), resolved
    return _whole_text(nfc, field)


# Whole address strings also repeat (every member of a household, every record of a person),
# so the compact result of each (text, field) is kept ready, as a template copied per call.
# Bounded: at _COMPACT_MAX entries the cache is emptied and refills (measured ~650 bytes an
# entry plus its key text, so at most ~25 MiB); the tail cache below keeps the refill cheap.
_COMPACT_MAX = 32_768
_CompactEntry = tuple[dict[str, Any] | None, tuple[dict[str, str], ...], tuple[Issue, ...]]
_COMPACT_CACHE: dict[tuple[str, str], _CompactEntry] = {}


def standardize_address_compact(
    text: str, field: str = "address"
) -> tuple[dict[str, Any] | None, list[Issue]]:
    """``standardize_address(text)`` with its ``None`` members left out, as records store it.

    ``None`` when nothing but ``ambiguous``/``candidates`` would be left. Never raises.
    """
    try:
        hit = _COMPACT_CACHE.get((text, field)) if type(text) is str else None
        if hit is None:
            hit = _compact_template(text, field)
            if hit is None:
                return None, []
        template, candidates, issues = hit
        if template is None:
            return None, list(issues)
        out = template.copy()  # values are str/bool, shared safely; the list is made fresh
        out["candidates"] = [dict(c) for c in candidates] if candidates else []  # last key
        return out, list(issues)
    except Exception as exc:  # the contract: standardizers never raise
        return None, [warning(field, "address_error", f"could not standardize: {exc!r}")]


def _compact_template(text: str, field: str) -> _CompactEntry | None:
    """The cached compact result of ``text``; ``None`` for blank text (not cached).

    The template holds every member but ``candidates`` (added last by the caller), so it
    holds only strings and booleans: the garbage collector does not track it.
    """
    if not text.strip():
        return None
    street, r = _resolve(text, field)
    entry: _CompactEntry
    if r.empty and street is None:
        entry = (None, (), r.issues)
    else:
        out = r.head.copy()
        if street is not None:
            out["street"] = street
        out.update(r.rest)
        entry = (out, r.result["candidates"], r.issues)
    if len(_COMPACT_CACHE) >= _COMPACT_MAX:
        _COMPACT_CACHE.clear()
    _COMPACT_CACHE[text, field] = entry
    return entry


def parse_uncached(text: str, field: str = "address") -> tuple[dict[str, Any], list[Issue]]:
    """The full reading of ``text`` without any cache (benchmarks, tests of the cache)."""
    return _parse(get_index(), unicodedata.normalize("NFC", text), field)


def clear_caches() -> None:
    """Forget every cached reading (benchmarks measure cold runs with it)."""
    _tail_reading.cache_clear()
    _whole_text.cache_clear()
    _FOLD_CACHE.clear()
    _COMPACT_CACHE.clear()


def standardize_address(
    value: str | Mapping[str, Any] | None, field: str = "address"
) -> tuple[dict[str, Any] | None, list[Issue]]:
    """Resolve an address to 2025 units, keeping the legacy units it was written with.

    Returns ``(None, [])`` for empty input. Repeated texts are served from a cache (the same
    addresses recur millions of times); the returned dict is always a fresh copy.
    """
    try:
        if value is None:
            return None, []
        if isinstance(value, Mapping):
            ix = get_index()
            if any(k in value for k in _CODE_KEYS):
                rebuilt = _from_codes(ix, value, field)
                if rebuilt is not None:
                    return rebuilt
                names = [value.get(k) for k in ("street", "commune_name", "province_name")]
                text = ", ".join(str(n) for n in names if n)
            else:
                text = _text_from_parts(value)
        elif isinstance(value, str):
            text = value
        else:
            return None, [warning(field, "address_invalid", f"not text: {type(value).__name__}")]
        if not text.strip():
            return None, []
        street, r = _resolve(text, field)
        out = r.result.copy()
        out["street"] = street
        candidates = out["candidates"]
        out["candidates"] = [dict(c) for c in candidates] if candidates else []
        return out, list(r.issues)
    except Exception as exc:  # the contract: standardizers never raise
        return None, [warning(field, "address_error", f"could not standardize: {exc!r}")]


def format_address(result: Mapping[str, Any]) -> str:
    """Text form of a result; standardizing it again gives the same codes.

    The 2025 form ``street, commune, province`` when the 2025 commune is known. Otherwise
    (split commune, unresolved commune) no 2025 form exists, and the legacy units written
    are kept instead: dropping them would let a street that happens to carry a unit name
    ("Phố Huế") be read as the commune next time.
    """
    if result.get("commune_name") or not result.get("legacy_province_name"):
        keys: tuple[str, ...] = ("street", "commune_name", "province_name")
    else:
        keys = ("street", "legacy_commune_name", "legacy_district_name", "legacy_province_name")
    return ", ".join(str(result[k]) for k in keys if result.get(k))
