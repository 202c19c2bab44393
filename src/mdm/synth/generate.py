"""Render the true world into the files that legacy provinces and the national portal export.

Each simulated former province gets one source system per entity type with its
own layout, encoding, date format and habits of damage; the national portal
writes clean 2025-form data. ``truth.csv`` says which real entity every written
row is about; ``hard_negatives.csv`` lists look-alike pairs that must stay apart;
``expected_rejects.csv`` lists the rows deliberately made invalid.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mdm.synth import data, geo
from mdm.synth.people import Orgs, People, make_orgs, make_people
from mdm.synth.text import strip_diacritics, tcvn3_mojibake, to_nfd, typo
from mdm.synth.writers import Columns, write_csv, write_jsonl, write_parquet

MAPPINGS_DIR = Path(__file__).resolve().parents[3] / "schemas" / "mappings"
PORTAL = "national-portal"

DATE_STYLES = {
    "dmy": "{d:02d}/{m:02d}/{y:04d}",
    "dmy_nopad": "{d}/{m}/{y:04d}",
    "dmy_dash": "{d:02d}-{m:02d}-{y:04d}",
    "iso": "{y:04d}-{m:02d}-{d:02d}",
    "ymd8": "{y:04d}{m:02d}{d:02d}",
}


@dataclass(frozen=True)
class Profile:
    """How one province's systems write data (one per simulated province, cycled)."""

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


PROFILES = [
    Profile(
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
    Profile(
        "citizen_b", "csv", "utf-16", "\t", "dmy_nopad", "org_legacy_csv", "dossier_onestop_csv"
    ),
    Profile(
        "citizen_c",
        "csv",
        "cp1258",
        ";",
        "dmy_dash",
        "org_legacy_csv",
        "dossier_onestop_csv",
        upper_rate=1.0,
    ),
    Profile(
        "citizen_d",
        "jsonl",
        "utf-8",
        "",
        "iso",
        "org_legacy_jsonl",
        "dossier_onestop_jsonl",
        strip_rate=0.35,
        old_phone_rate=0.6,
    ),
    Profile(
        "citizen_e", "parquet", "binary", "", "ymd8", "org_legacy_csv", "dossier_onestop_jsonl"
    ),
]
# Org/dossier CSVs are comma-separated in every encoding; JSONL is always UTF-8.
_ORG_DOSSIER_ENCODING = {"utf-8-sig": "utf-8-sig", "utf-16": "utf-16", "cp1258": "cp1258"}


@dataclass
class FileOut:
    name: str
    source_system: str
    entity_type: str
    layout: str
    format: str
    encoding: str
    delimiter: str
    columns: Columns
    keys: list[str]
    entities: list[str]
    types: dict[str, str] = field(default_factory=dict)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)


@dataclass
class SynthParams:
    provinces: int = 5
    citizens: int = 10_000
    organizations: int | None = None
    dossiers: int | None = None
    seed: int = 0
    portal: bool = True


def _person_id(i: int) -> str:
    return f"P{i:08d}"


def _org_id(i: int) -> str:
    return f"O{i:07d}"


