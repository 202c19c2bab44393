"""Build the Vietnamese syllable inventory and the name-syllable prior the name standardizer
ships (``src/mdm/standardize/data/vi_syllables.txt`` and ``vi_name_syllables.txt``).

Vietnamese is written in a closed set of syllables: an onset, a rhyme and a tone. The
inventory is generated from that phonotactics, in the standard orthography:

* onsets ``b c ch d đ g gh gi h k kh l m n ng ngh nh p ph qu r s t th tr v x`` and none;
* the written rhymes below (open, nasal and checked: ``-p -t -c -ch``), with their medials;
* the spelling rules: ``k``, ``gh``, ``ngh`` before ``i y e ê`` (``iê`` included) and
  ``c``, ``g``, ``ng`` elsewhere; ``q`` only as ``qu`` with the medial ``u``/``o``
  written ``u`` (``qua``, ``quê``, ``quy``, ``quân``, ``quốc``); no medial after the
  labials ``b m p ph v`` nor after ``c``/``k``/``gh``; ``gi`` takes the rhymes that do
  not begin with ``i``/``y`` (``gia``, ``giữa``, ``giếng``) and ``gì``/``gìn``; with no
  onset ``iê`` is written ``yê`` (``yên``, ``yêu``);
* six tones, of which the checked rhymes take only sắc and nặng.

Each syllable is written lower-case, NFC, with its tone mark in the new-style place
(``hoà``, ``thuỷ``: :func:`mdm.standardize.text.canonical_tones`); the standardizer
looks syllables up whatever the placement. The generation over-produces a little (not
every onset takes every rhyme in the lexicon); the splitter only accepts splits into
syllables of the name prior, so that costs nothing.

The name prior is the frequency of each syllable in Vietnamese personal names, from the
generator's name lists (``mdm.synth.data``: surname shares, middle-name weights, a Zipf
over the given names) plus a floor for the common name syllables listed below (and the
matching features' ``COMMON_GIVEN_NAMES``). It decides between several valid splits.

    .venv/bin/python scripts/build_vi_syllables.py           # rewrite both files
    .venv/bin/python scripts/build_vi_syllables.py --check   # exit 1 if they are stale
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from mdm.matching.features import COMMON_GIVEN_NAMES
from mdm.standardize.text import canonical_tones, fold
from mdm.synth import data as synth

DATA = Path(__file__).resolve().parents[1] / "src" / "mdm" / "standardize" / "data"
INVENTORY = DATA / "vi_syllables.txt"
NAME_PRIOR = DATA / "vi_name_syllables.txt"

ONSETS = (
    "", "b", "c", "ch", "d", "đ", "g", "gh", "gi", "h", "k", "kh", "l", "m", "n",
    "ng", "ngh", "nh", "p", "ph", "qu", "r", "s", "t", "th", "tr", "v", "x",
)  # fmt: skip

# Written rhymes after an ordinary consonant (``t``, ``h``, ``l`` ...), without tone.
RHYMES_PLAIN = """
    a ai ao au ay am an ang anh ap at ac ach
    ăm ăn ăng ăp ăt ăc
    âu ây âm ân âng âp ât âc
    e eo em en eng ep et ec
    ê êu êm ên ênh êp êt êch
    i y ia iu im in inh ip it ich
    iêu iêm iên iêng iêp iêt iêc
    o oi om on ong op ot oc oong ooc
    ô ôi ôm ôn ông ôp ôt ôc
    ơ ơi ơm ơn ơp ơt
    u ua ui um un ung up ut uc
    uôi uôm uôn uông uôt uôc
    ư ưa ưi ưu ưm ưn ưng ưt ưc
    ươi ươu ươm ươn ương ươp ươt ươc
"""
# (An open ``iê`` is written ``ia``; ``oă``, ``uâ``, ``uyê`` always take a coda.)
RHYMES_MEDIAL = """
    oa oai oay oao oam oan oang oanh oap oat oac oach
    oăm oăn oăng oăt oăc
    oe oeo oen oet
    uây uân uâng uât
    uê uên uênh uêch
    uơ
    uy uya uyu uyn uynh uyp uyt uych
    uyên uyêt
