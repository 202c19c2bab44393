"""Render the true world into the files that legacy provinces and the national portal export.

Each simulated former province gets one source system per entity type with its
own layout, encoding, date format and habits of damage; the national portal
writes clean 2025-form data. ``truth.csv`` says which real entity every written
row is about; ``hard_negatives.csv`` lists look-alike pairs that must stay apart;
``expected_rejects.csv`` lists the rows deliberately made invalid.
``SynthParams.profile`` plants one family of hazards on top of this standard
world (:mod:`mdm.synth.hazards`); ``standard`` writes exactly what it always did.

Speed and memory: every file is built column-wise (numpy draws one uniform per
row and decision, :mod:`mdm.synth.vec` turns index arrays into pyarrow string
columns from precomputed pools) and written as soon as it is built; only the
entity index of each row is kept afterwards (for the truth, the dossiers'
applicants, the hard negatives and the summary). Python code runs per row only
for the few rows that get a typo, mojibake or a deliberate error.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from mdm.synth import data, geo
from mdm.synth import vec as V
from mdm.synth.hazards import Hazards
from mdm.synth.hazards import check as check_profile
from mdm.synth.people import Orgs, People, make_orgs, make_people
from mdm.synth.text import strip_diacritics, tcvn3_mojibake, typo, vni_mojibake
from mdm.synth.vec import Ints, Mask, Str
from mdm.synth.writers import Columns, write_csv, write_jsonl, write_parquet

MAPPINGS_DIR = Path(__file__).resolve().parents[3] / "schemas" / "mappings"
PORTAL = "national-portal"

#: How each date style is written (``vec.fmt_date`` implements them column-wise).
DATE_STYLES = {
    "dmy": "{d:02d}/{m:02d}/{y:04d}",
    "dmy_nopad": "{d}/{m}/{y:04d}",
    "dmy_dash": "{d:02d}-{m:02d}-{y:04d}",
    "iso": "{y:04d}-{m:02d}-{d:02d}",
    "ymd8": "{y:04d}{m:02d}{d:02d}",
}


@dataclass(frozen=True)
class SystemProfile:
    """How one province's systems write data (one per simulated province, cycled).

    ``mojibake_rate``: share of rows whose text went through a pre-Unicode font
    encoding; northern provinces used TCVN3 (ABC), southern ones VNI.
    """

    citizen_layout: str
    citizen_format: str
    encoding: str
    delimiter: str
    date_style: str
    org_layout: str
    dossier_layout: str
    strip_rate: float = 0.02
    upper_rate: float = 0.03
    nfd_rate: float = 0.0
    mojibake_rate: float = 0.0
    old_phone_rate: float = 0.45


SYSTEM_PROFILES = [
    SystemProfile(
        "citizen_a",
        "csv",
        "utf-8-sig",
        ",",
        "dmy",
        "org_legacy_csv",
        "dossier_onestop_csv",
        nfd_rate=0.02,
        mojibake_rate=0.015,
    ),
    SystemProfile(
        "citizen_b", "csv", "utf-16", "\t", "dmy_nopad", "org_legacy_csv", "dossier_onestop_csv"
    ),
    SystemProfile(
        "citizen_c",
        "csv",
        "cp1258",
        ";",
        "dmy_dash",
        "org_legacy_csv",
        "dossier_onestop_csv",
        upper_rate=1.0,
    ),
    SystemProfile(
        "citizen_d",
        "jsonl",
        "utf-8",
        "",
        "iso",
        "org_legacy_jsonl",
        "dossier_onestop_jsonl",
        strip_rate=0.35,
        old_phone_rate=0.6,
        mojibake_rate=0.008,
    ),
    SystemProfile(
        "citizen_e", "parquet", "binary", "", "ymd8", "org_legacy_csv", "dossier_onestop_jsonl"
    ),
]
# Org/dossier CSVs are comma-separated in every encoding; JSONL is always UTF-8.
_ORG_DOSSIER_ENCODING = {"utf-8-sig": "utf-8-sig", "utf-16": "utf-16", "cp1258": "cp1258"}


@dataclass
class FileOut:
    """One written file, reduced to what the truth files and the summary need."""

    name: str
    source_system: str
    entity_type: str
    layout: str
    format: str
    encoding: str
    delimiter: str
    keys: Str  # source key per row (dropped once the truth rows are written)
    entities: Ints  # entity index per row (person, organization or dossier)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    # hard-negative pairs planted in this file's rows: (kind, row a, row b)
    pairs: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return int(self.entities.size)


@dataclass
class SynthParams:
    provinces: int = 5
    citizens: int = 10_000
    organizations: int | None = None
    dossiers: int | None = None
    seed: int = 0
    portal: bool = True
    profile: str = "standard"  # one of PROFILES: the hazards planted (mdm.synth.hazards)


_ENTITY = {"citizen": ("P", 8), "organization": ("O", 7), "dossier": ("D", 8)}

_strip = lru_cache(maxsize=1 << 16)(strip_diacritics)
_tcvn3 = lru_cache(maxsize=1 << 16)(tcvn3_mojibake)
_vni = lru_cache(maxsize=1 << 16)(vni_mojibake)


def _nfd(s: str) -> str:
    return unicodedata.normalize("NFD", s)


def _cols(u: npt.NDArray[np.float64]) -> list[npt.NDArray[np.float64]]:
    return [np.ascontiguousarray(c) for c in u.T]


@dataclass
class _CitizenRows:
    """One citizen file's rows: who they name, how, and the uniform draws deciding each cell."""

    pi: int
    prof: SystemProfile
    prov: geo.LegacyProvince
    who: Ints
    kind: npt.NDArray[np.int8]  # 0 native, 1 visitor, 2 duplicate within the file
    u: list[npt.NDArray[np.float64]]
    vis_ward: Ints
    vis_house: Ints
    vis_street: Ints
    inv: Mask
    rows: Ints
    keys: Str

    @property
    def n(self) -> int:
        return int(self.who.size)


def _citizen_types(prof: SystemProfile) -> dict[str, str]:
    """Arrow types of the citizen columns that are not strings (Parquet only)."""
    return {"gioi_tinh": "int32", "ngay_mat": "date32"} if prof.citizen_format == "parquet" else {}


