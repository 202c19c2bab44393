"""The true world: people, organizations and dossiers, before any system records them.

Everything here is vectorized with numpy (one draw per attribute for all entities)
because the generator must produce millions of records in seconds. The order of
draws is fixed, so a seed reproduces the world exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from mdm.standardize.ids import cmnd_region_of_province
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
    pid: IntArr = field(default_factory=lambda: np.zeros(0, np.int64))  # 12 digits
    cmnd: IntArr = field(default_factory=lambda: np.zeros(0, np.int64))  # 9 digits, -1: none
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
    # Halve the memory of the world: every attribute but the two ID numbers fits int32.
    for name, value in vars(people).items():
        compact = isinstance(value, np.ndarray) and value.dtype == np.int64
        if compact and name not in ("pid", "cmnd"):
            setattr(people, name, value.astype(np.int32))
    return people


def _plant_hard_negatives(rng: np.random.Generator, p: People, per_province: int) -> None:
    """Overwrite some people so that they look alike without being the same person.

    Twins: same surname, birth date and address, different given names; about
    two thirds of twin pairs share their sex (identical twins always do), and those
    share the middle name too. Parent
    and child: same full name and address, a generation apart. Namesakes: same
    full name in the same commune. Done before IDs are drawn, so IDs differ.
    """
    n_prov = p.size // per_province if per_province else 0
    k = max(1, per_province // 200)  # 0.5% of people per kind and province
    for prov in range(n_prov):
        base = prov * per_province
        picks = rng.permutation(per_province)[: 6 * k] + base
        a, b = picks[:k], picks[k : 2 * k]
        p.year[a] = np.where(p.year[a] > 2010, 1990 + a % 20, p.year[a])
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
        # forcing a third to share the sex gives about two thirds same-sex pairs overall
        same = (rng.random(k) < 0.35) | (p.sex[a] == p.sex[b])
        p.sex[b] = np.where(same, p.sex[a], p.sex[b])
        p.middle[b] = np.where(same, p.middle[a], p.middle[b])
        pool = np.where(p.sex[b] == 0, len(data.GIVEN_MALE), len(data.GIVEN_FEMALE))
        other = (p.given[a] + 1 + (rng.random(k) * (pool - 1)).astype(np.int64)) % pool
        p.given[b] = np.where(same, other, p.given[b])
        p.hard_negatives.extend(
            ("twins", x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)
        )

        par, chi = picks[2 * k : 3 * k], picks[3 * k : 4 * k]
        p.year[par] = np.where(p.year[par] > 1985, 1950 + par % 35, p.year[par])
        p.day[par] = np.minimum(p.day[par], 28)
        for arr in (p.sex, p.surname, p.middle, p.given, p.ward, p.house, p.street, p.home):
            arr[chi] = arr[par]
        p.year[chi] = np.minimum(2020, p.year[par] + rng.integers(22, 38, size=k))
        p.day[chi] = np.minimum(p.day[chi], 28)
        p.hard_negatives.extend(
            ("parent_child", x, y) for x, y in zip(par.tolist(), chi.tolist(), strict=True)
        )

        na, nb = picks[4 * k : 5 * k], picks[5 * k : 6 * k]
        for arr in (p.sex, p.surname, p.middle, p.given, p.ward, p.home):
            arr[nb] = arr[na]
        gap = 1 + rng.integers(0, 20, size=k)
        p.year[nb] = np.where(p.year[nb] == p.year[na], p.year[na] - gap, p.year[nb])
        p.day[nb] = np.minimum(p.day[nb], 28)
        p.hard_negatives.extend(
            ("namesakes", x, y) for x, y in zip(na.tolist(), nb.tolist(), strict=True)
        )


def _identifiers(rng: np.random.Generator, p: People, provinces: list[LegacyProvince]) -> None:
    n = p.size
    century = (p.year // 100 - 19).clip(0, 2)
    head = p.birth_reg * 1000 + (century * 2 + p.sex) * 100 + p.year % 100
    p.pid = unique_codes(rng, head, 1_000_000)
    # The 9-digit CMND was issued from age 14 until 2021.
    codes = np.array([pr.code for pr in provinces], dtype=np.int64)
    pref_of = np.array(
        [int(cmnd_region_of_province(f"{c:03d}") or "3" + str(c % 10)) for c in codes],
        dtype=np.int64,
    )
    cm = unique_codes(rng, pref_of[p.home], 10_000_000)
    eligible = (p.year <= 2006) & (rng.random(n) < 0.97)
    p.cmnd = np.where(eligible, cm, -1)
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
    tax: IntArr  # the 10-digit enterprise code (a branch has its head office's)
    branch_no: IntArr  # 0 for a head office, else the branch suffix `-NNN`
    parent: IntArr  # -1, or the head office's index for a branch
    ward: IntArr
    house: IntArr
    street: IntArr
    founded_y: IntArr
    founded_m: IntArr
    founded_d: IntArr
    status: IntArr
    representative: IntArr  # person index

    @property
    def size(self) -> int:
        return int(self.home.size)

    def tax_text(self, idx: IntArr) -> list[str]:
        return [
            f"{t:010d}-{b:03d}" if b else f"{t:010d}"
            for t, b in zip(self.tax[idx].tolist(), self.branch_no[idx].tolist(), strict=True)
        ]


_TAX_WEIGHTS = np.array([31, 29, 23, 19, 17, 13, 7, 5, 3], dtype=np.int64)
_POW = 10 ** np.arange(8, -1, -1, dtype=np.int64)


def tax_check_digits(first9: IntArr) -> IntArr:
    """Vectorized :func:`tax_check_digit` over 9-digit prefixes given as integers."""
    d = (first9[:, None] // _POW[None, :]) % 10
    return 10 - (d @ _TAX_WEIGHTS) % 11


def _tax_codes(rng: np.random.Generator, prefixes: IntArr) -> IntArr:
    """Distinct valid 10-digit codes ``PP NNNNNNN C`` for 2-digit tax-office prefixes."""
    n = prefixes.size
    nine = prefixes * 10_000_000 + rng.integers(0, 10_000_000, size=n)
    while True:
        check = tax_check_digits(nine)
        codes = nine * 10 + check
        bad = check == 10  # a prefix giving 10 is never issued
        _, first = np.unique(np.where(bad, -1 - np.arange(n), codes), return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        bad |= dup
        if not bad.any():
            return codes
        idx = np.flatnonzero(bad)
        nine[idx] = prefixes[idx] * 10_000_000 + rng.integers(0, 10_000_000, size=idx.size)


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
    prov_prefix = np.array(
        [int(data.TAX_PREFIX.get(p.code, "4" + str(p.code % 10))) for p in provinces],
        dtype=np.int64,
    )
    tax = _tax_codes(rng, prov_prefix[home])
    # Branches (dependent units) have their own code `<head>-NNN` and are separate
    # organizations; some are registered in another province.
    has_branch = np.flatnonzero(rng.random(n_head) < 0.08)
    j = np.arange(has_branch.size)
    count = 1 + (j % 3 == 0)
    bp = np.repeat(has_branch, count)
    bj = np.repeat(j, count)
    bk = np.arange(bp.size) - np.repeat(np.cumsum(count) - count, count)  # 0 or 1
    moves = rng.random(has_branch.size * 3)
    move = (moves[bj * 3 + bk] < 0.35) & (n_prov > 1)
    b_home = np.where(move, (home[bp] + 1 + bj % max(1, n_prov - 1)) % n_prov, home[bp])
    home = np.concatenate([home, b_home])
    form = np.concatenate([form, form[bp]])
    sector = np.concatenate([sector, sector[bp]])
    brand = np.concatenate([brand, brand[bp]])
    parent = np.concatenate([np.full(n_head, -1, dtype=np.int64), bp])
    branch_no = np.concatenate([np.zeros(n_head, dtype=np.int64), bk + 1])
    tax = np.concatenate([tax, tax[bp]])
    n = home.size
    n_wards = np.array([len(p.wards) for p in provinces], dtype=np.int64)[home]
    ward = (rng.random(n) * n_wards).astype(np.int64)
    house = rng.integers(1, 500, size=n)
    street = rng.integers(0, len(data.STREETS), size=n)
    fy = rng.integers(1992, 2025, size=n)
    fm = rng.integers(1, 13, size=n)
    fd = rng.integers(1, 29, size=n)
    status = weighted(rng, data.ORG_STATUS_WEIGHTS, n)
    # A representative is an adult living in the organization's province.
    rep = home * people_per_province + rng.integers(0, people_per_province, size=n)
    young = people.year[rep] > 2000
    rep = np.where(young, home * people_per_province, rep)
    return Orgs(
        home,
        form,
        sector,
        brand,
        tax,
        branch_no,
        parent,
        ward,
        house,
        street,
        fy,
        fm,
        fd,
        status,
        rep,
    )