"""
# Attested in the official unit names (vietnam-provinces) outside the rules above: the
# southern "quới", and spellings of minority-language place names. Taken as written.
ATTESTED = """
    quới quơn pơng lơng khơng dơng rơng ning ting ring ling púch biang kuin ơt bă moan
"""
CHECKED_CODAS = ("p", "t", "c", "ch")
LABIALS = frozenset({"b", "m", "p", "ph", "v"})
FRONT = ("i", "y", "e", "ê")  # the letters k, gh, ngh go before

GRAVE, ACUTE, TILDE, HOOK, DOT = "\u0300", "\u0301", "\u0303", "\u0309", "\u0323"
TONES = ("", GRAVE, ACUTE, HOOK, TILDE, DOT)
CHECKED_TONES = (ACUTE, DOT)

# Name syllables beyond the generator's lists (surnames, middle and given names in
# common use), each given the floor weight. Old-style tone placement is fine here.
EXTRA_NAME_SYLLABLES = """
    Âu Bạch Bế Cù Diệp Doãn Đàm Đào Đồng Giáp Hàn Hầu Hứa Khổng Khúc Khương La Lại
    Lạc Lò Lục Mạc Mã Nghiêm Nhan Ninh Ông Phí Phó Quan Sầm Tăng Thạch Thân Thi Tiêu
    Tôn Tống Trình Trương Từ Ung Vi Viên Đường Lư Lã Thiều Hàm Kha Mẫn Cấn Khâu Đại Lãng
    Ân Ánh Bằng Bách Bảo Bích Biên Bình Bội Cầm Cẩm Cảnh Cát Chánh Chấn Châu Chi
    Chiến Chinh Chính Chung Chương Công Cúc Cương Cường Dân Danh Diễm Diệm Diệp Diệu
    Doanh Dung Dũng Duy Duyên Dương Đan Đăng Đạo Đạt Điền Điệp Định Đình Đoan Đoàn
    Đông Độ Đức Gấm Gia Giang Giao Hạ Hà Hạc Hải Hân Hạnh Hằng Hào Hảo Hậu Hiền Hiên
    Hiển Hiếu Hiệp Hiệu Hoa Hoà Hoài Hoan Hoàn Hoạt Hoè Học Hồng Hợp Huân Huấn Huệ
    Hùng Hưng Hương Hường Hữu Huy Huyền Huỳnh Khải Khang Khanh Khánh Khiêm Khoa Khoái
    Khôi Khởi Khuê Khuyên Khuyến Kiên Kiệt Kiều Kim Kỳ Lai Lài Lam Lâm Lan Lành Lãm
    Lập Lễ Lệ Liên Liễu Linh Lĩnh Loan Lộc Lợi Long Luân Luận Lực Lụa Lương Lưu Ly
    Lý Mai Mạnh Mận Mến Miên Minh Mơ My Mỹ Nam Nga Ngà Ngân Ngần Ngát Nghi Nghị
    Nghĩa Ngọc Nguyên Nguyệt Nhã Nhài Nhạn Nhàn Nhân Nhẫn Nhất Nhật Nhi Nhị Nhiên
    Như Nhung Nụ Nương Oanh Pháp Phát Phấn Phi Phiên Phong Phổ Phú Phúc Phụng Phùng
    Phước Phương Phượng Quân Quang Quảng Quế Quốc Quý Quyên Quyền Quyết Quỳnh Sang
    Sáng Sâm Sen Sinh Sĩ Sỹ Sơn Sương Tài Tâm Tân Tấn Tạo Tập Thái Thắm Thắng Thanh
    Thành Thạnh Thảo Thế Thị Thiên Thiện Thiệu Thịnh Thìn Tho Thọ Thoa Thơ Thơm Thông
    Thu Thuần Thuận Thục Thương Thường Thuý Thuỳ Thuỷ Thuyết Thư Thy Tiên Tiến Tiệp
    Tín Tình Tĩnh Toàn Toản Tòng Trà Trác Trâm Trang Trí Trị Triết Triều Triệu Trinh
    Trọng Trúc Trực Trung Trường Tú Tư Tứ Tuấn Tuệ Tùng Tường Tươi Tuyền Tuyết Uy
    Uyên Ước Vạn Văn Vân Vĩ Viễn Việt Vinh Vĩnh Vịnh Võ Vũ Vương Vượng Vy Xinh Xuân
    Xương Yên Yến Ý
