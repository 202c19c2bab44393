"""Hazard profiles for ``mdm synth --profile P``: one kind of trouble on top of the standard world.

``standard`` is what the generator writes without a profile, byte for byte. The
other profiles start from the same world and plant one family of hazards:

* ``clerical``: hand-entry and spreadsheet damage (dates, ID digits, name
  syllables, phone spellings, address abbreviations);
* ``household``: families sharing an address and a phone, twins, a son named
  like his father, a relative's personal ID typed into a record (hard negatives);
* ``migration``: people who moved between provinces, 2025-form addresses in
  legacy systems, people in three or more systems, a second CMND;
* ``sparse``: year-only and placeholder birth dates, records without any ID,
  phone or address.

A profile never draws from the generator's main random stream: it has its own,
seeded from the seed and the profile. So for one seed every profile writes the
rows the standard run writes, with the same source keys about the same people:
``truth.csv`` is identical for ``clerical`` and ``sparse``; ``household`` makes
families of existing people before any record is written, re-dating members to
fit their role and recomputing their personal IDs (which still encode sex and
birth year), so only the portal's keys (personal IDs) differ; ``migration``
routes some people through more provinces, so who visits which system differs.
The hazards change how records are *written*, never whose they are; the
household hard negatives are different people who look alike.

:data:`RATES` lists every rate; ``docs/mappings.md`` explains them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mdm.standardize.ids import cmnd_region_of_province
from mdm.synth import data, geo
from mdm.synth import vec as V
from mdm.synth.people import People
from mdm.synth.text import strip_diacritics
from mdm.synth.vec import Ints, Mask, Str

#: Profile names, ``standard`` first (``mdm synth --profile``).
PROFILES: tuple[str, ...] = ("standard", "clerical", "household", "migration", "sparse")

#: Rates per profile. Unless said otherwise a rate is the share of *eligible*
#: legacy citizen rows that get the hazard (eligible: the row has the value the
#: hazard damages, e.g. a shown personal ID), on top of the standard damage.
RATES: dict[str, dict[str, float]] = {
    "standard": {},
    "clerical": {
        # birth date (rows with a date; the day/month swap needs day <= 12 and day != month)
        "birth_year_off": 0.04,
        "birth_day_digit_off": 0.04,
        "birth_day_month_swapped": 0.08,
        # identifiers (rows showing that ID); transposed and mistyped exclude each other,
        # as do the lost leading zeros and the spaced/dotted spelling
        "pid_transposed": 0.03,
        "pid_mistyped": 0.03,
        "pid_lost_leading_zero": 0.05,
        "pid_spaced": 0.04,
        "cmnd_transposed": 0.03,
        "cmnd_mistyped": 0.03,
        "cmnd_spaced": 0.04,
        # names: run together = middle and given name as one word (rows with a middle
        # name); split = a stray space inside the given name (given names with an onset)
        "name_run_together": 0.04,
        "name_split_syllable": 0.03,
        "middle_dropped": 0.05,
        "name_ascii_capitals": 0.05,
        # phones (rows with a phone); the three spellings exclude each other
        "phone_84": 0.05,
        "phone_plus84": 0.05,
        "phone_grouped": 0.06,
        "phone_old_11_digit": 0.08,  # rows whose operator prefix was renumbered in 2018
        # addresses (rows with a permanent address)
        "address_abbreviated": 0.06,  # P./Q./TP./X./H./T./TX./TT. without a space
        "address_no_district": 0.05,
        "address_hamlet_group": 0.05,  # Tổ/Khu phố/Xóm before the commune
    },
    "household": {
        "households": 0.04,  # households per native person of each province (heads)
        "spouse": 0.9,  # share of households with the head's wife
        "second_child": 0.7,
        "grandparent": 0.3,  # the head's father
        "shared_phone": 0.7,  # households whose members all carry the head's phone
        "twins": 0.5,  # of households whose two children have the same sex
        "father_son_same_name": 0.25,  # of households whose first child is a son
        "relative_id": 0.08,  # of a member's rows in the home system: a relative's ID
    },
    "migration": {
        "moved": 0.85,  # of the visitors in a province's system (standard: 0.5)
        "new_form_moved": 0.7,  # movers' rows at their destination written in 2025 form
        "new_form_other": 0.1,  # other legacy rows written in 2025 form
        "multi_province": 0.03,  # of people: sent through two more provinces' systems
        "new_cmnd": 0.35,  # movers' destination rows holding a CMND: a new CMND there
        "new_cmnd_hides_pid": 0.9,  # of those: the personal ID is not shown
    },
    "sparse": {
        "year_only": 0.12,  # birth date written as the year only
        "jan1_placeholder": 0.08,  # 01/01/yyyy when only the year is known
        "no_id": 0.3,  # neither personal ID nor CMND
        "no_phone": 0.4,
        "no_address": 0.25,  # neither permanent nor current address
    },
}

#: Hard-negative kinds the household profile adds to ``hard_negatives.csv``.
HOUSEHOLD_KINDS = (
    "household_phone",  # two members: same address and the family phone
    "household_address",  # two members: same address, own phones
    "household_twins",  # same birth date, surname and middle name, often the same phone
    "father_son_same_name",  # same full name and address, a generation apart
    "relative_id",  # a row carrying a relative's personal ID, and that relative's row
)

_ONSET = r"^(Ngh|Ng|Nh|Ch|Gh|Gi|Kh|Ph|Qu|Th|Tr|[BCDĐGHKLMNPRSTVX])(\pL\pL.*)$"


def check(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return profile


def _days_in_month(y: Ints, m: Ints) -> Ints:
    first = ((y - 1970) * 12 + (m - 1)).astype("datetime64[M]")
    nxt = first + np.timedelta64(1, "M")
    days = nxt.astype("datetime64[D]") - first.astype("datetime64[D]")
    return np.asarray(days.astype(np.int64), dtype=np.int64)


def _digit_matrix(v: Ints, width: int) -> Ints:
    pow10 = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (v[:, None] // pow10[None, :]) % 10


def _from_digits(d: Ints) -> Ints:
    width = d.shape[1]
    pow10 = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return np.asarray(d @ pow10, dtype=np.int64)


def transpose_digit(v: Ints, width: int, u: Any) -> Ints:
    """Swap two adjacent differing digits, the first such pair from a position set by ``u``."""
    if v.size == 0:
        return v
    d = _digit_matrix(v, width)
    diff = d[:, :-1] != d[:, 1:]
    start = (np.asarray(u) * (width - 1)).astype(np.int64)
    order = (start[:, None] + np.arange(width - 1)[None, :]) % (width - 1)
    hit = np.take_along_axis(diff, order, axis=1)
    pos = np.take_along_axis(order, hit.argmax(axis=1)[:, None], axis=1)[:, 0]
    rows = np.arange(v.size)
    ok = hit.any(axis=1)
    a, b = d[rows, pos].copy(), d[rows, pos + 1].copy()
    d[rows, pos] = np.where(ok, b, a)
    d[rows, pos + 1] = np.where(ok, a, b)
    return _from_digits(d)


def mistype_digit(v: Ints, width: int, u: Any) -> Ints:
    """Replace one digit (position and new value from ``u``) by a different one."""
    if v.size == 0:
        return v
    d = _digit_matrix(v, width)
    uu = np.asarray(u)
    pos = (uu * width).astype(np.int64) % width
    step = 1 + (uu * width * 9).astype(np.int64) % 9
    rows = np.arange(v.size)
    d[rows, pos] = (d[rows, pos] + step) % 10
    return _from_digits(d)


def spaced(text: Str, groups: list[tuple[int, int]], sep_dot: Mask) -> Str:
    """Digits written in groups separated by a space, or a dot where ``sep_dot``."""
    pieces = [V.slice_text(text, a, b) for a, b in groups]
    return V.where(sep_dot, V.join(*pieces, sep="."), V.join(*pieces, sep=" "))


def _null_mask(a: Str) -> Mask:
    return np.asarray(pc.is_null(a).to_numpy(zero_copy_only=False), dtype=bool)


def _apply(arr: Str, mask: Mask, fn: Any) -> Str:
    """``fn`` (an Arrow compute function of one array) on the masked rows only."""
    if not mask.any():
        return arr
    pm = pa.array(mask)
    return pc.replace_with_mask(arr, pm, fn(arr.filter(pm)))


# Columns of the per-row uniforms a profile draws for one file (``Hazards.hu``):
# one column per decision, so that hazards of one profile are independent.
_U_NAME_MIDDLE, _U_NAME_SPLIT, _U_NAME_CAPS = 0, 1, 2
_U_YEAR, _U_YEAR_SIGN, _U_DAY, _U_DAY_SIGN, _U_SWAP = 3, 4, 5, 6, 7
_U_PID, _U_PID_POS, _U_PID_FORM, _U_DOT, _U_CMND, _U_CMND_POS, _U_CMND_FORM = range(8, 15)
_U_ADDR, _U_ADDR_DISTRICT, _U_ADDR_GROUP, _U_ADDR_GROUP_NO = 15, 16, 17, 18
_U_PHONE_OLD, _U_PHONE_FORM, _U_PHONE_GROUPS = 19, 20, 21
_U_COLUMNS = 22


class Hazards:
    """The planting of one profile; the generator calls it at fixed points.

    ``counts`` records how many rows (or people) got each hazard; the manifest's
    summary reports them as ``hazards``.
    """

    def __init__(self, profile: str, seed: int, wards: list[geo.LegacyWard]) -> None:
        self.profile = check(profile)
        self.rates = RATES[profile]
        index = PROFILES.index(profile)
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6D646D, index]))
        self.counts: Counter[str] = Counter()
        self.hu: list[npt.NDArray[np.float64]] = []
        self.relative = np.zeros(0, np.int64)
        self.route: dict[int, Ints] = {}
        self.new_cmnd: dict[int, int] = {}
        self.renumbered = np.array(
            [x in data.OLD_MOBILE_PREFIX for x in data.MOBILE_PREFIXES], dtype=bool
        )
        if profile == "clerical":
            compact = [_compact_forms(w) for w in wards]
            self.compact = [V.pool([c[k] for c in compact]) for k in range(3)]
        if profile == "migration":
            self.new_ward = V.pool([w.new_ward for w in wards])
            self.new_prov = V.pool([w.new_province for w in wards])

    @property
    def moved_share(self) -> float:
        """Share of a province's visitors who moved there (standard: half)."""
        return self.rates.get("moved", 0.5)

    def summary(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    # -- the world ----------------------------------------------------------------

    def plant(self, p: People, provs: list[geo.LegacyProvince], per_province: int) -> None:
        """Change the people before any record is written (household, migration)."""
        self.people = p
        self.provs = provs
        self.relative = np.full(p.size, -1, np.int64)
        if self.profile == "household":
            self._households(p, len(provs), per_province)
        elif self.profile == "migration":
            self._routes(p, len(provs))

    def _households(self, p: People, n_prov: int, per: int) -> None:
        """Households of natives: head, wife, one or two children, the head's father.

        Members are people of the head's province taken as they are (own names,
        sex, birth registration) and then given the head's address, his surname
        (children, grandfather), ages that fit their role and, in most
        households, the head's phone. People in the standard look-alike pairs
        are left alone.
        """
        r, rng = self.rates, self.rng
        roles = self._household_roles(p, n_prov, per)
        if not roles:
            return
        head, wife, gp, c1, c2 = (np.concatenate(x) for x in zip(*roles, strict=True))
        k = head.size
        u = rng.random((k, 6))
        has_sp = u[:, 0] < r["spouse"]
        has_c2 = u[:, 1] < r["second_child"]
        has_gp = u[:, 2] < r["grandparent"]
        share = u[:, 3] < r["shared_phone"]
        twins = has_c2 & (p.sex[c1] == p.sex[c2]) & (u[:, 4] < r["twins"])
        fson = (p.sex[c1] == 0) & (u[:, 5] < r["father_son_same_name"])
        # ages: a wife of about the head's age, a first child 22-37 years younger,
        # the second 1-8 years later (or the first one's twin), the head's father
        hy = p.year[head].astype(np.int64)
        # (people drawn for a role the household does not have are left as they are)
        wife_year = np.minimum(hy + rng.integers(-2, 8, size=k), 1990)
        p.year[c1] = np.minimum(hy + rng.integers(22, 38, size=k), 2020)
        c2_year = np.minimum(p.year[c1] + rng.integers(1, 9, size=k), 2022)
        gp_year = np.maximum(hy - rng.integers(20, 36, size=k), 1930)
        p.year[wife[has_sp]] = wife_year[has_sp]
        p.year[c2[has_c2]] = c2_year[has_c2]
        p.year[gp[has_gp]] = gp_year[has_gp]
        for arr in (p.year, p.month, p.day):
            arr[c2] = np.where(twins, arr[c1], arr[c2])
        p.surname[c1] = p.surname[head]
        p.surname[c2[has_c2]] = p.surname[head[has_c2]]
        p.surname[gp[has_gp]] = p.surname[head[has_gp]]
        # a son carrying his father's full name
        p.middle[c1] = np.where(fson, p.middle[head], p.middle[c1])
        p.given[c1] = np.where(fson, p.given[head], p.given[c1])
        # twins: same middle name (same sex). Brothers or sisters, twins or not, get
        # another given name than the first child's final one: parents never give
        # two of their children one name
        p.middle[c2] = np.where(twins, p.middle[c1], p.middle[c2])
        pool = np.where(p.sex[c1] == 0, len(data.GIVEN_MALE), len(data.GIVEN_FEMALE))
        other = (p.given[c1] + 1 + (rng.random(k) * (pool - 1)).astype(np.int64)) % pool
        alike = has_c2 & (p.sex[c1] == p.sex[c2]) & (p.given[c2] == p.given[c1])
        p.given[c2] = np.where(alike, other, p.given[c2])
        for who, on in ((wife, has_sp), (c1, np.ones(k, bool)), (c2, has_c2), (gp, has_gp)):
            w, h, s = who[on], head[on], share[on]
            for arr in (p.home, p.ward, p.house, p.street):
                arr[w] = arr[h]
            p.death_year[w] = 0
            # 29 February in a year that the new age makes common: the 28th
            p.day[w] = np.minimum(p.day[w], _days_in_month(p.year[w], p.month[w]))
            p.phone_prefix[w] = np.where(s, p.phone_prefix[h], p.phone_prefix[w])
            p.phone_tail[w] = np.where(s, p.phone_tail[h], p.phone_tail[w])
            p.has_phone[w] = s | (p.has_phone[w] & (p.year[w] <= 2012))
        p.has_phone[head] = p.has_phone[head] | share
        self._reissue_ids(p, np.concatenate([wife[has_sp], c1, c2[has_c2], gp[has_gp]]))
        self._household_links(
            p, (head, wife, gp, c1, c2), (has_sp, has_c2, has_gp), share, twins, fson
        )

    def _household_roles(self, p: People, n_prov: int, per: int) -> list[tuple[Ints, ...]]:
        """Per province with enough free people: (heads, wives, grandfathers, first and
        second children), drawn from natives not in a standard look-alike pair.
        """
        r, rng = self.rates, self.rng
        taken = np.zeros(p.size, bool)
        if p.hard_negatives:
            pairs = np.array([(a, b) for _, a, b in p.hard_negatives], dtype=np.int64)
            taken[pairs.ravel()] = True
        roles: list[tuple[Ints, ...]] = []
        for prov in range(n_prov):
            idx = np.arange(prov * per, (prov + 1) * per, dtype=np.int64)
            free = idx[~taken[idx]]
            year = p.year[free]
            alive = p.death_year[free] == 0
            heads_pool = free[alive & (year >= 1950) & (year <= 1985) & (p.sex[free] == 0)]
            k = min(round(r["households"] * per), heads_pool.size, free.size // 8)
            if k < 1:
                continue
            heads = rng.choice(heads_pool, size=k, replace=False)
            taken[heads] = True
            rest = rng.permutation(free[~taken[free]])
            women, men = rest[p.sex[rest] == 1][:k], rest[p.sex[rest] == 0][:k]
            if women.size < k or men.size < k:
                continue
            taken[women] = True
            taken[men] = True
            rest = rest[~taken[rest]]
            if rest.size < 2 * k:
                continue
            c1, c2 = rest[:k], rest[k : 2 * k]
            taken[c1] = True
            taken[c2] = True
            roles.append((heads, women, men, c1, c2))
        return roles

    def _household_links(
        self,
        p: People,
        members: tuple[Ints, Ints, Ints, Ints, Ints],
        present: tuple[Mask, Mask, Mask],
        share: Mask,
        twins: Mask,
        fson: Mask,
    ) -> None:
        """Record the households' relatives, look-alike pairs and counts.

        ``members`` are (head, wife, grandfather, first child, second child) per
        household; ``present`` says whether it has the wife, the second child and
        the grandfather.
        """
        head, wife, gp, c1, c2 = members
        has_sp, has_c2, has_gp = present
        k = head.size
        # whose personal ID a member's record may carry: a child's, a parent's; the
        # head's, his second child's (never between a father and his namesake son)
        self.relative[c1[~fson]] = head[~fson]
        self.relative[c2[has_c2]] = np.where(has_sp, wife, head)[has_c2]
        self.relative[head[has_c2 & ~twins]] = c2[has_c2 & ~twins]
        kind = np.where(share, "household_phone", "household_address")
        pairs_out: list[tuple[str, Ints, Ints, Mask]] = [
            ("", head, wife, has_sp),
            ("fson", head, c1, np.ones(k, bool)),
            ("", head, c2, has_c2),
            ("", gp, head, has_gp),
            ("twins", c1, c2, has_c2),
        ]
        for special, a, b, on in pairs_out:
            kinds = kind
            if special == "fson":
                kinds = np.where(fson, "father_son_same_name", kind)
            elif special == "twins":
                kinds = np.where(twins, "household_twins", kind)
            p.hard_negatives.extend(
                (str(kd), int(x), int(y))
                for kd, x, y in zip(kinds[on].tolist(), a[on].tolist(), b[on].tolist(), strict=True)
            )
        self.counts.update(
            {
                "households": k,
                "household_members": int(2 * k + has_sp.sum() + has_c2.sum() + has_gp.sum()),
                "households_sharing_phone": int(share.sum()),
                "household_twin_pairs": int(twins.sum()),
                "father_son_same_name_pairs": int(fson.sum()),
            }
        )

    def _reissue_ids(self, p: People, who: Ints) -> None:
        """Personal IDs (and CMNDs) that agree with the re-dated people.

        The ID keeps its birth-registration province and random part; its sex and
        century digit and its year digits follow the new birth year. Nobody born
        after 2006 holds a CMND; a re-dated adult without one gets one.
        """
        year = p.year[who].astype(np.int64)
        century = (year // 100 - 19).clip(0, 2)
        head = p.birth_reg[who].astype(np.int64) * 1000 + (century * 2 + p.sex[who]) * 100
        head += year % 100
        p.pid[who] = head * 1_000_000 + p.pid[who] % 1_000_000
        _make_unique(self.rng, p.pid, who, head, 1_000_000)
        p.cmnd[who] = np.where(year > 2006, -1, p.cmnd[who])
        need = who[(year <= 2006) & (p.cmnd[who] < 0)]
        if need.size:
            pref = self._cmnd_prefix(p.home[need])
            p.cmnd[need] = pref * 10_000_000 + self.rng.integers(0, 10_000_000, size=need.size)
            _make_unique(self.rng, p.cmnd, need, pref, 10_000_000)

    def _cmnd_prefix(self, prov: Ints) -> Ints:
        """The CMND prefix of simulated provinces (as :func:`people._identifiers`)."""
        codes = [pr.code for pr in self.provs]
        pref = np.array(
            [int(cmnd_region_of_province(f"{c:03d}") or "3" + str(c % 10)) for c in codes],
            dtype=np.int64,
        )
        return np.asarray(pref[prov], dtype=np.int64)

    def _routes(self, p: People, n_prov: int) -> None:
        """People sent through one more province's system, two when there are three."""
        if n_prov < 2:
            return
        chosen = np.flatnonzero(self.rng.random(p.size) < self.rates["multi_province"])
        home = p.home[chosen].astype(np.int64)
        first = (home + 1 + self.rng.integers(0, n_prov - 1, size=chosen.size)) % n_prov
        dest, person = [first], [chosen]
        if n_prov >= 3:
            # the j-th province that is neither home nor the first stop
            second = self.rng.integers(0, n_prov - 2, size=chosen.size)
            lo, hi = np.minimum(home, first), np.maximum(home, first)
            second += second >= lo
            second += second >= hi
            dest.append(second)
            person.append(chosen)
        d, who = np.concatenate(dest), np.concatenate(person)
        for pi in range(n_prov):
            self.route[pi] = np.unique(who[d == pi])
        self.counts["multi_province_people"] = int(chosen.size)

    # -- one legacy citizen file ------------------------------------------------------

    def begin_file(self, n: int) -> None:
        self.hu = [np.ascontiguousarray(c) for c in self.rng.random((n, _U_COLUMNS)).T]

    def visitors(self, pi: int, vis: Ints) -> Ints:
        """Put the people routed through province ``pi`` among its visitors (same count)."""
        routed = self.route.get(pi)
        if routed is None or routed.size == 0 or vis.size == 0:
            return vis
        take = routed[: vis.size]
        keep = vis[~np.isin(vis, take)]
        return np.concatenate([take, keep[: vis.size - take.size]])

    def names(self, sur: Str, mid: Str, giv: Str) -> tuple[Str, Str, Str]:
        """Surname, middle and given name as written (before the system's text damage)."""
        if self.profile != "clerical":
            return sur, mid, giv
        r, hu = self.rates, self.hu
        has_mid = ~_null_mask(mid)
        u = hu[_U_NAME_MIDDLE]
        drop = has_mid & (u < r["middle_dropped"])
        run = has_mid & ~drop & (u < r["middle_dropped"] + r["name_run_together"])
        if run.any():
            giv = V.where(run, V.join(mid, pc.utf8_lower(giv)), giv)  # Thị Yến -> Thịyến
        mid = V.nullify(mid, drop | run)
        can_split = np.asarray(
            pc.match_substring_regex(giv, _ONSET).to_numpy(zero_copy_only=False), dtype=bool
        )
        split = can_split & ~run & (hu[_U_NAME_SPLIT] < r["name_split_syllable"])
        giv = _apply(giv, split, lambda a: pc.replace_substring_regex(a, _ONSET, r"\1 \2"))
        caps = hu[_U_NAME_CAPS] < r["name_ascii_capitals"]
        ascii_up = V.each(lambda s: strip_diacritics(s).upper())
        sur, mid, giv = (V.patch(a, caps, ascii_up) for a in (sur, mid, giv))
        self.counts.update(
            {
                "middle_dropped": int(drop.sum()),
                "name_run_together": int(run.sum()),
                "name_split_syllable": int(split.sum()),
                "name_ascii_capitals": int(caps.sum()),
            }
        )
        return sur, mid, giv

    def dates(
        self,
        y: Ints,
        m: Ints,
        d: Ints,
        year_only: Mask,
        jan1: Mask,
        swap: Mask,
        keep: Mask,
    ) -> tuple[Ints, Ints, Ints, Mask, Mask, Mask]:
        """Birth (year, month, day) and the year-only / 1 January / swapped masks.

        ``keep``: rows whose date must not change (no date, deliberately invalid).
        """
        r, hu = self.rates, self.hu
        free = ~keep
        if self.profile == "sparse":
            plain = free & ~year_only & ~jan1
            yo = plain & (hu[_U_YEAR] < r["year_only"])
            j1 = plain & ~yo & (hu[_U_DAY] < r["jan1_placeholder"])
            self.counts.update({"year_only": int(yo.sum()), "jan1_placeholder": int(j1.sum())})
            return y, m, d, year_only | yo, jan1 | j1, swap & ~j1
        if self.profile != "clerical":
            return y, m, d, year_only, jan1, swap
        y, m, d = y.astype(np.int64), m.astype(np.int64), d.astype(np.int64)
        yoff = free & (hu[_U_YEAR] < r["birth_year_off"])
        sign = np.where((hu[_U_YEAR_SIGN] < 0.5) | (y >= 2024), -1, 1)
        y = np.where(yoff, y + sign, y)
        full = free & ~year_only & ~jan1
        doff = full & (hu[_U_DAY] < r["birth_day_digit_off"])
        # the units digit one up or down; where that leaves the month, the other way;
        # failing that (the 30th of a 30-day month) the tens digit one down
        units = d % 10
        step = np.where(units == 9, -1, np.where(units == 0, 1, 0))
        step = np.where(step == 0, np.where(hu[_U_DAY_SIGN] < 0.5, -1, 1), step)
        dim = _days_in_month(y, m)
        cand = d + step
        bad = (cand < 1) | (cand > dim)
        back = d - step
        cand = np.where(
            bad, np.where((back >= 1) & (back <= dim) & (back // 10 == d // 10), back, d - 10), cand
        )
        d = np.where(doff, cand, d)
        sw = full & ~swap & (d <= 12) & (d != m) & (hu[_U_SWAP] < r["birth_day_month_swapped"])
        # a year typed one off can make 29 February impossible: the clerk wrote the 28th
        d = np.minimum(d, _days_in_month(y, m))
        self.counts.update(
            {
                "birth_year_off": int(yoff.sum()),
                "birth_day_digit_off": int(doff.sum()),
                "birth_day_month_swapped": int(sw.sum()),
            }
        )
        return y, m, d, year_only, jan1, swap | sw

    def ids(
        self,
        pi: int,
        who: Ints,
        moved: Mask,
        pid: Str,
        cmnd: Str,
        pid_null: Mask,
        cm_null: Mask,
    ) -> tuple[Str, Str, Mask, Mask, list[tuple[str, int, int]]]:
        """Identifiers as written, their null masks, and (kind, row, row) pairs of this file."""
        r, hu, p = self.rates, self.hu, self.people
        pairs: list[tuple[str, int, int]] = []
        if self.profile == "sparse":
            none = hu[_U_PID] < r["no_id"]
            self.counts["no_id"] += int((none & ~(pid_null & cm_null)).sum())
            return pid, cmnd, pid_null | none, cm_null | none, pairs
        if self.profile == "household":
            rel = self.relative[who]
            first = np.full(p.size, -1, np.int64)
            ents, idx = np.unique(who, return_index=True)
            first[ents] = idx
            safe = np.maximum(rel, 0)
            ok = (rel >= 0) & (p.home[who] == pi) & (first[safe] >= 0)
            sel = ok & (hu[_U_PID] < r["relative_id"])
            rows = np.flatnonzero(sel)
            if rows.size:
                pid = V.where(sel, V.digits(p.pid[safe], 12), pid)
                pid_null = pid_null & ~sel
                other = first[rel[rows]]
                pairs = [
                    ("relative_id", a, b)
                    for a, b in zip(rows.tolist(), other.tolist(), strict=True)
                ]
            self.counts["relative_id"] += int(rows.size)
            return pid, cmnd, pid_null, cm_null, pairs
        if self.profile == "migration":
            sel = moved & (p.cmnd[who] >= 0) & (hu[_U_PID] < r["new_cmnd"])
            rows = np.flatnonzero(sel)
            if rows.size:
                full = np.zeros(who.size, np.int64)
                full[rows] = self._new_cmnds(pi, who[rows])
                cmnd = V.where(sel, V.digits(full, 9), cmnd)
                cm_null = cm_null & ~sel
                pid_null = pid_null | (sel & (hu[_U_PID_POS] < r["new_cmnd_hides_pid"]))
            self.counts["new_cmnd"] += int(rows.size)
            return pid, cmnd, pid_null, cm_null, pairs
        if self.profile != "clerical":
            return pid, cmnd, pid_null, cm_null, pairs
        pid_v = p.pid[who].astype(np.int64)
        shown = ~pid_null
        u = hu[_U_PID]
        tr = shown & (u < r["pid_transposed"])
        mt = shown & ~tr & (u < r["pid_transposed"] + r["pid_mistyped"])
        pid_v[tr] = transpose_digit(pid_v[tr], 12, hu[_U_PID_POS][tr])
        pid_v[mt] = mistype_digit(pid_v[mt], 12, hu[_U_PID_POS][mt])
        text = V.digits(pid_v, 12)
        u = hu[_U_PID_FORM]
        lz = shown & (u < r["pid_lost_leading_zero"])
        sp = shown & ~lz & (u < r["pid_lost_leading_zero"] + r["pid_spaced"])
        dot = hu[_U_DOT] < 0.5
        text = V.where(lz, V.digits(pid_v), text)  # a spreadsheet number: 1012345678
        text = V.where(sp, spaced(text, [(0, 3), (3, 6), (6, 9), (9, 12)], dot), text)
        pid = V.where(tr | mt | lz | sp, text, pid)
        cm_v = np.maximum(p.cmnd[who].astype(np.int64), 0)
        cshown = ~cm_null
        u = hu[_U_CMND]
        ctr = cshown & (u < r["cmnd_transposed"])
        cmt = cshown & ~ctr & (u < r["cmnd_transposed"] + r["cmnd_mistyped"])
        cm_v[ctr] = transpose_digit(cm_v[ctr], 9, hu[_U_CMND_POS][ctr])
        cm_v[cmt] = mistype_digit(cm_v[cmt], 9, hu[_U_CMND_POS][cmt])
        ctext = V.digits(cm_v, 9)
        csp = cshown & (hu[_U_CMND_FORM] < r["cmnd_spaced"])
        ctext = V.where(csp, spaced(ctext, [(0, 3), (3, 6), (6, 9)], dot), ctext)
        cmnd = V.where(ctr | cmt | csp, ctext, cmnd)
        self.counts.update(
            {
                "pid_transposed": int(tr.sum()),
                "pid_mistyped": int(mt.sum()),
                "pid_lost_leading_zero": int(lz.sum()),
                "pid_spaced": int(sp.sum()),
                "cmnd_transposed": int(ctr.sum()),
                "cmnd_mistyped": int(cmt.sum()),
                "cmnd_spaced": int(csp.sum()),
            }
        )
        return pid, cmnd, pid_null, cm_null, pairs

    def _new_cmnds(self, pi: int, persons: Ints) -> Ints:
        """A new CMND issued in province ``pi`` per person (the same one if met again)."""
        p = self.people
        out = np.array([self.new_cmnd.get(x, -1) for x in persons.tolist()], dtype=np.int64)
        need = np.flatnonzero(out < 0)
        if need.size:
            pref = self._cmnd_prefix(np.full(need.size, pi, np.int64))
            vals = pref * 10_000_000 + self.rng.integers(0, 10_000_000, size=need.size)
            issued = np.fromiter(self.new_cmnd.values(), np.int64, len(self.new_cmnd))
            taken = np.concatenate([p.cmnd[p.cmnd >= 0].astype(np.int64), issued])
            while True:
                clash = np.isin(vals, taken) | _dups(vals)
                if not clash.any():
                    break
                fresh = self.rng.integers(0, 10_000_000, size=int(clash.sum()))
                vals[clash] = pref[clash] * 10_000_000 + fresh
            out[need] = vals
            self.new_cmnd.update(zip(persons[need].tolist(), vals.tolist(), strict=True))
        return out

    def address(self, parts: list[Str], gw: Ints, moved: Mask, south: Mask) -> list[Str]:
        """Street, commune, district and province as written; a part may become null.

        ``gw``: the global ward of the address; ``south``: the province writes
        ``Ấp``/``Khu phố`` rather than ``Thôn``/``Tổ``.
        """
        r, hu = self.rates, self.hu
        street, commune, district, province = parts
        if self.profile == "migration":
            u = hu[_U_ADDR]
            new = np.where(moved, u < r["new_form_moved"], u < r["new_form_other"])
            commune = V.where(new, V.take(self.new_ward, gw), commune)
            province = V.where(new, V.take(self.new_prov, gw), province)
            district = V.nullify(district, new)
            self.counts["address_2025_form"] += int(new.sum())
            self.counts["address_2025_form_movers"] += int((new & moved).sum())
            return [street, commune, district, province]
        if self.profile != "clerical":
            return parts
        abbr = hu[_U_ADDR] < r["address_abbreviated"]
        commune = V.where(abbr, V.take(self.compact[0], gw), commune)
        district = V.where(abbr, V.take(self.compact[1], gw), district)
        province = V.where(abbr, V.take(self.compact[2], gw), province)
        nodist = hu[_U_ADDR_DISTRICT] < r["address_no_district"]
        district = V.nullify(district, nodist)
        group = hu[_U_ADDR_GROUP] < r["address_hamlet_group"]
        if group.any():
            # rural: a smaller group before the hamlet (Xóm 2, Thôn 5 / Tổ 3, Ấp 4);
            # urban: the residential group after the street (Số 12 Lê Lợi, Tổ 7)
            thon = _matches(street, "^Thôn ")
            rural = thon | _matches(street, "^(Xóm|Ấp) ")
            label = np.where(rural, np.where(thon, 2, 0), np.where(south, 1, 0))
            unit = V.join(
                V.take(V.pool(["Tổ ", "Khu phố ", "Xóm "]), label),
                V.digits(1 + (hu[_U_ADDR_GROUP_NO] * 12).astype(np.int64)),
            )
            grouped = V.where(rural, V.join(unit, street, sep=", "), V.join(street, unit, sep=", "))
            street = V.where(group, grouped, street)
        self.counts.update(
            {
                "address_abbreviated": int(abbr.sum()),
                "address_no_district": int(nodist.sum()),
                "address_hamlet_group": int(group.sum()),
            }
        )
        return [street, commune, district, province]

    def address_missing(self, n: int) -> Mask:
        """Rows without any address (sparse)."""
        if self.profile != "sparse":
            return np.zeros(n, bool)
        miss = self.hu[_U_ADDR] < self.rates["no_address"]
        self.counts["no_address"] += int(miss.sum())
        return miss

    def old_phones(self, who: Ints, old: Mask) -> Mask:
        """Rows whose phone is written in its pre-2018 11-digit form."""
        if self.profile != "clerical":
            return old
        can = self.renumbered[self.people.phone_prefix[who]]
        add = can & ~old & (self.hu[_U_PHONE_OLD] < self.rates["phone_old_11_digit"])
        self.counts["phone_old_11_digit"] += int(add.sum())
        return old | add

    def phones(self, phone: Str, plain: Str, has_phone: Mask) -> tuple[Str, Mask]:
        """The phone as written and whether it is; ``plain``: the number unspelled."""
        r, hu = self.rates, self.hu
        if self.profile == "sparse":
            drop = has_phone & (hu[_U_PHONE_FORM] < r["no_phone"])
            self.counts["no_phone"] += int(drop.sum())
            return phone, has_phone & ~drop
        if self.profile != "clerical":
            return phone, has_phone
        u = hu[_U_PHONE_FORM]
        a, b = r["phone_84"], r["phone_84"] + r["phone_plus84"]
        c = b + r["phone_grouped"]
        rest = V.slice_text(plain, 1)
        g4 = [V.slice_text(plain, 0, 4), V.slice_text(plain, 4, 7), V.slice_text(plain, 7)]
        g3 = [V.slice_text(plain, 0, 3), V.slice_text(plain, 3, 6), V.slice_text(plain, 6)]
        style = hu[_U_PHONE_GROUPS]
        grouped = V.where(
            style < 0.4,
            V.join(*g4, sep="."),  # 0912.345.678
            V.where(style < 0.7, V.join(*g4, sep=" "), V.join(*g3, sep=" ")),  # 091 234 5678
        )
        out = V.where(
            u < a,
            V.join("84", rest),
            V.where(u < b, V.join("+84", rest), V.where(u < c, grouped, phone)),
        )
        self.counts.update(
            {
                "phone_84": int((has_phone & (u < a)).sum()),
                "phone_plus84": int((has_phone & (u >= a) & (u < b)).sum()),
                "phone_grouped": int((has_phone & (u >= b) & (u < c)).sum()),
            }
        )
        return out, has_phone


def _matches(a: Str, pattern: str) -> Mask:
    hit = pc.match_substring_regex(a, pattern).to_numpy(zero_copy_only=False)
    return np.asarray(hit, dtype=bool)


def _dups(v: Ints) -> Mask:
    _, first = np.unique(v, return_index=True)
    dup = np.ones(v.size, dtype=bool)
    dup[first] = False
    return dup


def _make_unique(rng: np.random.Generator, values: Ints, who: Ints, head: Ints, span: int) -> None:
    """Redraw ``values[who]`` (as ``head * span + tail``) until no value occurs twice.

    Only the entries at ``who`` change: the others are already distinct.
    """
    while True:
        uniq, counts = np.unique(values, return_counts=True)
        clash = np.isin(values[who], uniq[counts > 1])
        if not clash.any():
            return
        idx = np.flatnonzero(clash)
        values[who[idx]] = head[idx] * span + rng.integers(0, span, size=idx.size)


def _compact_forms(w: geo.LegacyWard) -> tuple[str, str, str]:
    """Abbreviated unit words without a space: ``P.Vị Xuyên``, ``TP.Nam Định``, ``T.Nam Định``."""
    wab = {"phường": "P.", "xã": "X.", "thị trấn": "TT."}.get(w.kind, "")
    dab = {"quận": "Q.", "huyện": "H.", "thị xã": "TX.", "thành phố": "TP."}.get(
        w.district_kind, ""
    )
    city = w.province.startswith("Thành phố")
    return (
        wab + geo.bare(w.name),
        dab + geo.bare(w.district),
        ("TP." if city else "T.") + geo.short_name(w.province),
    )
