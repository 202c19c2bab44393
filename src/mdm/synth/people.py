"""The true world: people, organizations and dossiers, before any system records them.

Everything here is vectorized with numpy (one draw per attribute for all entities)
because the generator must produce millions of records in seconds. The order of
draws is fixed, so a seed reproduces the world exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from mdm.synth import data
from mdm.synth.geo import LegacyProvince

IntArr = npt.NDArray[np.int64]


def weighted(rng: np.random.Generator, weights: list[float], n: int) -> IntArr:
    w = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(w), size=n, p=w / w.sum()).astype(np.int64)


def zipf_weights(n: int, s: float = 0.8) -> list[float]:
    return [1.0 / (k + 1) ** s for k in range(n)]


def unique_codes(rng: np.random.Generator, head: IntArr, span: int) -> IntArr:
    """``head * span + tail`` with random tails, redrawn until all values are distinct."""
    vals = head * span + rng.integers(0, span, size=head.size)
    while True:
        _, first = np.unique(vals, return_index=True)
        dup = np.ones(vals.size, dtype=bool)
        dup[first] = False
        if not dup.any():
            return vals
        idx = np.flatnonzero(dup)
        vals[idx] = head[idx] * span + rng.integers(0, span, size=idx.size)


def tax_check_digit(first9: str) -> int:
    """Enterprise-code check digit; 10 means the prefix is never issued."""
    weights = (31, 29, 23, 19, 17, 13, 7, 5, 3)
    return 10 - sum(int(c) * w for c, w in zip(first9, weights, strict=True)) % 11


def valid_tax_code(code: str) -> bool:
    base = code.split("-", 1)[0]
    if len(base) != 10 or not base.isdigit():
        return False
    check = tax_check_digit(base[:9])
    return check != 10 and check == int(base[9])


@dataclass
class People:
    """One row per real person. Indices into ``data`` vocabularies, ints for dates."""

    home: IntArr  # index of the simulated province the person lives in
    sex: IntArr  # 0 male, 1 female
    year: IntArr
    month: IntArr
    day: IntArr
    surname: IntArr
    middle: IntArr  # into MIDDLE_MALE or MIDDLE_FEMALE by sex
    given: IntArr  # into GIVEN_MALE or GIVEN_FEMALE by sex
    ward: IntArr  # index into the home province's ward list
    house: IntArr
    street: IntArr
    birth_reg: IntArr  # pre-2025 province code of birth registration
    pid: list[str] = field(default_factory=list)
    cmnd: list[str | None] = field(default_factory=list)
    phone_prefix: IntArr = field(default_factory=lambda: np.zeros(0, np.int64))
    phone_tail: IntArr = field(default_factory=lambda: np.zeros(0, np.int64))
    has_phone: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    has_email: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    email_no: IntArr = field(default_factory=lambda: np.zeros(0, np.int64))
    ethnicity: IntArr = field(default_factory=lambda: np.zeros(0, np.int64))
    death_year: IntArr = field(default_factory=lambda: np.zeros(0, np.int64))
    # hard negatives: (kind, person a, person b)
    hard_negatives: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return int(self.sex.size)


def _dates(rng: np.random.Generator, years: IntArr) -> tuple[IntArr, IntArr, IntArr]:
    start = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    leap = ((years % 4 == 0) & (years % 100 != 0)) | (years % 400 == 0)
    offs = (rng.random(years.size) * np.where(leap, 366, 365)).astype(np.int64)
    d = start + offs.astype("timedelta64[D]")
    months = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    days = (d - d.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    return years, months.astype(np.int64), days


def make_people(
    rng: np.random.Generator,
    provinces: list[LegacyProvince],
    per_province: int,
    all_province_codes: list[int],
) -> People:
    n_prov = len(provinces)
    n = n_prov * per_province
    home = np.repeat(np.arange(n_prov, dtype=np.int64), per_province)
    sex = rng.integers(0, 2, size=n)
    yrs = np.arange(1930, 2025)
    # An ageing pyramid: few born in the 1930s, flat from the 1980s, fewer recently.
    yw = np.clip((yrs - 1925) / 55.0, 0.05, 1.0) * np.where(yrs > 2012, 0.75, 1.0)
    year = yrs[weighted(rng, list(yw), n)].astype(np.int64)
    year, month, day = _dates(rng, year)

    south = np.array([p.code >= 40 for p in provinces])[home]
    surname = np.empty(n, dtype=np.int64)
    north_w = [w for _, w, _ in data.SURNAMES]
    south_w = [w for _, _, w in data.SURNAMES]
    surname[~south] = weighted(rng, north_w, int((~south).sum()))
    surname[south] = weighted(rng, south_w, int(south.sum()))

    middle = np.where(
        sex == 0,
        weighted(rng, [w for _, w in data.MIDDLE_MALE], n),
        weighted(rng, [w for _, w in data.MIDDLE_FEMALE], n),
    )
    given = np.where(
        sex == 0,
        weighted(rng, zipf_weights(len(data.GIVEN_MALE)), n),
        weighted(rng, zipf_weights(len(data.GIVEN_FEMALE)), n),
    )
    n_wards = np.array([len(p.wards) for p in provinces], dtype=np.int64)[home]
    ward = (rng.random(n) * n_wards).astype(np.int64)
    house = rng.integers(1, 320, size=n)
    street = rng.integers(0, len(data.STREETS), size=n)
    codes = np.array([p.code for p in provinces], dtype=np.int64)
    elsewhere = rng.random(n) < 0.12
    others = np.array(all_province_codes, dtype=np.int64)[
        rng.integers(0, len(all_province_codes), size=n)
    ]
    birth_reg = np.where(elsewhere, others, codes[home])

    people = People(
        home, sex, year, month, day, surname, middle, given, ward, house, street, birth_reg
    )
    _plant_hard_negatives(rng, people, per_province)
    _identifiers(rng, people, provinces)
    return people


def _plant_hard_negatives(rng: np.random.Generator, p: People, per_province: int) -> None:
    """Overwrite some people so that they look alike without being the same person.

    Twins: same surname, birth date and address, different given names. Parent
    and child: same full name and address, a generation apart. Namesakes: same
    full name in the same commune. Done before IDs are drawn, so IDs differ.
    """
    n_prov = p.size // per_province if per_province else 0
    k = max(1, per_province // 200)  # 0.5% of people per kind and province
    for prov in range(n_prov):
        base = prov * per_province
        picks = rng.permutation(per_province)[: 6 * k] + base
        twins_a, twins_b = picks[:k], picks[k : 2 * k]
        par, chi = picks[2 * k : 3 * k], picks[3 * k : 4 * k]
        nam_a, nam_b = picks[4 * k : 5 * k], picks[5 * k : 6 * k]
        for a, b in zip(twins_a.tolist(), twins_b.tolist(), strict=True):
            if p.year[a] > 2010:
                p.year[a] = 1990 + a % 20
            for arr in (
                p.surname,
                p.year,
                p.month,
                p.day,
                p.ward,
                p.house,
                p.street,
                p.birth_reg,
                p.home,
            ):
                arr[b] = arr[a]
            if p.sex[a] == p.sex[b]:
                p.middle[b] = p.middle[a]
            pool = len(data.GIVEN_MALE if p.sex[b] == 0 else data.GIVEN_FEMALE)
            if p.given[b] == p.given[a] and p.sex[a] == p.sex[b]:
                p.given[b] = (p.given[a] + 1 + int(rng.integers(0, pool - 1))) % pool
            p.hard_negatives.append(("twins", a, b))
        for a, b in zip(par.tolist(), chi.tolist(), strict=True):
            if p.year[a] > 1985:
                p.year[a] = 1950 + a % 35
            if p.day[a] > 28:
                p.day[a] = 28
            for arr in (p.sex, p.surname, p.middle, p.given, p.ward, p.house, p.street, p.home):
                arr[b] = arr[a]
            p.year[b] = min(2020, int(p.year[a]) + int(rng.integers(22, 38)))
            if p.day[b] > 28:
                p.day[b] = 28
            p.hard_negatives.append(("parent_child", a, b))
        for a, b in zip(nam_a.tolist(), nam_b.tolist(), strict=True):
            for arr in (p.sex, p.surname, p.middle, p.given, p.ward, p.home):
                arr[b] = arr[a]
            if p.year[b] == p.year[a]:
                p.year[b] = p.year[a] - 1 - int(rng.integers(0, 20))
            if p.day[b] > 28:
                p.day[b] = 28
            p.hard_negatives.append(("namesakes", a, b))


def _identifiers(rng: np.random.Generator, p: People, provinces: list[LegacyProvince]) -> None:
    n = p.size
    century = (p.year // 100 - 19).clip(0, 2)
    head = p.birth_reg * 1000 + (century * 2 + p.sex) * 100 + p.year % 100
    pid = unique_codes(rng, head, 1_000_000)
    p.pid = [f"{v:012d}" for v in pid.tolist()]
    # The 9-digit CMND was issued from age 14 until 2021.
    codes = np.array([pr.code for pr in provinces], dtype=np.int64)[p.home]
    pref = np.array([int(data.CMND_PREFIX.get(int(c), "3" + str(c % 10))) for c in codes])
    cm = unique_codes(rng, pref, 10_000_000)
    eligible = (p.year <= 2006) & (rng.random(n) < 0.97)
    p.cmnd = [
        f"{v:09d}" if e else None for v, e in zip(cm.tolist(), eligible.tolist(), strict=True)
    ]
    p.phone_prefix = rng.integers(0, len(data.MOBILE_PREFIXES), size=n)
    p.phone_tail = rng.integers(0, 10_000_000, size=n)
    p.has_phone = (rng.random(n) < 0.88) & (p.year <= 2012)
    p.has_email = (rng.random(n) < 0.3) & (p.year >= 1960) & (p.year <= 2010)
    p.email_no = rng.integers(0, 10_000, size=n)
    p.ethnicity = weighted(rng, [w for _, w in data.ETHNICITIES], n)
    dead = (p.year < 1955) & (rng.random(n) < 0.18)
    p.death_year = np.where(dead, rng.integers(2012, 2025, size=n), 0)


@dataclass
class Orgs:
    home: IntArr
    form: IntArr  # index into list(LEGAL_FORMS)
    sector: IntArr
    brand: IntArr
    tax: list[str]
    parent: IntArr  # -1, or the head office's index for a branch
    ward: IntArr
    house: IntArr
    street: IntArr
    founded: list[tuple[int, int, int]]
    status: IntArr
    representative: IntArr  # person index

    @property
    def size(self) -> int:
        return int(self.home.size)


def _tax_codes(rng: np.random.Generator, prefixes: list[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    tails = rng.integers(0, 10_000_000, size=len(prefixes) * 2).tolist()
    ti = 0
    for pref in prefixes:
        while True:
            if ti >= len(tails):
                tails.extend(rng.integers(0, 10_000_000, size=1024).tolist())
            nine = f"{pref}{tails[ti]:07d}"
            ti += 1
            check = tax_check_digit(nine)
            code = nine + str(check)
            if check != 10 and code not in seen:  # a prefix giving 10 is never issued
                seen.add(code)
                out.append(code)
                break
    return out


def make_orgs(
    rng: np.random.Generator,
    provinces: list[LegacyProvince],
    per_province: int,
    people: People,
    people_per_province: int,
) -> Orgs:
    n_prov = len(provinces)
    n_head = n_prov * per_province
    home = np.repeat(np.arange(n_prov, dtype=np.int64), per_province)
    forms = list(data.LEGAL_FORMS)
    form = weighted(rng, [data.LEGAL_FORM_WEIGHTS[f] for f in forms], n_head)
    sector = rng.integers(0, len(data.SECTORS), size=n_head)
    brand = rng.integers(0, len(data.BRANDS), size=n_head)
    prefixes = [
        data.TAX_PREFIX.get(provinces[h].code, "4" + str(provinces[h].code % 10))
        for h in home.tolist()
    ]
    tax = _tax_codes(rng, prefixes)
    parent = np.full(n_head, -1, dtype=np.int64)
    # Branches (dependent units) have their own code `<head>-NNN` and are separate
    # organizations; some are registered in another province.
    has_branch = np.flatnonzero(rng.random(n_head) < 0.08)
    b_parent: list[int] = []
    b_tax: list[str] = []
    b_home: list[int] = []
    moves = rng.random(has_branch.size * 3).tolist()
    for j, h in enumerate(has_branch.tolist()):
        for k in range(1 + (j % 3 == 0)):
            b_parent.append(h)
            b_tax.append(f"{tax[h]}-{k + 1:03d}")
            move = moves[j * 3 + k] < 0.35 and n_prov > 1
            b_home.append(int((home[h] + 1 + j % (n_prov - 1)) % n_prov) if move else int(home[h]))
    nb = len(b_parent)
    bp = np.array(b_parent, dtype=np.int64)
    home = np.concatenate([home, np.array(b_home, dtype=np.int64)])
    form = np.concatenate([form, form[bp] if nb else form[:0]])
    sector = np.concatenate([sector, sector[bp] if nb else sector[:0]])
    brand = np.concatenate([brand, brand[bp] if nb else brand[:0]])
    parent = np.concatenate([parent, bp])
    tax = tax + b_tax
    n = home.size
    n_wards = np.array([len(p.wards) for p in provinces], dtype=np.int64)[home]
    ward = (rng.random(n) * n_wards).astype(np.int64)
    house = rng.integers(1, 500, size=n)
    street = rng.integers(0, len(data.STREETS), size=n)
    fy = rng.integers(1992, 2025, size=n)
    fm = rng.integers(1, 13, size=n)
    fd = rng.integers(1, 29, size=n)
    founded = list(zip(fy.tolist(), fm.tolist(), fd.tolist(), strict=True))
    status = weighted(rng, data.ORG_STATUS_WEIGHTS, n)
    # A representative is an adult living in the organization's province.
    rep = home * people_per_province + rng.integers(0, people_per_province, size=n)
    young = people.year[rep] > 2000
    rep = np.where(young, home * people_per_province, rep)
    return Orgs(home, form, sector, brand, tax, parent, ward, house, street, founded, status, rep)