def _dossier_id(i: int) -> str:
    return f"D{i:08d}"


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
        n_org = params.organizations if params.organizations is not None else max(1, n // 10)
        self.n_org_rows = n_org
        self.org_cross = round(0.1 * n_org) if self.n_prov > 1 else 0
        self.orgs: Orgs = make_orgs(
            self.rng, self.provs, max(1, n_org - self.org_cross), self.people, self.n_nat
        )
        self.n_dossiers = params.dossiers if params.dossiers is not None else max(1, n // 2)
        self.ward_forms = [[self._forms(w) for w in p.wards] for p in self.provs]
        self._lists()
        # latest known residence per person (changes when a record says they moved)
        self.latest_prov = self.people.home.copy()
        self.latest_ward = self.people.ward.copy()
        self.files: list[FileOut] = []

    def _lists(self) -> None:
        """Python lists of every per-person attribute: numpy scalar access is far too
        slow inside the per-record loops."""
        p = self.people
        self.sex_l: list[int] = p.sex.tolist()
        self.year_l: list[int] = p.year.tolist()
        self.month_l: list[int] = p.month.tolist()
        self.day_l: list[int] = p.day.tolist()
        self.home_l: list[int] = p.home.tolist()
        self.ward_l: list[int] = p.ward.tolist()
        self.house_l: list[int] = p.house.tolist()
        self.street_l: list[int] = p.street.tolist()
        self.breg_l: list[int] = p.birth_reg.tolist()
        self.death_l: list[int] = p.death_year.tolist()
        self.has_phone_l: list[bool] = p.has_phone.tolist()
        surnames = [s for s, _, _ in data.SURNAMES]
        self.sur_s = [surnames[k] for k in p.surname.tolist()]
        mids = ([m for m, _ in data.MIDDLE_MALE], [m for m, _ in data.MIDDLE_FEMALE])
        givs = (data.GIVEN_MALE, data.GIVEN_FEMALE)
        self.mid_s = [mids[x][k] for x, k in zip(self.sex_l, p.middle.tolist(), strict=True)]
        self.giv_s = [givs[x][k] for x, k in zip(self.sex_l, p.given.tolist(), strict=True)]
        self.eth_s = [data.ETHNICITIES[k][0] for k in p.ethnicity.tolist()]
        prefixes = data.MOBILE_PREFIXES
        self.phone_new = [
            f"{prefixes[a]}{b:07d}"
            for a, b in zip(p.phone_prefix.tolist(), p.phone_tail.tolist(), strict=True)
        ]
        self.phone_old = [
            (data.OLD_MOBILE_PREFIX[n[:3]] + n[3:]) if n[:3] in data.OLD_MOBILE_PREFIX else n
            for n in self.phone_new
        ]
        domains = data.EMAIL_DOMAINS
        self.email_s: list[str | None] = [
            f"{strip_diacritics(g + s).lower().replace(' ', '')}{no % 1000}"
            f"@{domains[no % len(domains)]}"
            if has
            else None
            for g, s, no, has in zip(
                self.giv_s, self.sur_s, p.email_no.tolist(), p.has_email.tolist(), strict=True
            )
        ]

    @staticmethod
    def _forms(w: geo.LegacyWard) -> tuple[tuple[str, str, str], ...]:
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

    # -- helpers -------------------------------------------------------------

    def street_part(self, prov: int, ward: int, house: int, street: int, u: float) -> str:
        w = self.provs[prov].wards[ward]
        if w.kind == "xã":
            hamlet = "Ấp" if self.provs[prov].code >= 70 else ("Thôn" if u < 0.6 else "Xóm")
            return f"{hamlet} {house % 14 + 1}"
        name = data.STREETS[street]
        if u < 0.5:
            return f"{house} {name}"
        if u < 0.8:
            return f"Số {house} {name}"
        return f"Số {house}, đường {name}"

    def phone(self, i: int, old_rate: float, u1: float, u2: float) -> str:
        number = self.phone_old[i] if u1 < old_rate else self.phone_new[i]
        if u2 < 0.7:
            return number
        if u2 < 0.8:
            return "+84" + number[1:]
        if u2 < 0.9:
            return f"{number[:4]} {number[4:7]} {number[7:]}"
        return f"{number[:4]}.{number[4:7]}.{number[7:]}"

    def name_parts(self, i: int) -> tuple[str, str, str]:
        return self.sur_s[i], self.mid_s[i], self.giv_s[i]

    # -- citizens ------------------------------------------------------------

    def citizen_file(self, pi: int) -> FileOut:
        prof = PROFILES[pi % len(PROFILES)]
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
        who = np.concatenate([nat, vis, wdup])
        kind = np.concatenate(
            [
                np.zeros(nat.size, np.int64),
                np.ones(vis.size, np.int64),
                np.full(wdup.size, 2, np.int64),
            ]
        )
        order = rng.permutation(who.size)
        who, kind = who[order], kind[order]
        n = who.size
        U = rng.random((n, 24)).tolist()
        vis_ward = (rng.random(n) * len(prov.wards)).astype(np.int64).tolist()
        vis_house = rng.integers(1, 320, size=n).tolist()
        vis_street = rng.integers(0, len(data.STREETS), size=n).tolist()
        n_invalid = max(1, n * 3 // 1000)
        invalid_rows = set(rng.choice(n, size=n_invalid, replace=False).tolist())
        prefix = prov.slug.replace("-", "")[:3].upper()
        keys = [f"{prefix}{k + 1:07d}" for k in range(n)]
        fmt = DATE_STYLES[prof.date_style]
        short_names = {c: geo.short_name(n) for c, n in self.prov_names.items()}

        rows: list[tuple[Any, ...]] = []
        invalid: list[tuple[str, str]] = []
        sur_s, mid_s, giv_s = self.sur_s, self.mid_s, self.giv_s
        year_l, month_l, day_l, sex_l = self.year_l, self.month_l, self.day_l, self.sex_l
        pids, cmnds = p.pid, p.cmnd
        tone = data.TONE_VARIANTS
        strip_rate, upper_rate, nfd_rate = prof.strip_rate, prof.upper_rate, prof.nfd_rate
        moji_cut = 1 - prof.mojibake_rate if prof.mojibake_rate else 2.0
        forms = self.ward_forms
        for r, (i, k) in enumerate(zip(who.tolist(), kind.tolist(), strict=True)):
            u = U[r]
            sur, mid, giv = sur_s[i], mid_s[i], giv_s[i]
            if u[0] < 0.07 and mid in ("Văn", "Thị"):
                mid = ""
            if u[1] < 0.4:
                giv = tone.get(giv, giv)
            if u[2] < 0.03:
                giv = typo(giv, u[3], u[4]) if u[3] < 0.6 else giv
                sur = typo(sur, u[4], u[3]) if u[3] >= 0.6 else sur
            y, m, d = year_l[i], month_l[i], day_l[i]
            dob: str | None
            if u[5] < 0.03:
                dob = str(y)  # only the year is known
            elif u[5] < 0.06:
                dob = fmt.format(y=y, m=1, d=1)  # "unknown day" convention
            elif u[5] < 0.08 and d <= 12 and d != m:
                dob = fmt.format(y=y, m=d, d=m)  # day and month swapped
            elif u[5] < 0.095:
                dob = None
            else:
                dob = fmt.format(y=y, m=m, d=d)
            sex: int | None = None if u[6] < 0.01 else sex_l[i]
            cm = cmnds[i]
            pid: str | None = pids[i]
            if cm is not None:
                if u[7] < 0.4:
                    pid = None
                elif u[7] < 0.8:
                    cm = None
                elif u[7] > 0.96:
                    pid, cm = None, None
            elif u[7] < 0.07:
                pid = None
            # residence as this system knows it
            hp, hw = self.home_l[i], self.ward_l[i]
            house, street = self.house_l[i], self.street_l[i]
            cur: str | None = None
            style = 0 if u[8] < 0.5 else (1 if u[8] < 0.85 else 2)
            if k == 1 and u[9] < 0.5:  # moved here: both addresses are here now
                hp, hw, house, street = pi, vis_ward[r], vis_house[r], vis_street[r]
                self.latest_prov[i], self.latest_ward[i] = pi, hw
            elif k == 1:  # studies/works here: still registered at home
                cw = vis_ward[r]
                cur = ", ".join(
                    (
                        self.street_part(pi, cw, vis_house[r], vis_street[r], u[10]),
                        *forms[pi][cw][style],
                    )
                )
            units = forms[hp][hw][style]
            perm: str | None = ", ".join((self.street_part(hp, hw, house, street, u[10]), *units))
            if cur is None and u[11] < 0.2:
                cur = perm
            if u[12] < 0.03:
                perm = None
            phone = (
                self.phone(i, prof.old_phone_rate, u[13], u[14])
                if self.has_phone_l[i] and u[15] < 0.85
                else None
            )
            email = self.email_s[i] if u[16] < 0.6 else None
            eth = self.eth_s[i] if u[17] < 0.85 else None
            nat_ = ("Việt Nam" if u[18] < 0.8 else "VN") if u[18] < 0.95 else None
            pob_code = self.breg_l[i]
            pob = short_names[pob_code] if u[19] < 0.6 else None
            home = self.prov_names[pob_code] if u[20] < 0.4 else None
            dy = self.death_l[i]
            dod = fmt.format(y=dy, m=(i % 12) + 1, d=(i % 28) + 1) if dy and u[21] < 0.7 else None
            # text damage typical of this system
            damage = [
                f
                for f, hit in (
                    (strip_diacritics, u[22] < strip_rate),
                    (str.upper, u[23] < upper_rate),
                    (tcvn3_mojibake, u[9] > moji_cut),
                    (to_nfd, u[9] < nfd_rate),
                )
                if hit
            ]
            for fn in damage:
                sur, mid, giv = fn(sur), fn(mid), fn(giv)
                perm = None if perm is None else fn(perm)
                cur = None if cur is None else fn(cur)
            if r in invalid_rows:
                if u[3] < 0.5 and dob is not None and dob != str(y):
                    dob = fmt.format(y=y, m=2, d=30 + (r % 2))
                    invalid.append((keys[r], "impossible_date"))
                else:
                    sur = mid = giv = ""
                    invalid.append((keys[r], "empty_name"))
            rows.append(
                (
                    sur,
                    mid,
                    giv,
                    dob,
                    sex,
                    pid,
                    cm,
                    perm,
                    cur,
                    phone,
                    email,
                    eth,
                    nat_,
                    pob,
                    home,
                    dod,
                )
            )
        names = (
            "sur",
            "mid",
            "giv",
            "dob",
            "sex",
            "pid",
            "cmnd",
            "perm",
            "cur",
            "phone",
            "email",
            "eth",
            "nat",
            "pob",
            "home",
            "dod",
        )
        cols: dict[str, list[Any]] = {
            c: list(v) for c, v in zip(names, zip(*rows, strict=True), strict=True)
        }

        out = _render_citizen(prof, cols, keys)
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
            columns=out,
            keys=keys,
            entities=[_person_id(i) for i in who.tolist()],
            types={"gioi_tinh": "int32", "ngay_mat": "date32"}
            if prof.citizen_format == "parquet"
            else {},
            invalid=invalid,
        )

    def portal_citizens(self, extra: set[int]) -> FileOut:
        p = self.people
        rng = self.rng
        chosen = set(np.flatnonzero(rng.random(p.size) < 0.2).tolist()) | extra
        who = sorted(chosen)
        order = rng.permutation(len(who)).tolist()
        who = [who[j] for j in order]
        U = rng.random((len(who), 4)).tolist()
        latest_prov, latest_ward = self.latest_prov.tolist(), self.latest_ward.tolist()
        rows: list[tuple[Any, ...]] = []
        cols: dict[str, list[Any]] = {
            c: []
            for c in (
                "personal_id",
                "full_name",
                "date_of_birth",
                "sex",
                "permanent_address",
                "current_address",
                "phone",
                "email",
                "ethnicity",
                "nationality",
            )
        }
        for r, i in enumerate(who):
            u = U[r]
            lp, lw = latest_prov[i], latest_ward[i]
            w = self.provs[lp].wards[lw]
            addr = (
                f"{self.street_part(lp, lw, self.house_l[i], self.street_l[i], u[0])}, "
                f"{geo.new_unit_form(w)}"
            )
            rows.append(
                (
                    p.pid[i],
                    f"{self.sur_s[i]} {self.mid_s[i]} {self.giv_s[i]}",
                    f"{self.year_l[i]:04d}-{self.month_l[i]:02d}-{self.day_l[i]:02d}",
                    "Nữ" if self.sex_l[i] else "Nam",
                    addr,
                    addr if u[1] < 0.5 else None,
                    self.phone_new[i] if self.has_phone_l[i] else None,
                    self.email_s[i] if u[2] < 0.8 else None,
                    self.eth_s[i],
                    "Việt Nam",
                )
            )
        for c, v in zip(cols, zip(*rows, strict=True), strict=True):
            cols[c] = list(v)
        return FileOut(
            "national-portal_citizens",
            PORTAL,
            "citizen",
            "citizen_portal",
            "csv",
            "utf-8",
            ",",
            cols,
            list(cols["personal_id"]),
            [_person_id(i) for i in who],
        )

    # -- organizations -------------------------------------------------------

    def org_rows(self, pi: int) -> tuple[list[int], list[bool]]:
        o = self.orgs
        own = np.flatnonzero(o.home == pi)
        others = np.flatnonzero((o.home != pi) & (o.parent < 0))
        n_cross = min(self.org_cross, others.size)
        cross = self.rng.choice(others, size=n_cross, replace=False) if n_cross else own[:0]
        who = np.concatenate([own, cross])
        order = self.rng.permutation(who.size)
        flags = np.concatenate([np.zeros(own.size, bool), np.ones(cross.size, bool)])
        return who[order].tolist(), flags[order].tolist()

    def org_name(self, j: int, u: float, for_province: int) -> tuple[str, str, str, str]:
        o = self.orgs
        forms = list(data.LEGAL_FORMS)
        f = forms[int(o.form[j])]
        variants = data.LEGAL_FORMS[f]
        sector_vi, sector_en = data.SECTORS[int(o.sector[j])]
        brand = data.BRANDS[int(o.brand[j])]
        spelled = variants[int(u * len(variants)) % len(variants)]
        name = f"{spelled} {sector_vi} {brand}"
        if int(o.parent[j]) >= 0:
            name = f"Chi nhánh {name} tại {geo.short_name(self.provs[int(o.home[j])].name)}"
        brand_en = strip_diacritics(brand)
        en = f"{brand_en} {sector_en} {data.LEGAL_FORM_EN[f]}"
        short = f"{brand_en.upper()} {data.LEGAL_FORM_SHORT_EN[f]}"
        return name, en, short, data.LEGAL_FORM_LABEL[f]

    def org_file(self, pi: int) -> FileOut:
        prof = PROFILES[pi % len(PROFILES)]
        prov = self.provs[pi]
        o, p = self.orgs, self.people
        who, cross = self.org_rows(pi)
        n = len(who)
        U = self.rng.random((n, 10)).tolist()
        invalid_rows = (
            set(self.rng.choice(n, size=max(1, n * 3 // 1000), replace=False).tolist())
            if n >= 50
            else set()
        )
        keys = [f"DN{prov.code:02d}{k + 1:06d}" for k in range(n)]
        recs: list[tuple[Any, ...]] = []
        invalid: list[tuple[str, str]] = []
        for r, j in enumerate(who):
            u = U[r]
            name, en, short, form = self.org_name(j, u[0], pi)
            if u[1] < 0.03:
                name = strip_diacritics(name)
            elif u[1] < 0.15:
                name = name.upper()
            if u[2] < 0.02:
                name = typo(name, u[3], u[4])
            tax: str | None = o.tax[j] if u[5] > 0.03 else None
            hp, hw = int(o.home[j]), int(o.ward[j])
            style = 0 if u[6] < 0.5 else (1 if u[6] < 0.85 else 2)
            if cross[r] and u[7] < 0.5:  # known here by its local office's address
                hw = int(u[8] * len(prov.wards))
                hp = pi
            addr = ", ".join(
                (
                    self.street_part(hp, hw, int(o.house[j]), int(o.street[j]), u[8]),
                    *self.ward_forms[hp][hw][style],
                )
            )
            rep_i = int(o.representative[j])
            rep = p.pid[rep_i] if (p.cmnd[rep_i] is None or u[9] < 0.6) else p.cmnd[rep_i]
            fy, fm, fd = o.founded[j]
            status = data.ORG_STATUS[int(o.status[j])]
            if r in invalid_rows:
                if u[3] < 0.5 and tax is not None:
                    base = tax.split("-")[0]
                    bad = base[:9] + str((int(base[9]) + 1) % 10)
                    tax = bad + tax[10:]
                    invalid.append((keys[r], "bad_tax_check_digit"))
                else:
                    name = ""
                    invalid.append((keys[r], "empty_name"))
            recs.append(
                (
                    keys[r],
                    tax,
                    name,
                    en if u[4] < 0.5 else None,
                    short if u[4] < 0.4 else None,
                    form if u[7] < 0.7 else None,
                    addr,
                    rep,
                    (fy, fm, fd),
                    status,
                )
            )
        layout = prof.org_layout
        cols = _render_org(layout, recs)
        fmt = "jsonl" if layout.endswith("jsonl") else "csv"
        enc = "utf-8" if fmt == "jsonl" else _ORG_DOSSIER_ENCODING.get(prof.encoding, "utf-8")
        return FileOut(
            f"{prov.slug}_organizations",
            f"{prov.slug}-dkkd",
            "organization",
            layout,
            fmt,
            enc,
            "," if fmt == "csv" else "",
            cols,
            keys,
            [_org_id(j) for j in who],
            invalid=invalid,
        )

    def portal_orgs(self, extra: set[int]) -> FileOut:
        o = self.orgs
        chosen = set(np.flatnonzero(self.rng.random(o.size) < 0.3).tolist()) | extra
        who = sorted(chosen)
        order = self.rng.permutation(len(who)).tolist()
        who = [who[j] for j in order]
        U = self.rng.random((len(who), 2)).tolist()
        recs = []
        for r, j in enumerate(who):
            name, en, short, form = self.org_name(j, 0.0, int(o.home[j]))
            hp, hw = int(o.home[j]), int(o.ward[j])
            w = self.provs[hp].wards[hw]
            addr = (
                f"{self.street_part(hp, hw, int(o.house[j]), int(o.street[j]), U[r][0])}, "
                f"{geo.new_unit_form(w)}"
            )
            fy, fm, fd = o.founded[j]
            recs.append(
                (
                    o.tax[j],
                    name,
                    en,
                    short,
                    form,
                    addr,
                    self.people.pid[int(o.representative[j])],
                    f"{fy:04d}-{fm:02d}-{fd:02d}",
                    data.ORG_STATUS_VI[data.ORG_STATUS[int(o.status[j])]],
                )
            )
        names = [
            "tax_code",
            "name",
            "name_en",
            "short_name",
            "legal_form",
            "address",
            "legal_representative_id",
            "founding_date",
            "status",
        ]
        cols = {c: [rec[k] for rec in recs] for k, c in enumerate(names)}
        return FileOut(
            "national-portal_organizations",
            PORTAL,
            "organization",
            "org_portal",
            "csv",
            "utf-8",
            ",",
            cols,
            list(cols["tax_code"]),
            [_org_id(j) for j in who],
        )

    # -- dossiers ------------------------------------------------------------

    def dossier_files(
        self, citizen_files: list[FileOut], org_files: list[FileOut]
    ) -> tuple[list[FileOut], FileOut | None, set[int], set[int]]:
        rng = self.rng
        epoch = dt.datetime(2019, 1, 1, 7, 30)
        span_days = (dt.date(2025, 6, 30) - dt.date(2019, 1, 1)).days
        files: list[FileOut] = []
        portal_recs: list[tuple[Any, ...]] = []
        portal_ents: list[str] = []
        need_people: set[int] = set()
        need_orgs: set[int] = set()
        did = 0
        for pi, prov in enumerate(self.provs):
            prof = PROFILES[pi % len(PROFILES)]
            cf, of = citizen_files[pi], org_files[pi]
            n = self.n_dossiers
            U = rng.random((n, 12)).tolist()
            c_pick = rng.integers(0, len(cf.keys), size=n).tolist()
            o_pick = rng.integers(0, max(1, len(of.keys)), size=n).tolist()
            proc = rng.integers(0, len(data.PROCEDURE_CODES), size=n).tolist()
            status = rng.choice(
                len(data.DOSSIER_STATUS), size=n, p=data.DOSSIER_STATUS_WEIGHTS
            ).tolist()
            invalid_rows = (
                set(rng.choice(n, size=max(1, n * 3 // 1000), replace=False).tolist())
                if n >= 50
                else set()
            )
            recs: list[tuple[Any, ...]] = []
            keys: list[str] = []
            ents: list[str] = []
            invalid: list[tuple[str, str]] = []
            unit = f"H{prov.code:02d}.{pi + 10}"
            for r in range(n):
                u = U[r]
                did += 1
                ent = _dossier_id(did)
                is_org = u[0] < 0.2 and len(of.keys) > 0
                if is_org:
                    app_key = of.keys[o_pick[r]]
                    app_ent = int(of.entities[o_pick[r]][1:])
                else:
                    app_key = cf.keys[c_pick[r]]
                    app_ent = int(cf.entities[c_pick[r]][1:])
                sub = epoch + dt.timedelta(days=int(u[1] * span_days), minutes=int(u[2] * 540))
                st = data.DOSSIER_STATUS[status[r]]
                dec = (
                    sub + dt.timedelta(days=1 + int(u[3] * 30), hours=int(u[4] * 6))
                    if st in ("done", "rejected")
                    else None
                )
                code = (
                    f"000.00.{pi + 10}.{unit[:3]}-{sub.year % 100:02d}{sub.month:02d}"
                    f"{sub.day:02d}-{r + 1:04d}"
                )
                result = (
                    f"{100 + int(u[5] * 9000)}/{'QĐ-UBND' if u[6] < 0.5 else 'GCN'}"
                    if st == "done"
                    else None
                )
                w = self.provs[pi].wards[int(u[7] * len(self.provs[pi].wards))]
                agency = f"UBND {w.name}" if u[8] < 0.7 else f"Bộ phận Một cửa UBND {w.district}"
                key = f"{r + 1:07d}"
                sub_s: str | None = None
                if r in invalid_rows:
                    sub_s = (
                        f"31/02/{sub.year} {sub:%H:%M}"
                        if prof.dossier_layout.endswith("csv")
                        else f"{sub.year}-02-31T{sub:%H:%M:%S}"
                    )
                    invalid.append((key, "impossible_date"))
                recs.append(
                    (
                        unit,
                        key,
                        code,
                        data.PROCEDURE_CODES[proc[r]],
                        app_key,
                        "organization" if is_org else "citizen",
                        agency,
                        sub,
                        sub_s,
                        dec,
                        st,
                        result,
                    )
                )
                ents.append(ent)
                keys.append(key)
                if u[9] < 0.3 and r not in invalid_rows:  # also synchronised to the portal
                    if is_org:
                        need_orgs.add(app_ent)
                        app_nat = self.orgs.tax[app_ent]
                    else:
                        need_people.add(app_ent)
                        app_nat = self.people.pid[app_ent]
                    lag = u[10] < 0.2 and st == "done"
                    p_status = "processing" if lag else st
                    portal_recs.append(
                        (
                            f"G22.{prov.code:02d}-{did:09d}",
                            code,
                            data.PROCEDURE_CODES[proc[r]],
                            app_nat,
                            "doanh_nghiep" if is_org else "cong_dan",
                            f"UBND {w.new_ward}, {w.new_province}",
                            _iso(sub, "+07:00"),
                            None if dec is None or lag else _iso(dec, "+07:00"),
                            data.DOSSIER_STATUS_VI[p_status],
                            None if lag else result,
                        )
                    )
                    portal_ents.append(ent)
            layout = prof.dossier_layout
            fmt = "jsonl" if layout.endswith("jsonl") else "csv"
            enc = "utf-8" if fmt == "jsonl" else _ORG_DOSSIER_ENCODING.get(prof.encoding, "utf-8")
            cols = _render_dossier(layout, recs)
            src_keys = [f"{rec[0]}|{rec[1]}" for rec in recs] if fmt == "csv" else keys
            files.append(
                FileOut(
                    f"{prov.slug}_dossiers",
                    f"{prov.slug}-motcua",
                    "dossier",
                    layout,
                    fmt,
                    enc,
                    "," if fmt == "csv" else "",
                    cols,
                    src_keys,
                    ents,
                    invalid=[(f"{unit}|{k}" if fmt == "csv" else k, why) for k, why in invalid],
                )
            )
        portal = None
        if self.params.portal and portal_recs:
            order = rng.permutation(len(portal_recs)).tolist()
            portal_recs = [portal_recs[j] for j in order]
            portal_ents = [portal_ents[j] for j in order]
            names = [
                "ma_ho_so_dvc",
                "ma_ho_so",
                "ma_thu_tuc",
                "so_dinh_danh_nguoi_nop",
                "loai_doi_tuong",
                "co_quan_tiep_nhan",
                "ngay_tiep_nhan",
                "ngay_co_ket_qua",
                "trang_thai",
                "so_van_ban",
            ]
            pcols = {c: [rec[k] for rec in portal_recs] for k, c in enumerate(names)}
            portal = FileOut(
                "national-portal_dossiers",
                PORTAL,
                "dossier",
                "dossier_portal",
                "jsonl",
                "utf-8",
                "",
                pcols,
                list(pcols["ma_ho_so_dvc"]),
                portal_ents,
            )
        return files, portal, need_people, need_orgs


# -- layouts --------------------------------------------------------------------
# Column names here must match schemas/mappings/<layout>.yaml (a test checks it).


def _join_name(s: str, m: str, g: str) -> str:
    return " ".join(x for x in (s, m, g) if x)


def _render_citizen(prof: Profile, c: dict[str, list[Any]], keys: list[str]) -> Columns:
    names = [_join_name(s, m, g) for s, m, g in zip(c["sur"], c["mid"], c["giv"], strict=True)]
    lay = prof.citizen_layout
    if lay == "citizen_a":
        return {
            "MA_CONG_DAN": keys,
            "HO_TEN": names,
            "NGAY_SINH": c["dob"],
            "GIOI_TINH": [None if s is None else str(s + 1) for s in c["sex"]],
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
    if lay == "citizen_b":
        split = [_split_address(a) for a in c["perm"]]
        return {
            "SO_HO_SO": keys,
            "HO": c["sur"],
            "TEN_DEM": c["mid"],
            "TEN": c["giv"],
            "NGAY_SINH": c["dob"],
            "GIOI_TINH": [None if s is None else ("Nam", "Nữ")[s] for s in c["sex"]],
            "SO_CMND": c["cmnd"],
            "SO_CCCD": c["pid"],
            "SO_NHA_DUONG": [s[0] for s in split],
            "XA_PHUONG": [s[1] for s in split],
            "QUAN_HUYEN": [s[2] for s in split],
            "TINH_THANH": [s[3] for s in split],
            "NOI_O_HIEN_TAI": c["cur"],
            "DIEN_THOAI": c["phone"],
            "DAN_TOC": c["eth"],
            "QUOC_TICH": c["nat"],
            "NOI_SINH": c["pob"],
        }
    if lay == "citizen_c":
        return {
            "MaCD": keys,
            "HoVaTen": names,
            "NgaySinh": c["dob"],
            "GioiTinh": [None if s is None else ("1", "0")[s] for s in c["sex"]],
            "SoCMND": c["cmnd"],
            "SoCCCD": c["pid"],
            "NguyenQuan": c["home"],
            "HoKhauThuongTru": c["perm"],
            "ChoOHienNay": c["cur"],
            "DienThoai": c["phone"],
            "DanToc": c["eth"],
            "NgayChet": c["dod"],
        }
    if lay == "citizen_d":
        return {
            "id": keys,
            "fullName": names,
            "dob": c["dob"],
            "gender": [None if s is None else ("M", "F")[s] for s in c["sex"]],
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
    if lay == "citizen_e":
        return {
            "ma_dan_cu": keys,
            "ho_ten": names,
            "ngay_sinh": c["dob"],
            "gioi_tinh": [None if s is None else s + 1 for s in c["sex"]],
            "so_cmnd": c["cmnd"],
            "so_ddcn": c["pid"],
            "dia_chi_thuong_tru": c["perm"],
            "dien_thoai": c["phone"],
            "dan_toc": c["eth"],
            "ngay_mat": [None if d is None else _ymd8_to_date(d) for d in c["dod"]],
        }
    raise ValueError(lay)


def _split_address(a: str | None) -> list[str | None]:
    """street, commune, district, province: the street part may itself hold commas."""
    if not a:
        return [None] * 4
    parts: list[str | None] = list(a.rsplit(", ", 3))
    return [None] * (4 - len(parts)) + parts


def _ymd8_to_date(s: str) -> dt.date | None:
    try:
        return dt.date(int(s[:4]), int(s[4:6]), int(s[6:8]))
    except ValueError:
        return None


def _render_org(layout: str, recs: list[tuple[Any, ...]]) -> Columns:
    status_code = {"active": "1", "suspended": "2", "dissolved": "3"}
    if layout == "org_legacy_csv":
        names = [
            "MA_DN",
            "MA_SO_THUE",
            "TEN_DOANH_NGHIEP",
            "TEN_TIENG_ANH",
            "TEN_VIET_TAT",
            "LOAI_HINH",
            "DIA_CHI_TRU_SO",
            "NGUOI_DAI_DIEN",
            "NGAY_THANH_LAP",
            "TINH_TRANG",
        ]
        conv = [lambda v: v] * 8 + [
            lambda v: f"{v[2]:02d}/{v[1]:02d}/{v[0]:04d}",
            lambda v: status_code[v],
        ]
    else:
        names = [
            "id",
            "taxCode",
            "name",
            "englishName",
            "abbreviation",
            "type",
            "headOffice",
            "representativeId",
            "establishedOn",
            "state",
        ]
        conv = [lambda v: v] * 8 + [
            lambda v: f"{v[0]:04d}-{v[1]:02d}-{v[2]:02d}",
            lambda v: data.ORG_STATUS_VI[v],
        ]
    return {
        n: [f(rec[k]) for rec in recs] for k, (n, f) in enumerate(zip(names, conv, strict=True))
    }


# strftime is slow; these run on every dossier row.
def _dmy_hm(t: dt.datetime) -> str:
    return f"{t.day:02d}/{t.month:02d}/{t.year:04d} {t.hour:02d}:{t.minute:02d}"


def _iso(t: dt.datetime, tz: str = "") -> str:
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}{tz}"


def _render_dossier(layout: str, recs: list[tuple[Any, ...]]) -> Columns:
    # rec: unit, key, code, proc, applicant, type, agency, sub, sub_override, dec, status, result
    if layout == "dossier_onestop_csv":
        return {
            "MA_DON_VI": [r[0] for r in recs],
            "SO_BIEN_NHAN": [r[1] for r in recs],
            "MA_HO_SO": [r[2] for r in recs],
            "MA_TTHC": [r[3] for r in recs],
            "MA_NGUOI_NOP": [r[4] for r in recs],
            "LOAI_NGUOI_NOP": ["CD" if r[5] == "citizen" else "TC" for r in recs],
            "CO_QUAN_TIEP_NHAN": [r[6] for r in recs],
            "NGAY_NOP": [r[8] or _dmy_hm(r[7]) for r in recs],
            "NGAY_TRA_KQ": [None if r[9] is None else _dmy_hm(r[9]) for r in recs],
            "TRANG_THAI": [data.DOSSIER_STATUS_VI[r[10]] for r in recs],
            "SO_KET_QUA": [r[11] for r in recs],
        }
    return {
        "id": [r[1] for r in recs],
        "dossierCode": [r[2] for r in recs],
        "procedureCode": [r[3] for r in recs],
        "applicantId": [r[4] for r in recs],
        "applicantType": [r[5] for r in recs],
        "agency": [r[6] for r in recs],
        "submittedAt": [r[8] or _iso(r[7]) for r in recs],
        "decidedAt": [None if r[9] is None else _iso(r[9]) for r in recs],
        "status": [r[10] for r in recs],
        "resultNumber": [r[11] for r in recs],
    }


# -- driver ---------------------------------------------------------------------


def _write(out: Path, f: FileOut) -> str:
    ext = {"csv": "csv" if f.delimiter != "\t" else "txt", "jsonl": "jsonl", "parquet": "parquet"}[
        f.format
    ]
    rel = f"data/{f.name}.{ext}"
    path = out / rel
    if f.format == "csv":
        write_csv(path, f.columns, encoding=f.encoding, delimiter=f.delimiter)
    elif f.format == "jsonl":
        write_jsonl(path, f.columns)
    else:
        write_parquet(path, f.columns, f.types)
    return rel


def generate(out: Path, params: SynthParams) -> dict[str, Any]:
    """Write the whole synthetic estate to ``out`` and return the manifest.

    Same ``params`` → byte-identical files. ``out`` is created; files in it with the
    same names are overwritten, others are left alone.
    """
    world = _World(params)
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "mappings").mkdir(parents=True, exist_ok=True)
    citizens = [world.citizen_file(pi) for pi in range(world.n_prov)]
    orgs = [world.org_file(pi) for pi in range(world.n_prov)]
    dossiers, portal_dossiers, need_people, need_orgs = world.dossier_files(citizens, orgs)
    files: list[FileOut] = [*citizens, *orgs, *dossiers]
    if params.portal:
        files.append(world.portal_citizens(need_people))
        files.append(world.portal_orgs(need_orgs))
        if portal_dossiers is not None:
            files.append(portal_dossiers)

    entries = []
    for f in files:
        rel = _write(out, f)
        mapping_src = MAPPINGS_DIR / f"{f.layout}.yaml"
        shutil.copyfile(mapping_src, out / "mappings" / mapping_src.name)
        entries.append(
            {
                "path": rel,
                "source_system": f.source_system,
                "entity_type": f.entity_type,
                "layout": f.layout,
                "mapping": f"mappings/{mapping_src.name}",
                "format": f.format,
                "encoding": f.encoding,
                **({"delimiter": f.delimiter} if f.format == "csv" else {}),
                "rows": len(f.keys),
                "invalid_rows": len(f.invalid),
            }
        )

    _write_table(
        out / "truth.csv",
        ["source_system", "source_key", "entity_type", "true_entity"],
        (
            (f.source_system, k, f.entity_type, e)
            for f in files
            for k, e in zip(f.keys, f.entities, strict=True)
        ),
    )
    _write_table(
        out / "expected_rejects.csv",
        ["source_system", "source_key", "entity_type", "reason"],
        ((f.source_system, k, f.entity_type, why) for f in files for k, why in f.invalid),
    )
    pairs = _hard_negative_rows(world, citizens)
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
        "files": entries,
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
    rows: list[tuple[str, ...]] = []
    for f in citizens:
        first: dict[str, str] = {}
        for k, e in zip(f.keys, f.entities, strict=True):
            first.setdefault(e, k)
        for kind, a, b in world.people.hard_negatives:
            ea, eb = _person_id(a), _person_id(b)
            if ea in first and eb in first:
                rows.append((kind, f.source_system, first[ea], first[eb], ea, eb))
    return rows


def _summary(world: _World, files: list[FileOut], pairs: list[tuple[str, ...]]) -> dict[str, Any]:
    legacy = [f for f in files if f.entity_type == "citizen" and f.source_system != PORTAL]
    systems_of: dict[str, set[str]] = {}
    for f in legacy:
        for e in f.entities:
            systems_of.setdefault(e, set()).add(f.source_system)
    total = sum(len(f.entities) for f in legacy)
    cross = sum(1 for f in legacy for e in f.entities if len(systems_of[e]) > 1)
    org_legacy = [f for f in files if f.entity_type == "organization" and f.source_system != PORTAL]
    org_sys: dict[str, set[str]] = {}
    for f in org_legacy:
        for e in f.entities:
            org_sys.setdefault(e, set()).add(f.source_system)
    org_total = sum(len(f.entities) for f in org_legacy)
    org_cross = sum(1 for f in org_legacy for e in f.entities if len(org_sys[e]) > 1)
    return {
        "files": len(files),
        "rows": sum(len(f.keys) for f in files),
        "rows_by_entity_type": dict(
            Counter(t for f in files for t in [f.entity_type] * len(f.keys))
        ),
        "invalid_rows": sum(len(f.invalid) for f in files),
        "distinct_people": len(
            {e for f in files if f.entity_type == "citizen" for e in f.entities}
        ),
        "citizen_cross_province_duplicate_rate": round(cross / total, 4) if total else 0.0,
        "organization_cross_province_duplicate_rate": round(org_cross / org_total, 4)
        if org_total
        else 0.0,
        "hard_negative_pairs": dict(Counter(p[0] for p in pairs)),
        "branches": int((world.orgs.parent >= 0).sum()),
    }