"""
# Kept out of the prior on purpose: short syllables that make up foreign given names
# (``Ma|ria``, ``An|na``, ``Ha|na``, ``Da|vy``, ``Y|an``) but are rare in Vietnamese names.
NOT_NAME_SYLLABLES = frozenset({"na", "ri", "sa", "li", "ni", "mi", "ti", "ma", "da", "la", "y"})
FLOOR = 0.0004  # weight of a listed name syllable the generator's lists lack
# A surname inside a name: some families give the mother's surname as a middle name
# (Nguyễn Trần Minh Anh). Rare against the surnames' share, hence a hundredth of it.
SURNAME_INSIDE = 0.01


def _spell(onset: str, rhyme: str) -> str | None:
    """The written syllable for ``onset`` + plain/medial ``rhyme``, or ``None`` when
    the orthography or the phonotactics rule the pair out."""
    medial = rhyme[:2] in ("oa", "oă", "oe", "uâ", "uê", "uơ", "uy")
    front = rhyme.startswith(FRONT)
    if onset == "qu":
        if medial and rhyme not in ("uya", "uyu"):  # qua, quăn, que, quân, quê, quy, quyên
            return "qu" + rhyme[1:]
        if rhyme in ("i", "it", "inh", "ôc"):  # old spellings qui, quít, quính; quốc
            return "qu" + rhyme
        return None
    if onset == "k" and not medial:
        # k before i y e ê; place names of the highlands also write it before a o ô ơ u
        # (Kon Tum, Bắc Kạn, Kông Chro)
        return onset + rhyme
    if onset in ("c", "k", "g", "gh", "ng", "ngh"):
        if medial and onset in ("c", "k", "gh", "ngh"):
            return None  # /kw/ is written qu
        hard = onset in ("gh", "ngh")
        if front != hard:
            return None
        if onset == "g" and rhyme.startswith("u") and medial:
            return None
        return onset + rhyme
    if onset in LABIALS and medial:
        return None
    if onset == "gi":
        if rhyme.startswith(("i", "y")):
            if rhyme == "i" or rhyme in ("im", "in", "inh", "ip", "it", "ich"):
                return "gi" + rhyme[1:]  # gì, gìn
            if rhyme.startswith("iê"):
                return "gi" + rhyme[1:]  # giếng, giết, giễu
            return None
        if medial:
            return None
        return "gi" + rhyme
    if onset == "":
        if rhyme.startswith("iê"):
            return "y" + rhyme[1:]  # yên, yêu, yết
        return rhyme
    return onset + rhyme


def _tone(syllable: str, tone: str) -> str:
    """``syllable`` with ``tone`` on its first vowel; canonical_tones moves it to the
    new-style place (it only needs one mark somewhere in the syllable)."""
    if not tone:
        return syllable
    nfd = unicodedata.normalize("NFD", syllable)
    for i, ch in enumerate(nfd):
        if ch in "aeiouyAEIOUY":
            # after the vowel's own quality mark, if any
            j = i + 1
            while j < len(nfd) and unicodedata.combining(nfd[j]):
                j += 1
            marked = nfd[:j] + tone + nfd[j:]
            return canonical_tones(unicodedata.normalize("NFC", marked))
    return syllable


def _rhymes() -> Iterator[str]:
    yield from RHYMES_PLAIN.split()
    yield from RHYMES_MEDIAL.split()


def syllables() -> list[str]:
    """Every syllable of the inventory, sorted (by code point)."""
    out: set[str] = set()
    for onset in ONSETS:
        for rhyme in _rhymes():
            written = _spell(onset, rhyme)
            if written is None:
                continue
            checked = rhyme.endswith(CHECKED_CODAS)
            for tone in CHECKED_TONES if checked else TONES:
                out.add(_tone(written, tone))
    out.update(ATTESTED.split())
    return sorted(out)


def _shares(pairs: list[tuple[str, float]]) -> dict[str, float]:
    total = sum(w for _, w in pairs)
    out: dict[str, float] = {}
    for name, w in pairs:
        for syl in name.split():
            key = canonical_tones(syl.lower())
            out[key] = out.get(key, 0.0) + w / total
    return out


def name_prior() -> dict[str, tuple[float, float]]:
    """Toned name syllable (lower case, new-style tones) -> two weights: ``any``, the mean
    of its share among surnames, middle names and given names, for the first syllable of
    a name; ``inner``, the mean among middle and given names (plus ``SURNAME_INSIDE``
    times the surname share), for the others: ``Nguyễn`` is a third of all surnames
    but rare after one. Listed ones at least ``FLOOR``."""
    surnames = _shares([(s, (n + c) / 2) for s, n, c in synth.SURNAMES])
    middles = _shares([*synth.MIDDLE_MALE, *synth.MIDDLE_FEMALE])
    zipf = [(g, 1.0 / (r + 1)) for r, g in enumerate(synth.GIVEN_MALE)]
    zipf += [(g, 1.0 / (r + 1)) for r, g in enumerate(synth.GIVEN_FEMALE)]
    given = _shares(zipf)
    keys = {*surnames, *middles, *given}
    keys.update(canonical_tones(w.lower()) for w in EXTRA_NAME_SYLLABLES.split())
    extra = {canonical_tones(w.lower()) for w in EXTRA_NAME_SYLLABLES.split()}
    prior: dict[str, tuple[float, float]] = {}
    for key in keys:
        if fold(key) in NOT_NAME_SYLLABLES:
            continue
        s, m, g = surnames.get(key, 0.0), middles.get(key, 0.0), given.get(key, 0.0)
        floor = FLOOR if key in extra else 0.0
        inner = (m + g) / 2 + SURNAME_INSIDE * s
        prior[key] = (max((s + m + g) / 3, floor), max(inner, floor))
    return prior


def render() -> tuple[str, str]:
    inventory = syllables()
    folded = {fold(s) for s in inventory}
    inv_text = (
        "# Vietnamese syllables: onset x rhyme x tone in the standard orthography, lower\n"
        "# case, NFC, new-style tone placement. Generated by scripts/build_vi_syllables.py;\n"
        f"# do not edit. {len(inventory)} syllables, {len(folded)} folded forms.\n"
        + "".join(s + "\n" for s in inventory)
    )
    prior = name_prior()
    rows = sorted(prior.items(), key=lambda kv: (-round(kv[1][0], 6), kv[0]))
    prior_text = (
        "# Name syllables and their weights (share in Vietnamese personal names, roughly):\n"
        "# the splitter's prior; 'any' for a name's first syllable, 'inner' for the others.\n"
        "# Generated by scripts/build_vi_syllables.py; do not edit.\n"
        "# syllable any inner\n" + "".join(f"{s} {a:.6f} {i:.6f}\n" for s, (a, i) in rows)
    )
    return inv_text, prior_text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--check", action="store_true", help="exit 1 if the shipped files differ")
    args = ap.parse_args()
    inv_text, prior_text = render()
    inventory = set(syllables())
    missing = sorted(k for k in name_prior() if k not in inventory)
    if missing:
        print(f"name syllables outside the inventory: {' '.join(missing)}", file=sys.stderr)
        return 1
    unknown = sorted(n for n in COMMON_GIVEN_NAMES if n not in {fold(k) for k in name_prior()})
    if unknown:
        print(f"COMMON_GIVEN_NAMES without a toned name syllable: {unknown}", file=sys.stderr)
        return 1
    if args.check:
        stale = [
            p.name
            for p, text in ((INVENTORY, inv_text), (NAME_PRIOR, prior_text))
            if not p.exists() or p.read_text(encoding="utf-8") != text
        ]
        if stale:
            print(f"stale: {', '.join(stale)}; run scripts/build_vi_syllables.py", file=sys.stderr)
            return 1
        return 0
    INVENTORY.write_text(inv_text, encoding="utf-8")
    NAME_PRIOR.write_text(prior_text, encoding="utf-8")
    print(f"{INVENTORY}: {inv_text.count(chr(10)) - 3} syllables")
    print(f"{NAME_PRIOR}: {len(name_prior())} name syllables")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