class _World:
    def __init__(self, params: SynthParams) -> None:
        if params.provinces < 1 or params.citizens < 10:
            raise ValueError("need at least one province and ten citizens per province")
        merged = geo.merged_provinces()
        if params.provinces > len(merged):
            raise ValueError(f"at most {len(merged)} merged former provinces are available")
        self.params = params
        self.rng = np.random.default_rng(params.seed)
        self.provs = [geo.load_province(c) for c in merged[: params.provinces]]
        self.prov_names = geo.all_legacy_province_names()
        self.n_prov = len(self.provs)
        n = params.citizens
        self.n_vis = round(0.135 * n) if self.n_prov > 1 else 0
        self.n_wdup = round(0.01 * n)
        self.n_nat = n - self.n_vis - self.n_wdup
        self.people: People = make_people(self.rng, self.provs, self.n_nat, sorted(self.prov_names))
        # A hazard profile has its own random stream: the main one stays the standard's.
        self.hz: Hazards | None = None
        if check_profile(params.profile) != "standard":
            wards = [w for p in self.provs for w in p.wards]
            self.hz = Hazards(params.profile, params.seed, wards)
            self.hz.plant(self.people, self.provs, self.n_nat)
        n_org = params.organizations if params.organizations is not None else max(1, n // 10)
        self.n_org_rows = n_org
        self.org_cross = round(0.1 * n_org) if self.n_prov > 1 else 0
        self.orgs: Orgs = make_orgs(
            self.rng, self.provs, max(1, n_org - self.org_cross), self.people, self.n_nat
        )
        self.n_dossiers = params.dossiers if params.dossiers is not None else max(1, n // 2)
        self._pools()
        # latest known residence per person (changes when a record says they moved)
        self.latest_prov = self.people.home.copy()
        self.latest_ward = self.people.ward.copy()

    def _pools(self) -> None:
        """Every string a column is gathered from, built once."""
        wards = [w for p in self.provs for w in p.wards]
        self.ward_base = np.cumsum([0] + [len(p.wards) for p in self.provs])[:-1].astype(np.int64)
        self.n_wards = np.array([len(p.wards) for p in self.provs], dtype=np.int64)
        forms = [_forms(w) for w in wards]
        # units[part] indexed by global ward * 3 + style; part: commune, district, province
        self.units = [V.pool([f[s][part] for f in forms for s in range(3)]) for part in range(3)]
        self.ward_is_xa = np.array([w.kind == "xã" for w in wards], dtype=bool)
        self.new_form = V.pool([geo.new_unit_form(w) for w in wards])
        self.agency_ward = V.pool([f"UBND {w.name}" for w in wards])
        self.agency_district = V.pool([f"Bộ phận Một cửa UBND {w.district}" for w in wards])
        self.agency_new = V.pool([f"UBND {w.new_ward}, {w.new_province}" for w in wards])
        self.south70 = np.array([p.code >= 70 for p in self.provs], dtype=bool)
        self.hamlets = V.pool([f"{h} {k}" for h in ("Ấp", "Thôn", "Xóm") for k in range(1, 15)])
        self.streets = V.pool(data.STREETS)
        self.street_pre = V.pool(["", "Số ", "Số "])
        self.street_mid = V.pool([" ", " ", ", đường "])
        # names: one pool per part; middle and given names of both sexes side by side
        self.surnames = V.pool([s for s, _, _ in data.SURNAMES])
        mm, mf = [m for m, _ in data.MIDDLE_MALE], [m for m, _ in data.MIDDLE_FEMALE]
        self.mid_off = np.array([0, len(mm)], dtype=np.int64)
        self.middles = V.pool(mm + mf)
        self.mid_common = np.array([m in ("Văn", "Thị") for m in mm + mf], dtype=bool)
        givens = data.GIVEN_MALE + data.GIVEN_FEMALE
        self.giv_off = np.array([0, len(data.GIVEN_MALE)], dtype=np.int64)
        variants = [g for g in givens if g in data.TONE_VARIANTS]
        tone_alt = np.arange(len(givens), dtype=np.int64)
        for k, g in enumerate(givens):
            if g in data.TONE_VARIANTS:
                tone_alt[k] = len(givens) + sorted(set(variants)).index(g)
        self.tone_alt = tone_alt
        self.givens = V.pool(givens + [data.TONE_VARIANTS[g] for g in sorted(set(variants))])
        n_sur = len(data.SURNAMES)
        self.email_base = V.pool(
            [
                strip_diacritics(g + s).lower().replace(" ", "")
                for g in givens
                for s, _, _ in data.SURNAMES
            ]
        )
        self.n_sur = n_sur
        self.domains = V.pool(data.EMAIL_DOMAINS)
        self.ethnicities = V.pool([e for e, _ in data.ETHNICITIES])
        self.prov_short_by_code = V.pool(
            [geo.short_name(self.prov_names[c]) if c in self.prov_names else "" for c in range(100)]
        )
        self.prov_full_by_code = V.pool([self.prov_names.get(c, "") for c in range(100)])
        self.prov_short = V.pool([geo.short_name(p.name) for p in self.provs])
        prefixes = data.MOBILE_PREFIXES
        self.phone_new = V.pool(prefixes)
        self.phone_old = V.pool([data.OLD_MOBILE_PREFIX.get(x, x) for x in prefixes])
        # organizations
        forms_ = list(data.LEGAL_FORMS)
        spellings = [data.LEGAL_FORMS[f] for f in forms_]
        self.form_nvar = np.array([len(v) for v in spellings], dtype=np.int64)
        self.form_off = np.cumsum([0] + [len(v) for v in spellings])[:-1].astype(np.int64)
        self.form_spelled = V.pool([x for v in spellings for x in v])
        self.form_label = V.pool([data.LEGAL_FORM_LABEL[f] for f in forms_])
        self.form_en = V.pool([data.LEGAL_FORM_EN[f] for f in forms_])
        self.form_short_en = V.pool([data.LEGAL_FORM_SHORT_EN[f] for f in forms_])
        self.sector_vi = V.pool([v for v, _ in data.SECTORS])
        self.sector_en = V.pool([e for _, e in data.SECTORS])
        self.brands = V.pool(data.BRANDS)
        self.brands_en = V.pool([strip_diacritics(b) for b in data.BRANDS])
        self.brands_en_upper = V.pool([strip_diacritics(b).upper() for b in data.BRANDS])

    # -- helpers -------------------------------------------------------------

    def street_part(self, prov: Ints, gward: Ints, house: Ints, street: Ints, u: Any) -> Str:
        """House number and street, or the hamlet in a rural commune (``xã``)."""
        hk = np.where(self.south70[prov], 0, np.where(u < 0.6, 1, 2))
        hamlet = V.take(self.hamlets, hk * 14 + house % 14)
        v = np.where(u < 0.5, 0, np.where(u < 0.8, 1, 2))
        town = V.join(
            V.take(self.street_pre, v),
            V.digits(house),
            V.take(self.street_mid, v),
            V.take(self.streets, street),
        )
        return V.where(self.ward_is_xa[gward], hamlet, town)

    def unit_parts(self, gward: Ints, style: Ints) -> list[Str]:
        idx = gward * 3 + style
        return [V.take(u, idx) for u in self.units]

    def pid_text(self, persons: Ints) -> Str:
        return V.digits(self.people.pid[persons], 12)

    def org_names(self, who: Ints, u: Any) -> tuple[Str, Str, Str, Str]:
        """(name with a legal-form spelling chosen by ``u``, English name, short name, form)."""
        o = self.orgs
        form, sector, brand = o.form[who], o.sector[who], o.brand[who]
        nvar = self.form_nvar[form]
        spelled = self.form_off[form] + (np.asarray(u) * nvar).astype(np.int64) % nvar
        name = V.join(
            V.take(self.form_spelled, spelled),
            V.take(self.sector_vi, sector),
            V.take(self.brands, brand),
            sep=" ",
        )
        branch = o.parent[who] >= 0
        if branch.any():
            local = V.join("Chi nhánh ", name, " tại ", V.take(self.prov_short, o.home[who]))
            name = V.where(branch, local, name)
        en = V.join(
            V.take(self.brands_en, brand),
            V.take(self.sector_en, sector),
            V.take(self.form_en, form),
            sep=" ",
        )
        short = V.join(
            V.take(self.brands_en_upper, brand), V.take(self.form_short_en, form), sep=" "
        )
        return name, en, short, V.take(self.form_label, form)

    # -- citizens ------------------------------------------------------------

    def citizen_file(self, pi: int) -> tuple[FileOut, Columns, dict[str, str]]:
        r = self._citizen_rows(pi)
        prof, p, who, u = r.prof, self.people, r.who, r.u
        sex, sur, mid, giv = self._citizen_names(r)
        dob, bad_date, empty_name = self._citizen_dob(r)
        sex_null = u[6] < 0.01
        pid, cmnd, parts, cur, perm_null, pairs = self._citizen_residence(r)
        sur, mid, giv, names, cur, perm, parts = self._citizen_damage(
            r, sur, mid, giv, cur, parts, empty_name, perm_null
        )
        c = {
            "sur": sur,
            "mid": mid,
            "giv": giv,
            "names": names,
            "dob": dob,
            "pid": pid,
            "cmnd": cmnd,
            "perm": perm,
            "parts": parts,
            "cur": cur,
            **self._citizen_contacts(r),
        }
        dy = p.death_year[who]
        dead = (dy > 0) & (u[21] < 0.7)
        dod_m, dod_d = who % 12 + 1, who % 28 + 1
        c["dod"] = V.nullify(V.fmt_date(prof.date_style, np.maximum(dy, 1), dod_m, dod_d), ~dead)
        cols = _render_citizen(
            prof.citizen_layout, c, r.keys, sex, sex_null, dy, dod_m, dod_d, dead
        )
        return self._citizen_out(r, bad_date, pairs), cols, _citizen_types(prof)

    def _citizen_rows(self, pi: int) -> _CitizenRows:
        """Which people this province's civil-status file names, in row order, and the draws."""
        prof = SYSTEM_PROFILES[pi % len(SYSTEM_PROFILES)]
        prov = self.provs[pi]
        rng = self.rng
        p = self.people
        nat = np.arange(pi * self.n_nat, (pi + 1) * self.n_nat, dtype=np.int64)
        others = np.flatnonzero(p.home != pi)
        vis = (
            rng.choice(others, size=min(self.n_vis, others.size), replace=False)
            if self.n_vis
            else np.zeros(0, np.int64)
        )
        wdup = rng.choice(nat, size=self.n_wdup, replace=False)
        hz = self.hz
        if hz is not None:
            vis = hz.visitors(pi, vis)
        who = np.concatenate([nat, vis, wdup])
        kind = np.concatenate(
            [
                np.zeros(nat.size, np.int8),
                np.ones(vis.size, np.int8),
                np.full(wdup.size, 2, np.int8),
            ]
        )
        order = rng.permutation(who.size)
        who, kind = who[order], kind[order]
        n = who.size
        u = _cols(rng.random((n, 25)))
        vis_ward = (rng.random(n) * len(prov.wards)).astype(np.int64)
        vis_house = rng.integers(1, 320, size=n)
        vis_street = rng.integers(0, len(data.STREETS), size=n)
        inv = np.zeros(n, dtype=bool)
        inv[rng.choice(n, size=max(1, n * 3 // 1000), replace=False)] = True
        rows = np.arange(n, dtype=np.int64)
        prefix = prov.slug.replace("-", "")[:3].upper()
        keys = V.codes(rows + 1, prefix, 7)
        if hz is not None:
            hz.begin_file(n)
        return _CitizenRows(
            pi, prof, prov, who, kind, u, vis_ward, vis_house, vis_street, inv, rows, keys
        )

    def _citizen_names(self, r: _CitizenRows) -> tuple[Ints, Str, Str, Str]:
        """(sex, surname, middle name, given name), with the variations a clerk introduces."""
        p, who, u = self.people, r.who, r.u
        sex = p.sex[who]
        giv_t = self.giv_off[sex] + p.given[who]
        mid_t = self.mid_off[sex] + p.middle[who]
        drop_mid = (u[0] < 0.07) & self.mid_common[mid_t]
        giv_shown = np.where(u[1] < 0.4, self.tone_alt[giv_t], giv_t)
        sur = V.take(self.surnames, p.surname[who])
        mid = V.take(self.middles, mid_t, null=drop_mid)
        giv = V.take(self.givens, giv_shown)
        typo_rows = u[2] < 0.03
        u3, u4 = u[3], u[4]
        giv = V.patch(
            giv,
            typo_rows & (u3 < 0.6),
            lambda vs, rs: [typo(v, u3[r], u4[r]) for v, r in zip(vs, rs.tolist(), strict=True)],
        )
        sur = V.patch(
            sur,
            typo_rows & (u3 >= 0.6),
            lambda vs, rs: [typo(v, u4[r], u3[r]) for v, r in zip(vs, rs.tolist(), strict=True)],
        )
        if self.hz is not None:
            sur, mid, giv = self.hz.names(sur, mid, giv)
        return sex, sur, mid, giv

    def _citizen_dob(self, r: _CitizenRows) -> tuple[Str, Mask, Mask]:
        """(birth date as this system knows it, impossible-date rows, empty-name rows)."""
        p, who, u, inv = self.people, r.who, r.u, r.inv
        y, m, d = p.year[who], p.month[who], p.day[who]
        year_only = u[5] < 0.03
        jan1 = (u[5] >= 0.03) & (u[5] < 0.06)  # "unknown day" convention
        swap = (u[5] >= 0.06) & (u[5] < 0.08) & (d <= 12) & (d != m)
        no_dob = (u[5] >= 0.08) & (u[5] < 0.095)
        if self.hz is not None:
            y, m, d, year_only, jan1, swap = self.hz.dates(
                y, m, d, year_only, jan1, swap, no_dob | inv
            )
        bad_date = inv & (u[3] < 0.5) & ~no_dob & ~year_only
        empty_name = inv & ~bad_date
        dd = np.where(bad_date, 30 + r.rows % 2, np.where(jan1, 1, np.where(swap, m, d)))
        mm = np.where(bad_date, 2, np.where(jan1, 1, np.where(swap, d, m)))
        dob = V.where(year_only, V.digits(y, 4), V.fmt_date(r.prof.date_style, y, mm, dd))
        return V.nullify(dob, no_dob), bad_date, empty_name

    def _citizen_residence(
        self, r: _CitizenRows
    ) -> tuple[Str, Str, list[Str], Str, Mask, list[tuple[str, int, int]]]:
        """(ID, CMND, permanent address parts, current address, no-address rows, planted pairs).

        Identity numbers are the old CMND, the 12-digit number, both or neither;
        the residence is the one this system knows (a mover's new one).
        """
        p, who, u, pi, n, hz = self.people, r.who, r.u, r.pi, r.n, self.hz
        cm = p.cmnd[who]
        has_cm = cm >= 0
        u7 = u[7]
        pid_null = (has_cm & ((u7 < 0.4) | (u7 > 0.96))) | (~has_cm & (u7 < 0.07))
        cm_null = ~has_cm | ((u7 >= 0.4) & (u7 < 0.8)) | (u7 > 0.96)
        pid, cmnd = self.pid_text(who), V.digits(np.maximum(cm, 0), 9)

        hp, hw = p.home[who], p.ward[who]
        house, street = p.house[who], p.street[who]
        style = np.where(u[8] < 0.5, 0, np.where(u[8] < 0.85, 1, 2))
        visitor = r.kind == 1
        moved_share = hz.moved_share if hz is not None else 0.5
        moved = visitor & (u[9] < moved_share)  # moved here: both addresses are here now
        staying = visitor & ~moved  # studies/works here: still registered at home
        hp = np.where(moved, pi, hp)
        hw = np.where(moved, r.vis_ward, hw)
        house = np.where(moved, r.vis_house, house)
        street = np.where(moved, r.vis_street, street)
        self.latest_prov[who[moved]] = pi
        self.latest_ward[who[moved]] = r.vis_ward[moved]
        gw = self.ward_base[hp] + hw
        parts = [self.street_part(hp, gw, house, street, u[10]), *self.unit_parts(gw, style)]
        pairs: list[tuple[str, int, int]] = []
        if hz is not None:
            pid, cmnd, pid_null, cm_null, pairs = hz.ids(
                pi, who, moved, pid, cmnd, pid_null, cm_null
            )
            parts = hz.address(parts, gw, moved, self.south70[hp])
        pid, cmnd = V.nullify(pid, pid_null), V.nullify(cmnd, cm_null)
        perm_text = V.join_skip(*parts, sep=", ")
        cgw = self.ward_base[pi] + r.vis_ward
        cur_away = V.join(
            self.street_part(np.full(n, pi), cgw, r.vis_house, r.vis_street, u[10]),
            *self.unit_parts(cgw, style),
            sep=", ",
        )
        cur = V.where(staying, cur_away, V.nullify(perm_text, u[11] >= 0.2))
        perm_null = u[12] < 0.03
        if hz is not None:
            no_address = hz.address_missing(n)
            perm_null |= no_address
            cur = V.nullify(cur, no_address)
        return pid, cmnd, parts, cur, perm_null, pairs

    def _citizen_damage(
        self,
        r: _CitizenRows,
        sur: Str,
        mid: Str,
        giv: Str,
        cur: Str,
        parts: list[Str],
        empty_name: Mask,
        perm_null: Mask,
    ) -> tuple[Str, Str, Str, Str, Str, Str, list[Str]]:
        """Text damage typical of this system, then the blanked and nulled cells.

        Returns (surname, middle, given, full name, current address, permanent
        address, permanent address parts).
        """
        prof, u, n = r.prof, r.u, r.n
        strip = u[22] < prof.strip_rate
        up = u[23] < prof.upper_rate
        moji = u[24] > 1 - prof.mojibake_rate if prof.mojibake_rate else np.zeros(n, bool)
        nfd = u[24] < prof.nfd_rate
        moji_fn = _vni if r.prov.code >= 40 else _tcvn3

        def damage(a: Str) -> Str:
            a = V.patch(a, strip, V.each(_strip))
            a = V.upper(a, up)
            a = V.patch(a, moji, V.each(moji_fn))
            return V.patch(a, nfd, V.each(_nfd))

        sur, mid, giv, cur = damage(sur), damage(mid), damage(giv), damage(cur)
        parts = [damage(x) for x in parts]
        blank = pa.scalar("", pa.string())
        sur = V.where(empty_name, blank, sur)
        mid = V.nullify(mid, empty_name)
        giv = V.where(empty_name, blank, giv)
        names = V.where(empty_name, blank, V.join_skip(sur, mid, giv, sep=" "))
        perm = V.nullify(V.join_skip(*parts, sep=", "), perm_null)
        parts = [V.nullify(x, perm_null) for x in parts]
        return sur, mid, giv, names, cur, perm, parts

    def _citizen_contacts(self, r: _CitizenRows) -> dict[str, Str]:
        """Phone, email, ethnicity, nationality, place of birth and home province cells."""
        prof, p, who, u, n, hz = r.prof, self.people, r.who, r.u, r.n, self.hz
        has_phone = p.has_phone[who] & (u[15] < 0.85)
        old = u[13] < prof.old_phone_rate
        if hz is None:
            phone = self.phone(who, old, u[14])
        else:
            old = hz.old_phones(who, old)
            plain = self.phone(who, old, np.zeros(n))
            phone, has_phone = hz.phones(self.phone(who, old, u[14]), plain, has_phone)
        phone = V.nullify(phone, ~has_phone)
        email = V.nullify(self.email(who), ~(p.has_email[who] & (u[16] < 0.6)))
        eth = V.take(self.ethnicities, p.ethnicity[who], null=u[17] >= 0.85)
        nation = V.take(
            V.pool(["Việt Nam", "VN"]), (u[18] >= 0.8).astype(np.int64), null=u[18] >= 0.95
        )
        breg = p.birth_reg[who]
        pob = V.take(self.prov_short_by_code, breg, null=u[19] >= 0.6)
        home = V.take(self.prov_full_by_code, breg, null=u[20] >= 0.4)
        return {
            "phone": phone,
            "email": email,
            "eth": eth,
            "nat": nation,
            "pob": pob,
            "home": home,
        }

    def _citizen_out(
        self, r: _CitizenRows, bad_date: Mask, pairs: list[tuple[str, int, int]]
    ) -> FileOut:
        """The citizen file's record: its system, format, keys, people and invalid rows."""
        prof, prov, keys = r.prof, r.prov, r.keys
        bad = np.flatnonzero(r.inv)
        invalid = [
            (k, "impossible_date" if b else "empty_name")
            for k, b in zip(
                keys.take(pa.array(bad)).to_pylist(), bad_date[bad].tolist(), strict=True
            )
        ]
        return FileOut(
            name=f"{prov.slug}_citizens",
            source_system=f"{prov.slug}-hotich",
            entity_type="citizen",
            layout=prof.citizen_layout,
            format=prof.citizen_format,
            encoding=prof.encoding
            if prof.citizen_format == "csv"
            else ("utf-8" if prof.citizen_format == "jsonl" else "binary"),
            delimiter=prof.delimiter,
            keys=keys,
            entities=r.who,
            invalid=invalid,
            pairs=pairs,
        )

    def phone(self, who: Ints, old: Mask, u: Any) -> Str:
        """Mobile number, pre-2018 11-digit form where ``old``, in one of four spellings."""
        p = self.people
        pref = p.phone_prefix[who]
        head = V.where(old, V.take(self.phone_old, pref), V.take(self.phone_new, pref))
        number = V.join(head, V.digits(p.phone_tail[who], 7))
        a, b, c = V.slice_text(number, 0, 4), V.slice_text(number, 4, 7), V.slice_text(number, 7)
        intl = V.join("+84", V.slice_text(number, 1))
        return V.where(
            u < 0.7,
            number,
            V.where(
                u < 0.8, intl, V.where(u < 0.9, V.join(a, b, c, sep=" "), V.join(a, b, c, sep="."))
            ),
        )

    def email(self, who: Ints) -> Str:
        p = self.people
        giv = self.giv_off[p.sex[who]] + p.given[who]
        no = p.email_no[who]
        return V.join(
            V.take(self.email_base, giv * self.n_sur + p.surname[who]),
            V.digits(no % 1000),
            "@",
            V.take(self.domains, no % len(data.EMAIL_DOMAINS)),
        )

    def portal_citizens(self, extra: Ints) -> tuple[FileOut, Columns]:
        p = self.people
        rng = self.rng
        chosen = rng.random(p.size) < 0.2
        chosen[extra] = True
        who = np.flatnonzero(chosen)
        who = who[rng.permutation(who.size)]
        u = _cols(rng.random((who.size, 4)))
        lp, lw = self.latest_prov[who], self.latest_ward[who]
        gw = self.ward_base[lp] + lw
        addr = V.join(
            self.street_part(lp, gw, p.house[who], p.street[who], u[0]),
            V.take(self.new_form, gw),
            sep=", ",
        )
        sex = p.sex[who]
        pid = self.pid_text(who)
        cols: Columns = {
            "personal_id": pid,
            "full_name": V.join(
                V.take(self.surnames, p.surname[who]),
                V.take(self.middles, self.mid_off[sex] + p.middle[who]),
                V.take(self.givens, self.giv_off[sex] + p.given[who]),
                sep=" ",
            ),
            "date_of_birth": V.fmt_date("iso", p.year[who], p.month[who], p.day[who]),
            "sex": V.take(V.pool(["Nam", "Nữ"]), sex),
            "permanent_address": addr,
            "current_address": V.nullify(addr, u[1] >= 0.5),
            "phone": V.nullify(
                self.phone(who, np.zeros(who.size, bool), np.zeros(who.size)), ~p.has_phone[who]
            ),
            "email": V.nullify(self.email(who), ~(p.has_email[who] & (u[2] < 0.8))),
            "ethnicity": V.take(self.ethnicities, p.ethnicity[who]),
            "nationality": V.take(V.pool(["Việt Nam"]), np.zeros(who.size, np.int64)),
        }
        f = FileOut(
            "national-portal_citizens",
            PORTAL,
            "citizen",
            "citizen_portal",
            "csv",
            "utf-8",
            ",",
            pid,
            who,
        )
        return f, cols

    # -- organizations -------------------------------------------------------

    def org_file(self, pi: int) -> tuple[FileOut, Columns]:
        prof = SYSTEM_PROFILES[pi % len(SYSTEM_PROFILES)]
        prov = self.provs[pi]
        o, p = self.orgs, self.people
        own = np.flatnonzero(o.home == pi)
        others = np.flatnonzero((o.home != pi) & (o.parent < 0))
        n_cross = min(self.org_cross, others.size)
        cross = self.rng.choice(others, size=n_cross, replace=False) if n_cross else own[:0]
        who = np.concatenate([own, cross])
        order = self.rng.permutation(who.size)
        flags = np.concatenate([np.zeros(own.size, bool), np.ones(cross.size, bool)])[order]
        who = who[order]
        n = who.size
        u = _cols(self.rng.random((n, 10)))
        inv = np.zeros(n, dtype=bool)
        if n >= 50:
            inv[self.rng.choice(n, size=max(1, n * 3 // 1000), replace=False)] = True
        rows = np.arange(n, dtype=np.int64)
        keys = V.codes(rows + 1, f"DN{prov.code:02d}", 6)
        name, en, short, form = self.org_names(who, u[0])
        name = V.patch(name, u[1] < 0.03, V.each(_strip))
        name = V.upper(name, (u[1] >= 0.03) & (u[1] < 0.15))
        u3, u4 = u[3], u[4]
        name = V.patch(
            name,
            u[2] < 0.02,
            lambda vs, rs: [typo(v, u3[r], u4[r]) for v, r in zip(vs, rs.tolist(), strict=True)],
        )
        no_tax = u[5] <= 0.03
        tax = V.nullify(pa.array(o.tax_text(who), pa.string()), no_tax)
        hp, hw = o.home[who], o.ward[who]
        style = np.where(u[6] < 0.5, 0, np.where(u[6] < 0.85, 1, 2))
        local = flags & (u[7] < 0.5)  # known here by its local office's address
        hw = np.where(local, (u[8] * len(prov.wards)).astype(np.int64), hw)
        hp = np.where(local, pi, hp)
        gw = self.ward_base[hp] + hw
        addr = V.join(
            self.street_part(hp, gw, o.house[who], o.street[who], u[8]),
            *self.unit_parts(gw, style),
            sep=", ",
        )
        rep_i = o.representative[who]
        rep_cm = p.cmnd[rep_i]
        rep = V.where(
            (rep_cm < 0) | (u[9] < 0.6), self.pid_text(rep_i), V.digits(np.maximum(rep_cm, 0), 9)
        )
        bad_tax = inv & (u3 < 0.5) & ~no_tax
        tax = V.patch(tax, bad_tax, lambda vs, rs: [_spoil_check_digit(v) for v in vs])
        empty = inv & ~bad_tax
        name = V.where(empty, pa.scalar("", pa.string()), name)
        bad = np.flatnonzero(inv)
        invalid = [
            (k, "bad_tax_check_digit" if b else "empty_name")
            for k, b in zip(
                keys.take(pa.array(bad)).to_pylist(), bad_tax[bad].tolist(), strict=True
            )
        ]
        en = V.nullify(en, u4 >= 0.5)
        short = V.nullify(short, u4 >= 0.4)
        form = V.nullify(form, u[7] >= 0.7)
        fy, fm, fd = o.founded_y[who], o.founded_m[who], o.founded_d[who]
        st = o.status[who]
        layout = prof.org_layout
        cols: Columns
        if layout == "org_legacy_csv":
            cols = {
                "MA_DN": keys,
                "MA_SO_THUE": tax,
                "TEN_DOANH_NGHIEP": name,
                "TEN_TIENG_ANH": en,
                "TEN_VIET_TAT": short,
                "LOAI_HINH": form,
                "DIA_CHI_TRU_SO": addr,
                "NGUOI_DAI_DIEN": rep,
                "NGAY_THANH_LAP": V.fmt_date("dmy", fy, fm, fd),
                "TINH_TRANG": V.take(V.pool(["1", "2", "3"]), st),
            }
        else:
            cols = {
                "id": keys,
                "taxCode": tax,
                "name": name,
                "englishName": en,
                "abbreviation": short,
                "type": form,
                "headOffice": addr,
                "representativeId": rep,
                "establishedOn": V.fmt_date("iso", fy, fm, fd),
                "state": V.take(V.pool([data.ORG_STATUS_VI[s] for s in data.ORG_STATUS]), st),
            }
        fmt = "jsonl" if layout.endswith("jsonl") else "csv"
        enc = "utf-8" if fmt == "jsonl" else _ORG_DOSSIER_ENCODING.get(prof.encoding, "utf-8")
        f = FileOut(
            f"{prov.slug}_organizations",
            f"{prov.slug}-dkkd",
            "organization",
            layout,
            fmt,
            enc,
            "," if fmt == "csv" else "",
            keys,
            who,
            invalid=invalid,
        )
        return f, cols

    def portal_orgs(self, extra: Ints) -> tuple[FileOut, Columns]:
        o = self.orgs
        chosen = self.rng.random(o.size) < 0.3
        chosen[extra] = True
        who = np.flatnonzero(chosen)
        who = who[self.rng.permutation(who.size)]
        u = _cols(self.rng.random((who.size, 2)))
        name, en, short, form = self.org_names(who, np.zeros(who.size))
        hp, gw = o.home[who], self.ward_base[o.home[who]] + o.ward[who]
        addr = V.join(
            self.street_part(hp, gw, o.house[who], o.street[who], u[0]),
            V.take(self.new_form, gw),
            sep=", ",
        )
        tax = pa.array(o.tax_text(who), pa.string())
        cols: Columns = {
            "tax_code": tax,
            "name": name,
            "name_en": en,
            "short_name": short,
            "legal_form": form,
            "address": addr,
            "legal_representative_id": self.pid_text(o.representative[who]),
            "founding_date": V.fmt_date(
                "iso", o.founded_y[who], o.founded_m[who], o.founded_d[who]
            ),
            "status": V.take(
                V.pool([data.ORG_STATUS_VI[s] for s in data.ORG_STATUS]), o.status[who]
            ),
        }
        f = FileOut(
            "national-portal_organizations",
            PORTAL,
            "organization",
            "org_portal",
            "csv",
            "utf-8",
            ",",
            tax,
            who,
        )
        return f, cols

    # -- dossiers ------------------------------------------------------------

    def dossier_file(
        self, pi: int, cit: FileOut, org: FileOut, first_id: int, portal: list[Columns]
    ) -> tuple[FileOut, Columns, Ints, Ints]:
        """One province's one-stop dossiers; rows synchronised to the portal go to ``portal``.

        Returns the file, its columns, and the people and organizations that the
        portal rows name (the portal must know them).
        """
        d = self._dossier_rows(pi, cit, org, first_id)
        prov, prof = d.prov, d.prof
        cols, src_keys = _dossier_columns(d)
        bad = np.flatnonzero(d.inv)
        invalid = [(k, "impossible_date") for k in src_keys.take(pa.array(bad)).to_pylist()]
        s_ent, s_org = self._dossier_portal(d, portal)
        layout = prof.dossier_layout
        fmt = "csv" if d.csv_layout else "jsonl"
        enc = "utf-8" if fmt == "jsonl" else _ORG_DOSSIER_ENCODING.get(prof.encoding, "utf-8")
        f = FileOut(
            f"{prov.slug}_dossiers",
            f"{prov.slug}-motcua",
            "dossier",
            layout,
            fmt,
            enc,
            "," if fmt == "csv" else "",
            src_keys,
            d.ents,
            invalid=invalid,
        )
        return f, cols, s_ent[~s_org], s_ent[s_org]

    def _dossier_rows(self, pi: int, cit: FileOut, org: FileOut, first_id: int) -> _DossierRows:
        """The draws and the cells every layout of one province's dossiers shares."""
        rng = self.rng
        prov = self.provs[pi]
        prof = SYSTEM_PROFILES[pi % len(SYSTEM_PROFILES)]
        epoch = int(np.datetime64("2019-01-01T07:30", "m").astype(np.int64))
        span_days = int((np.datetime64("2025-06-30") - np.datetime64("2019-01-01")).astype(int))
        n = self.n_dossiers
        u = _cols(rng.random((n, 12)))
        c_pick = rng.integers(0, cit.rows, size=n)
        o_pick = rng.integers(0, max(1, org.rows), size=n)
        proc = rng.integers(0, len(data.PROCEDURE_CODES), size=n)
        status = rng.choice(len(data.DOSSIER_STATUS), size=n, p=data.DOSSIER_STATUS_WEIGHTS)
        inv = np.zeros(n, dtype=bool)
        if n >= 50:
            inv[rng.choice(n, size=max(1, n * 3 // 1000), replace=False)] = True
        rows = np.arange(n, dtype=np.int64)
        ents = first_id + rows
        unit = f"H{prov.code:02d}.{pi + 10}"
        is_org = (u[0] < 0.2) & (org.rows > 0)
        o_safe = np.minimum(o_pick, max(0, org.rows - 1))
        if org.rows:
            org_key = V.codes(o_safe + 1, f"DN{prov.code:02d}", 6)
            org_ent = org.entities[o_safe]
        else:
            org_key, org_ent = V.codes(o_safe, "", 1), np.zeros(n, np.int64)
        cit_prefix = prov.slug.replace("-", "")[:3].upper()
        app_key = V.where(is_org, org_key, V.codes(c_pick + 1, cit_prefix, 7))
        app_ent = np.where(is_org, org_ent, cit.entities[c_pick])
        sub = epoch + (u[1] * span_days).astype(np.int64) * 1440 + (u[2] * 540).astype(np.int64)
        st = status
        done = st == data.DOSSIER_STATUS.index("done")
        decided = done | (st == data.DOSSIER_STATUS.index("rejected"))
        dec = sub + (1 + (u[3] * 30).astype(np.int64)) * 1440 + (u[4] * 6).astype(np.int64) * 60
        sy, smo, sd, sh, smi = V.civil(sub)
        code = V.join(
            f"000.00.{pi + 10}.{unit[:3]}-",
            V.digits(sy % 100, 2),
            V.digits(smo, 2),
            V.digits(sd, 2),
            "-",
            V.digits(rows + 1, 4),
        )
        result = V.nullify(
            V.join(
                V.digits(100 + (u[5] * 9000).astype(np.int64)),
                "/",
                V.take(V.pool(["QĐ-UBND", "GCN"]), (u[6] >= 0.5).astype(np.int64)),
            ),
            ~done,
        )
        gw = self.ward_base[pi] + (u[7] * len(prov.wards)).astype(np.int64)
        agency = V.where(u[8] < 0.7, V.take(self.agency_ward, gw), V.take(self.agency_district, gw))
        return _DossierRows(
            prov=prov,
            prof=prof,
            n=n,
            u=u,
            inv=inv,
            ents=ents,
            unit=unit,
            is_org=is_org,
            app_key=app_key,
            app_ent=app_ent,
            status=st,
            done=done,
            decided=decided,
            dec=dec,
            submitted=(sy, smo, sd, sh, smi),
            code=code,
            result=result,
            gw=gw,
            agency=agency,
            key=V.digits(rows + 1, 7),
            proc_code=V.take(V.pool(data.PROCEDURE_CODES), proc),
        )

    def _dossier_portal(self, d: _DossierRows, portal: list[Columns]) -> tuple[Ints, Mask]:
        """Append the dossiers synchronised to the national portal (the same dossier, another
        system) to ``portal``; return the entity each names and whether it is an organization.
        """
        u, done, decided, dec, code = d.u, d.done, d.decided, d.dec, d.code
        sy, smo, sd, sh, smi = d.submitted
        sync = (u[9] < 0.3) & ~d.inv
        lag = (u[10] < 0.2) & done
        sel = pa.array(sync)
        s_org = d.is_org[sync]
        s_ent = d.app_ent[sync]
        s_rows = np.flatnonzero(sync)
        applicant = V.where(
            s_org,
            pa.array(self.orgs.tax_text(np.where(s_org, s_ent, 0)), pa.string()),
            self.pid_text(np.where(s_org, 0, s_ent)),
        )
        p_status = np.where(lag, data.DOSSIER_STATUS.index("processing"), d.status)[sync]
        portal.append(
            {
                "ma_ho_so_dvc": V.codes(d.ents[sync] + 1, f"G22.{d.prov.code:02d}-", 9),
                "ma_ho_so": code.filter(sel),
                "ma_thu_tuc": d.proc_code.filter(sel),
                "so_dinh_danh_nguoi_nop": applicant,
                "loai_doi_tuong": V.take(
                    V.pool(["cong_dan", "doanh_nghiep"]), s_org.astype(np.int64)
                ),
                "co_quan_tiep_nhan": V.take(self.agency_new, d.gw[s_rows]),
                "ngay_tiep_nhan": V.join(_iso(sy, smo, sd, sh, smi).filter(sel), "+07:00"),
                "ngay_co_ket_qua": V.nullify(
                    V.join(_iso(*V.civil(dec)).filter(sel), "+07:00"), (~decided | lag)[sync]
                ),
                "trang_thai": V.take(
                    V.pool([data.DOSSIER_STATUS_VI[s] for s in data.DOSSIER_STATUS]), p_status
                ),
                "so_van_ban": V.nullify(d.result.filter(sel), lag[sync]),
                "_entity": pa.array(d.ents[sync]),
            }
        )
        return s_ent, s_org

    def portal_dossiers(self, parts: list[Columns]) -> tuple[FileOut, Columns]:
        merged = {k: pa.concat_arrays([p[k] for p in parts]) for k in parts[0]}
        order = pa.array(self.rng.permutation(len(merged["ma_ho_so_dvc"])))
        merged = {k: v.take(order) for k, v in merged.items()}
        ents = merged.pop("_entity").to_numpy()
        f = FileOut(
            "national-portal_dossiers",
            PORTAL,
            "dossier",
            "dossier_portal",
            "jsonl",
            "utf-8",
            "",
            merged["ma_ho_so_dvc"],
            ents,
        )
        return f, merged


@dataclass
class _DossierRows:
    """One province's dossiers: the draws and the cells every layout shares."""

    prov: geo.LegacyProvince
    prof: SystemProfile
    n: int
    u: list[npt.NDArray[np.float64]]
    inv: Mask
    ents: Ints
    unit: str
    is_org: Mask
    app_key: Str
    app_ent: Ints
    status: Ints
    done: Mask
    decided: Mask
    dec: Ints  # decision time, minutes since the epoch
    submitted: tuple[Ints, Ints, Ints, Ints, Ints]  # year, month, day, hour, minute
    code: Str
    result: Str
    gw: Ints
    agency: Str
    key: Str
    proc_code: Str

    @property
    def csv_layout(self) -> bool:
        return self.prof.dossier_layout.endswith("csv")


def _dossier_columns(d: _DossierRows) -> tuple[Columns, Str]:
    """The dossier file's columns in its layout, and the source key of each row."""
    n, inv, key, code, proc_code = d.n, d.inv, d.key, d.code, d.proc_code
    sy, smo, sd, sh, smi = d.submitted
    hm = V.join(V.digits(sh, 2), V.digits(smi, 2), sep=":")
    if d.csv_layout:
        submitted = V.where(
            inv,
            V.join("31/02/", V.digits(sy, 4), " ", hm),
            _dmy_hm(sy, smo, sd, sh, smi),
        )
        decided_s = V.nullify(_dmy_hm(*V.civil(d.dec)), ~d.decided)
        cols: Columns = {
            "MA_DON_VI": V.take(V.pool([d.unit]), np.zeros(n, np.int64)),
            "SO_BIEN_NHAN": key,
            "MA_HO_SO": code,
            "MA_TTHC": proc_code,
            "MA_NGUOI_NOP": d.app_key,
            "LOAI_NGUOI_NOP": V.take(V.pool(["CD", "TC"]), d.is_org.astype(np.int64)),
            "CO_QUAN_TIEP_NHAN": d.agency,
            "NGAY_NOP": submitted,
            "NGAY_TRA_KQ": decided_s,
            "TRANG_THAI": V.take(
                V.pool([data.DOSSIER_STATUS_VI[s] for s in data.DOSSIER_STATUS]), d.status
            ),
            "SO_KET_QUA": d.result,
        }
        return cols, V.join(d.unit + "|", key)
    submitted = V.where(
        inv,
        V.join(V.digits(sy, 4), "-02-31T", hm, ":00"),
        _iso(sy, smo, sd, sh, smi),
    )
    cols = {
        "id": key,
        "dossierCode": code,
        "procedureCode": proc_code,
        "applicantId": d.app_key,
        "applicantType": V.take(V.pool(["citizen", "organization"]), d.is_org.astype(np.int64)),
        "agency": d.agency,
        "submittedAt": submitted,
        "decidedAt": V.nullify(_iso(*V.civil(d.dec)), ~d.decided),
        "status": V.take(V.pool(data.DOSSIER_STATUS), d.status),
        "resultNumber": d.result,
    }
    return cols, key


def _forms(w: geo.LegacyWard) -> tuple[tuple[str, str, str], ...]:
    """(full, abbreviated, bare) legacy (commune, district, province) names."""
    prov_short = geo.short_name(w.province)
    prov_abbr = ("TP. " if w.province.startswith("Thành phố") else "") + prov_short
    ward_bare, dist_bare = geo.bare(w.name), geo.bare(w.district)
    ward_bare = w.name if ward_bare.isdigit() else ward_bare
    dist_bare = w.district if dist_bare.isdigit() else dist_bare
    wab = {"phường": "P.", "xã": "X.", "thị trấn": "TT."}.get(w.kind, "")
    dab = {"quận": "Q.", "huyện": "H.", "thị xã": "TX.", "thành phố": "TP."}.get(
        w.district_kind, ""
    )
    return (
        (w.name, w.district, w.province),
        (f"{wab} {geo.bare(w.name)}", f"{dab} {geo.bare(w.district)}", prov_abbr),
        (ward_bare, dist_bare, prov_short),
    )


def _spoil_check_digit(tax: str | None) -> str | None:
    if tax is None:
        return None
    return tax[:9] + str((int(tax[9]) + 1) % 10) + tax[10:]


def _dmy_hm(y: Ints, m: Ints, d: Ints, hh: Ints, mi: Ints) -> Str:
    return V.join(V.fmt_date("dmy", y, m, d), " ", V.digits(hh, 2), ":", V.digits(mi, 2))


def _iso(y: Ints, m: Ints, d: Ints, hh: Ints, mi: Ints) -> Str:
    return V.join(V.fmt_date("iso", y, m, d), "T", V.digits(hh, 2), ":", V.digits(mi, 2), ":00")


# -- layouts --------------------------------------------------------------------
# Column names here must match schemas/mappings/<layout>.yaml (a test checks it).


def _render_citizen(
    layout: str,
    c: dict[str, Any],
    keys: Str,
    sex: Ints,
    sex_null: Mask,
    dy: Ints,
    dod_m: Ints,
    dod_d: Ints,
    dead: Mask,
) -> Columns:
    def sex_as(*labels: str) -> Str:
        return V.take(V.pool(list(labels)), sex, null=sex_null)

    if layout == "citizen_a":
        return {
            "MA_CONG_DAN": keys,
            "HO_TEN": c["names"],
            "NGAY_SINH": c["dob"],
            "GIOI_TINH": sex_as("1", "2"),
            "SO_CMND": c["cmnd"],
            "SO_DINH_DANH": c["pid"],
            "NOI_SINH": c["pob"],
            "QUE_QUAN": c["home"],
            "DIA_CHI_THUONG_TRU": c["perm"],
            "DIA_CHI_HIEN_TAI": c["cur"],
            "SO_DIEN_THOAI": c["phone"],
            "EMAIL": c["email"],
            "DAN_TOC": c["eth"],
            "QUOC_TICH": c["nat"],
            "NGAY_MAT": c["dod"],
        }
    if layout == "citizen_b":
        street, commune, district, province = c["parts"]
        return {
            "SO_HO_SO": keys,
            "HO": c["sur"],
            "TEN_DEM": c["mid"],
            "TEN": c["giv"],
            "NGAY_SINH": c["dob"],
            "GIOI_TINH": sex_as("Nam", "Nữ"),
            "SO_CMND": c["cmnd"],
            "SO_CCCD": c["pid"],
            "SO_NHA_DUONG": street,
            "XA_PHUONG": commune,
            "QUAN_HUYEN": district,
            "TINH_THANH": province,
            "NOI_O_HIEN_TAI": c["cur"],
            "DIEN_THOAI": c["phone"],
            "DAN_TOC": c["eth"],
            "QUOC_TICH": c["nat"],
            "NOI_SINH": c["pob"],
        }
    if layout == "citizen_c":
        return {
            "MaCD": keys,
            "HoVaTen": c["names"],
            "NgaySinh": c["dob"],
            "GioiTinh": sex_as("1", "0"),
            "SoCMND": c["cmnd"],
            "SoCCCD": c["pid"],
            "NguyenQuan": c["home"],
            "HoKhauThuongTru": c["perm"],
            "ChoOHienNay": c["cur"],
            "DienThoai": c["phone"],
            "DanToc": c["eth"],
            "NgayChet": c["dod"],
        }
    if layout == "citizen_d":
        return {
            "id": keys,
            "fullName": c["names"],
            "dob": c["dob"],
            "gender": sex_as("M", "F"),
            "idCard": c["cmnd"],
            "citizenId": c["pid"],
            "birthPlace": c["pob"],
            "address": c["perm"],
            "currentAddress": c["cur"],
            "mobile": c["phone"],
            "email": c["email"],
            "ethnic": c["eth"],
            "nationality": c["nat"],
        }
    if layout == "citizen_e":
        days = _days(np.maximum(dy, 1970), dod_m, dod_d)
        return {
            "ma_dan_cu": keys,
            "ho_ten": c["names"],
            "ngay_sinh": c["dob"],
            "gioi_tinh": pa.array((sex + 1).astype(np.int32), mask=sex_null),
            "so_cmnd": c["cmnd"],
            "so_ddcn": c["pid"],
            "dia_chi_thuong_tru": c["perm"],
            "dien_thoai": c["phone"],
            "dan_toc": c["eth"],
            "ngay_mat": pa.array(days.astype(np.int32), mask=~dead, type=pa.int32()).cast(
                pa.date32()
            ),
        }
    raise ValueError(layout)


def _days(y: Ints, m: Ints, d: Ints) -> Ints:
    """Days since 1970-01-01 of (year, month, day) arrays."""
    months = (y - 1970) * 12 + (m - 1)
    first = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    return first + d - 1


# -- driver ---------------------------------------------------------------------


class _Writer:
    """Writes each file as soon as it is built and appends its rows to ``truth.csv``."""

    def __init__(self, out: Path) -> None:
        self.out = out
        (out / "data").mkdir(parents=True, exist_ok=True)
        (out / "mappings").mkdir(parents=True, exist_ok=True)
        self.truth: IO[bytes] = open(out / "truth.csv", "wb")  # noqa: SIM115
        self.truth.write(b"source_system,source_key,entity_type,true_entity\n")
        self.entries: list[dict[str, Any]] = []
        self.files: list[FileOut] = []

    def emit(self, f: FileOut, cols: Columns, types: dict[str, str] | None = None) -> None:
        ext = {
            "csv": "csv" if f.delimiter != "\t" else "txt",
            "jsonl": "jsonl",
            "parquet": "parquet",
        }[f.format]
        rel = f"data/{f.name}.{ext}"
        path = self.out / rel
        if f.format == "csv":
            write_csv(path, cols, encoding=f.encoding, delimiter=f.delimiter)
        elif f.format == "jsonl":
            write_jsonl(path, cols)
        else:
            write_parquet(path, cols, types or {})
        mapping_src = MAPPINGS_DIR / f"{f.layout}.yaml"
        shutil.copyfile(mapping_src, self.out / "mappings" / mapping_src.name)
        self.entries.append(
            {
                "path": rel,
                "source_system": f.source_system,
                "entity_type": f.entity_type,
                "layout": f.layout,
                "mapping": f"mappings/{mapping_src.name}",
                "format": f.format,
                "encoding": f.encoding,
                **({"delimiter": f.delimiter} if f.format == "csv" else {}),
                "rows": f.rows,
                "invalid_rows": len(f.invalid),
            }
        )
        prefix, width = _ENTITY[f.entity_type]
        n = f.rows
        write_csv(
            self.truth,
            {
                "source_system": V.take(V.pool([f.source_system]), np.zeros(n, np.int64)),
                "source_key": f.keys,
                "entity_type": V.take(V.pool([f.entity_type]), np.zeros(n, np.int64)),
                "true_entity": V.codes(f.entities, prefix, width),
            },
            encoding="utf-8",
            delimiter=",",
            eol="\n",
            header=False,
        )
        f.keys = None  # the truth has them; free the memory
        self.files.append(f)

    def close(self) -> None:
        self.truth.close()


def generate(
    out: Path | str,
    params: SynthParams | None = None,
    *,
    provinces: int = 5,
    citizens: int = 10_000,
    organizations: int | None = None,
    dossiers: int | None = None,
    seed: int = 0,
    portal: bool = True,
    profile: str = "standard",
) -> dict[str, Any]:
    """Write the whole synthetic estate to ``out`` and return the manifest.

    Pass a :class:`SynthParams` or the same fields as keywords
    (``generate(d, provinces=10, citizens=100_000, seed=7)``). Same parameters →
    byte-identical files. ``out`` is created; files in it with the same names are
    overwritten, others are left alone. ``profile`` (one of :data:`PROFILES`)
    plants a family of hazards on top of the standard world
    (:mod:`mdm.synth.hazards`); ``standard`` writes what the generator always wrote.
    """
    out = Path(out)
    if params is None:
        params = SynthParams(provinces, citizens, organizations, dossiers, seed, portal, profile)
    world = _World(params)
    w = _Writer(out)
    try:
        citizens_out: list[FileOut] = []
        for pi in range(world.n_prov):
            f, cols, types = world.citizen_file(pi)
            w.emit(f, cols, types)
            citizens_out.append(f)
            del cols
        orgs_out: list[FileOut] = []
        for pi in range(world.n_prov):
            f, cols = world.org_file(pi)
            w.emit(f, cols)
            orgs_out.append(f)
            del cols
        portal_parts: list[Columns] = []
        need_people: list[Ints] = []
        need_orgs: list[Ints] = []
        first_id = 1
        for pi in range(world.n_prov):
            f, cols, np_, no_ = world.dossier_file(
                pi, citizens_out[pi], orgs_out[pi], first_id, portal_parts
            )
            first_id += f.rows
            w.emit(f, cols)
            need_people.append(np_)
            need_orgs.append(no_)
            del cols
        portal_dossiers = None
        if params.portal and any(len(p["_entity"]) for p in portal_parts):
            portal_dossiers = world.portal_dossiers(portal_parts)
        portal_parts.clear()
        if params.portal:
            w.emit(*world.portal_citizens(np.concatenate(need_people)))
            w.emit(*world.portal_orgs(np.concatenate(need_orgs)))
            if portal_dossiers is not None:
                w.emit(*portal_dossiers)
    finally:
        w.close()
    files = w.files

    _write_table(
        out / "expected_rejects.csv",
        ["source_system", "source_key", "entity_type", "reason"],
        ((f.source_system, k, f.entity_type, why) for f in files for k, why in f.invalid),
    )
    pairs = _hard_negative_rows(world, citizens_out)
    _write_table(
        out / "hard_negatives.csv",
        ["kind", "source_system", "source_key_a", "source_key_b", "true_entity_a", "true_entity_b"],
        pairs,
    )
    summary = _summary(world, files, pairs)
    manifest = {
        "version": 1,
        "generator": "mdm synth",
        "params": {
            "provinces": params.provinces,
            "citizens": params.citizens,
            "organizations": world.n_org_rows,
            "dossiers": world.n_dossiers,
            "seed": params.seed,
            "portal": params.portal,
            "profile": params.profile,
        },
        "provinces": [
            {
                "code": f"{p.code:03d}",
                "name": p.name,
                "new_code": f"{p.new_code:02d}",
                "new_name": p.new_name,
            }
            for p in world.provs
        ],
        "files": w.entries,
        "truth": "truth.csv",
        "expected_rejects": "expected_rejects.csv",
        "hard_negatives": "hard_negatives.csv",
        "summary": summary,
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return manifest


def _write_table(path: Path, header: list[str], rows: Any) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")


def _hard_negative_rows(world: _World, citizens: list[FileOut]) -> list[tuple[str, ...]]:
    """Pairs of rows in one system whose people are look-alikes (first row of each)."""
    hn = world.people.hard_negatives
    kinds = [k for k, _, _ in hn]
    a = np.array([x for _, x, _ in hn], dtype=np.int64)
    b = np.array([y for _, _, y in hn], dtype=np.int64)
    rows: list[tuple[str, ...]] = []
    for f in citizens:
        prefix = f.name.removesuffix("_citizens").replace("-", "")[:3].upper()
        first = np.full(world.people.size, -1, dtype=np.int64)
        ents, idx = np.unique(f.entities, return_index=True)
        first[ents] = idx
        both = np.flatnonzero((first[a] >= 0) & (first[b] >= 0))
        for j in both.tolist():
            rows.append(
                (
                    kinds[j],
                    f.source_system,
                    f"{prefix}{first[a[j]] + 1:07d}",
                    f"{prefix}{first[b[j]] + 1:07d}",
                    f"P{a[j]:08d}",
                    f"P{b[j]:08d}",
                )
            )
        for kind, ra, rb in f.pairs:
            ea, eb = int(f.entities[ra]), int(f.entities[rb])
            rows.append(
                (
                    kind,
                    f.source_system,
                    f"{prefix}{ra + 1:07d}",
                    f"{prefix}{rb + 1:07d}",
                    f"P{ea:08d}",
                    f"P{eb:08d}",
                )
            )
    return rows


def _cross_rate(files: list[FileOut], n_entities: int) -> float:
    """Share of rows whose entity appears in more than one of ``files``' systems."""
    systems = np.zeros(n_entities, dtype=np.int64)
    for f in files:
        systems[np.unique(f.entities)] += 1
    total = sum(f.rows for f in files)
    cross = sum(int((systems[f.entities] > 1).sum()) for f in files)
    return round(cross / total, 4) if total else 0.0


def _summary(world: _World, files: list[FileOut], pairs: list[tuple[str, ...]]) -> dict[str, Any]:
    legacy = [f for f in files if f.entity_type == "citizen" and f.source_system != PORTAL]
    org_legacy = [f for f in files if f.entity_type == "organization" and f.source_system != PORTAL]
    seen = np.zeros(world.people.size, dtype=bool)
    for f in files:
        if f.entity_type == "citizen":
            seen[f.entities] = True
    by_type: Counter[str] = Counter()
    for f in files:
        by_type[f.entity_type] += f.rows
    return {
        "files": len(files),
        "rows": sum(f.rows for f in files),
        "rows_by_entity_type": dict(by_type),
        "invalid_rows": sum(len(f.invalid) for f in files),
        "distinct_people": int(seen.sum()),
        "citizen_cross_province_duplicate_rate": _cross_rate(legacy, world.people.size),
        "organization_cross_province_duplicate_rate": _cross_rate(org_legacy, world.orgs.size),
        "hard_negative_pairs": dict(Counter(p[0] for p in pairs)),
        "branches": int((world.orgs.parent >= 0).sum()),
        # rows (or people, households) that got each hazard of the profile
        **({"hazards": world.hz.summary()} if world.hz is not None else {}),
    }
