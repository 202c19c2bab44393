"""``mdm synth --profile``: the standard world is unchanged, and every other profile
plants its hazards at about the documented rates, with a ground truth that still holds.

Rates are measured by reading the written files back and comparing each row with
the same row of the standard run of the same seed (a profile writes the same rows,
with the same keys, about the same people: only how they are written changes).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mdm.ingest.mapping import load_mapping
from mdm.standardize import standardize_phone, standardize_record
from mdm.standardize.ids import cmnd_region_of_province
from mdm.synth import PROFILES, SynthParams, generate
from mdm.synth import data as synth_data
from mdm.synth.hazards import HOUSEHOLD_KINDS, RATES
from mdm.synth.text import strip_diacritics

PORTAL = "national-portal"
SEED = 9  # the runs the rates are measured on: 5 provinces x 1,500 citizens

# A standard run fingerprinted before the profiles existed: every file but the
# manifest (and the copied mappings, which belong to schemas/), Parquet by content.
PINNED_PARAMS = SynthParams(provinces=5, citizens=300, seed=5)
PINNED_FILES = "45af0ced2fb5fec526805b65670c13d257601bad0350f3a45935f69f2d3fdcef"
PINNED_MANIFEST_WITHOUT_PROFILE = "36e7f917955e1684480e569f1abd63d10d3eef816d771078550caa5be4f43139"


def fingerprint(out: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if not p.is_file() or rel == "manifest.json" or rel.startswith("mappings/"):
            continue
        if p.suffix == ".parquet":
            rows = pq.read_table(p).to_pylist()
            body = json.dumps(rows, default=str, ensure_ascii=False).encode()
        else:
            body = p.read_bytes()
        h.update(rel.encode() + b"\0" + hashlib.sha256(body).digest())
    return h.hexdigest()


def read_rows(out: Path, entry: dict[str, Any]) -> list[dict[str, Any]]:
    path = out / entry["path"]
    if entry["format"] == "parquet":
        rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        return rows
    if entry["format"] == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    text = unicodedata.normalize("NFC", path.read_bytes().decode(entry["encoding"]))
    return list(csv.DictReader(io.StringIO(text), delimiter=entry["delimiter"]))


@dataclass
class Row:
    system: str
    layout: str
    raw: dict[str, Any]  # mapped to the standard field names
    cols: dict[str, Any]  # as written
    entity: str


@dataclass
class Run:
    out: Path
    manifest: dict[str, Any]
    truth_text: str
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    rejects: set[tuple[str, str]] = field(default_factory=set)
    negatives: list[dict[str, str]] = field(default_factory=list)

    def legacy(self) -> dict[tuple[str, str], Row]:
        return {k: r for k, r in self.rows.items() if r.system != PORTAL and k not in self.rejects}


def load(out: Path) -> Run:
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    truth_text = (out / "truth.csv").read_text(encoding="utf-8")
    truth = {
        (t["source_system"], t["source_key"]): t["true_entity"]
        for t in csv.DictReader(io.StringIO(truth_text))
    }
    run = Run(out, manifest, truth_text)
    for entry in manifest["files"]:
        if entry["entity_type"] != "citizen":
            continue
        mapping = load_mapping(out / entry["mapping"])
        for row in read_rows(out, entry):
            key, raw = mapping.apply(row)
            ref = (entry["source_system"], str(key))
            run.rows[ref] = Row(entry["source_system"], entry["layout"], raw, row, truth[ref])
    with (out / "expected_rejects.csv").open(encoding="utf-8") as fh:
        run.rejects = {(r["source_system"], r["source_key"]) for r in csv.DictReader(fh)}
    with (out / "hard_negatives.csv").open(encoding="utf-8") as fh:
        run.negatives = list(csv.DictReader(fh))
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    out: dict[str, Run] = {}
    for profile in PROFILES:
        d = tmp_path_factory.mktemp(f"synth-{profile}")
        generate(d, SynthParams(provinces=5, citizens=1500, seed=SEED, profile=profile))
        out[profile] = load(d)
    return out


def fold(s: str | None) -> str:
    return strip_diacritics(s or "").lower()


def digits(s: str | None) -> str:
    return re.sub(r"\D", "", s or "")


def ymd(s: str | None) -> tuple[int, int, int] | None:
    """A full ISO date as the mapping gives it; None for year-only or none."""
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", s or "")
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def share(hits: int, total: int) -> float:
    assert total > 200, total  # enough rows to measure a rate
    return hits / total


def near(measured: float, rate: float, low: float = 0.55, high: float = 1.5) -> bool:
    return rate * low <= measured <= rate * high


def aligned(runs: dict[str, Run], profile: str) -> list[tuple[Row, Row]]:
    std, other = runs["standard"].legacy(), runs[profile].legacy()
    return [(std[k], other[k]) for k in std if k in other]


# -- the standard profile ---------------------------------------------------------------


def test_profile_names_are_exposed() -> None:
    from mdm.cli.synth import Profile

    assert PROFILES == ("standard", "clerical", "household", "migration", "sparse")
    assert tuple(p.value for p in Profile) == PROFILES
    assert SynthParams().profile == "standard"
    assert set(RATES) == set(PROFILES)


def test_unknown_profile_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        generate(tmp_path, SynthParams(provinces=1, citizens=10, profile="chaos"))
    result = CliRunner().invoke(
        _app(), ["synth", "--out", str(tmp_path), "--citizens", "10", "--profile", "chaos"]
    )
    assert result.exit_code == 2


def _app() -> Any:
    from mdm.cli.main import app

    return app


def test_standard_profile_is_byte_for_byte_what_it_was(tmp_path: Path) -> None:
    manifest = generate(tmp_path, PINNED_PARAMS)
    assert fingerprint(tmp_path) == PINNED_FILES
    assert manifest["params"]["profile"] == "standard"
    assert "hazards" not in manifest["summary"]
    # the manifest only gained the profile
    loaded = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    del loaded["params"]["profile"]
    text = json.dumps(loaded, ensure_ascii=False, indent=2) + "\n"
    assert hashlib.sha256(text.encode()).hexdigest() == PINNED_MANIFEST_WITHOUT_PROFILE


def test_manifest_records_the_profile(runs: dict[str, Run]) -> None:
    for profile, run in runs.items():
        summary = run.manifest["summary"]
        assert run.manifest["params"]["profile"] == profile
        assert ("hazards" in summary) == (profile != "standard")
        if profile != "standard":
            assert summary["hazards"] and all(v > 0 for v in summary["hazards"].values())


def test_cli_profile(tmp_path: Path) -> None:
    args = ["synth", "--out", str(tmp_path), "--provinces", "2", "--citizens", "300"]
    result = CliRunner().invoke(_app(), [*args, "--seed", "4", "--profile", "household"])
    assert result.exit_code == 0, result.output
    assert "profile household:" in result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["params"]["profile"] == "household"


# -- every profile: the same rows, and a truth that holds ----------------------------------


def test_profiles_keep_the_rows_and_their_people(runs: dict[str, Run]) -> None:
    std = runs["standard"].truth_text
    assert runs["clerical"].truth_text == std
    assert runs["sparse"].truth_text == std
    # household re-dates people, so their portal keys (personal IDs) change; no row moves
    legacy = [ln for ln in std.splitlines() if not ln.startswith(PORTAL)]
    hh = runs["household"].truth_text.splitlines()
    assert [ln for ln in hh if not ln.startswith(PORTAL)] == legacy
    assert len(hh) == len(std.splitlines())


@pytest.mark.parametrize("profile", PROFILES)
def test_no_unexpected_rejects(runs: dict[str, Run], profile: str) -> None:
    """The hazards damage values, never a record's usability: rejects are the planted ones."""
    run = runs[profile]
    rejected = {ref for ref, r in run.rows.items() if standardize_record("citizen", r.raw).rejected}
    citizen_rejects = {ref for ref in run.rejects if ref in run.rows}
    assert rejected == citizen_rejects


def _pid_ok(pid: str, sex: str | None, year: int) -> bool:
    century = (year // 100 - 19) * 2 + (1 if sex == "female" else 0)
    return pid[3] == str(century) and pid[4:6] == f"{year % 100:02d}"


@pytest.mark.parametrize("profile", PROFILES)
def test_truth_entities_are_one_person(runs: dict[str, Run], profile: str) -> None:
    """Every row of a true entity carries that person's personal ID (up to the planted
    digit errors); the ID encodes the birth year and sex the rows give."""
    run = runs[profile]
    carried = {
        (n["source_system"], n["source_key_a"]) for n in run.negatives if n["kind"] == "relative_id"
    }
    pids: dict[str, Counter[str]] = defaultdict(Counter)
    agree = total = 0
    for ref, r in run.rows.items():
        if ref in run.rejects or ref in carried:
            continue
        pid = digits(r.raw["personal_id"])
        if not pid:
            continue
        pid = pid.zfill(12)
        pids[r.entity][pid] += 1
        date = ymd(r.raw["date_of_birth"])
        if date is not None and r.raw["sex"] is not None:
            total += 1
            agree += _pid_ok(pid, r.raw["sex"], date[0])
    # the ID agrees with the row's own birth year and sex (clerical types years off)
    assert agree / total >= (0.9 if profile == "clerical" else 0.995)
    if profile != "clerical":
        assert all(len(c) == 1 for c in pids.values())
        return
    # clerical: each written ID is the person's (as the standard run writes it) with at
    # most one digit mistyped or two transposed
    std = runs["standard"].rows.values()
    true_pid = {r.entity: r.raw["personal_id"] for r in std if r.raw["personal_id"]}
    for e, c in pids.items():
        for pid in c:
            wrong = sum(a != b for a, b in zip(pid, true_pid[e], strict=True))
            assert wrong <= 2, (e, c, true_pid[e])


def test_standard_hard_negatives_survive_every_profile(runs: dict[str, Run]) -> None:
    std = Counter(n["kind"] for n in runs["standard"].negatives)
    for profile, run in runs.items():
        kinds = Counter(n["kind"] for n in run.negatives)
        for kind in ("twins", "parent_child", "namesakes"):
            assert kinds[kind] >= 0.9 * std[kind], (profile, kind)


# -- clerical ------------------------------------------------------------------------------


def _id_change(std: str, new: str, width: int) -> str | None:
    if std == new:
        return None
    if " " in new or "." in new:
        return "spaced" if re.sub(r"[ .]", "", new) == std else "other"
    if len(new) < width and new == std.lstrip("0"):
        return "lost_zero"
    if len(new) == width:
        diff = [i for i in range(width) if std[i] != new[i]]
        if len(diff) == 1:
            return "mistyped"
        i = diff[0]
        if diff == [i, i + 1] and (std[i], std[i + 1]) == (new[i + 1], new[i]):
            return "transposed"
    return "other"


def test_clerical_dates(runs: dict[str, Run]) -> None:
    r = RATES["clerical"]
    n = year = day = swap = swappable = 0
    for s, c in aligned(runs, "clerical"):
        a, b = ymd(s.raw["date_of_birth"]), ymd(c.raw["date_of_birth"])
        if a is None or b is None:
            continue
        n += 1
        year += abs(a[0] - b[0]) == 1
        same_month = a[1] == b[1] and a[2] != b[2]
        day += same_month and abs(a[2] - b[2]) in (1, 10)
        if a[1] <= 12 and a[2] <= 12 and a[1] != a[2] and a[1:] != (1, 1):
            swappable += 1
            swap += b[1:] == (a[2], a[1])
    assert near(share(year, n), r["birth_year_off"])
    assert near(share(day, n), r["birth_day_digit_off"])
    assert near(share(swap, swappable), r["birth_day_month_swapped"])


def test_clerical_identifiers(runs: dict[str, Run]) -> None:
    r = RATES["clerical"]
    for field_, width, prefix in (("personal_id", 12, "pid"), ("old_id_number", 9, "cmnd")):
        kinds: Counter[str | None] = Counter()
        for s, c in aligned(runs, "clerical"):
            if s.raw[field_] and c.raw[field_]:
                kinds[_id_change(s.raw[field_], c.raw[field_], width)] += 1
        total = sum(kinds.values())
        assert kinds["other"] <= 0.01 * total, kinds
        assert near(share(kinds["transposed"], total), r[f"{prefix}_transposed"]), kinds
        assert near(share(kinds["mistyped"], total), r[f"{prefix}_mistyped"]), kinds
        assert near(share(kinds["spaced"], total), r[f"{prefix}_spaced"], 0.5), kinds
        if prefix == "pid":  # every personal ID starts with 0 (a province code 001-096)
            assert near(share(kinds["lost_zero"], total), r["pid_lost_leading_zero"]), kinds


def test_clerical_names(runs: dict[str, Run]) -> None:
    r = RATES["clerical"]
    with_middle = dropped = run_together = n = split = caps = can_caps = 0
    for s, c in aligned(runs, "clerical"):
        a, b = fold(s.raw["full_name"]).split(), fold(c.raw["full_name"]).split()
        if not a or not b:
            continue
        n += 1
        if len(a) == 3:
            with_middle += 1
            dropped += b == [a[0], a[2]]
            run_together += b == [a[0], a[1] + a[2]]
        split += len(b) == len(a) + 1 and b[-2] + b[-1] == a[-1]
        name, before = c.raw["full_name"], s.raw["full_name"]
        if not (before.isascii() and before.isupper()):
            can_caps += 1
            caps += name.isascii() and name.isupper()
    assert near(share(dropped, with_middle), r["middle_dropped"])
    assert near(share(run_together, with_middle), r["name_run_together"])
    # only given names with an initial consonant can be split (about 80 %)
    assert near(share(split, n), r["name_split_syllable"], 0.5)
    assert near(share(caps, can_caps), r["name_ascii_capitals"])
    examples = [
        c.raw["full_name"]
        for s, c in aligned(runs, "clerical")
        if s.layout == "citizen_a" and s.raw["full_name"] != c.raw["full_name"]
    ]
    assert any(re.search(r"\b(Thị|Văn|Minh|Ngọc|Thanh)[a-zđ]", x) for x in examples), examples[:20]


def _national(phone: str) -> str:
    d = digits(phone)
    return "0" + d[2:] if d.startswith("84") else d


def test_clerical_phones(runs: dict[str, Run]) -> None:
    r = RATES["clerical"]
    renumbered = set(synth_data.OLD_MOBILE_PREFIX)
    n = n_plus = n_group = old = can_old = p84 = plus = group = 0
    for s, c in aligned(runs, "clerical"):
        a, b = s.raw["phone"], c.raw["phone"]
        if not a or not b:
            continue
        n += 1
        p84 += b.startswith("84")
        if not a.startswith("+84"):
            n_plus += 1
            plus += b.startswith("+84")
        if not re.search(r"[ .]", a):
            n_group += 1
            group += bool(re.search(r"[ .]", b))
        na, nb = _national(a), _national(b)
        if len(na) == 10 and na[:3] in renumbered:
            can_old += 1
            old += len(nb) == 11
        else:
            assert len(nb) == len(na) or len(na) == 11, (a, b)
    assert near(share(p84, n), r["phone_84"])
    assert near(share(plus, n_plus), r["phone_plus84"])
    assert near(share(group, n_group), r["phone_grouped"])
    assert near(share(old, can_old), r["phone_old_11_digit"])


def test_clerical_addresses(runs: dict[str, Run]) -> None:
    r = RATES["clerical"]
    compact = re.compile(r"(^|, )(p|x|tt|q|h|tx|tp|t)\.[^ ]", re.IGNORECASE)
    group = re.compile(r"\b(to|khu pho|xom) \d+(, thon|, ap|$|,)")
    n = abbr = grouped = split_n = no_district = 0
    for s, c in aligned(runs, "clerical"):
        a, b = s.raw["permanent_address"], c.raw["permanent_address"]
        if not a or not b:
            continue
        n += 1
        abbr += bool(compact.search(b)) and not compact.search(a)
        grouped += len(group.findall(fold(b))) > len(group.findall(fold(a)))
        if s.layout == "citizen_b":
            split_n += 1
            no_district += bool(s.cols["QUAN_HUYEN"]) and not c.cols["QUAN_HUYEN"]
    assert near(share(abbr, n), r["address_abbreviated"])
    assert near(share(grouped, n), r["address_hamlet_group"])
    assert near(share(no_district, split_n), r["address_no_district"])
    assert any(
        re.search(r"\bT\.[A-ZĐ]", c.raw["permanent_address"] or "")
        for _, c in aligned(runs, "clerical")
    )


# -- sparse --------------------------------------------------------------------------------


def test_sparse_rates(runs: dict[str, Run]) -> None:
    r = RATES["sparse"]
    full = year_only = jan1 = plain = with_id = no_id = phones = no_phone = addr = no_addr = 0
    for s, c in aligned(runs, "sparse"):
        a, b = s.raw["date_of_birth"], c.raw["date_of_birth"]
        if ymd(a) is not None and a is not None:
            full += 1
            year_only += bool(re.fullmatch(r"\d{4}", b or ""))
            if not a.endswith("-01-01"):
                plain += 1
                jan1 += (b or "").endswith("-01-01")
        if s.raw["personal_id"] or s.raw["old_id_number"]:
            with_id += 1
            no_id += not (c.raw["personal_id"] or c.raw["old_id_number"])
        if s.raw["phone"]:
            phones += 1
            no_phone += not c.raw["phone"]
        if s.raw["permanent_address"]:
            addr += 1
            no_addr += not c.raw["permanent_address"] and not c.raw.get("current_address")
    assert near(share(year_only, full), r["year_only"], 0.8, 1.2)
    # the placeholder goes on rows not made year-only
    assert near(share(jan1, plain), r["jan1_placeholder"] * (1 - r["year_only"]), 0.8, 1.2)
    assert near(share(no_id, with_id), r["no_id"], 0.9, 1.1)
    assert near(share(no_phone, phones), r["no_phone"], 0.9, 1.1)
    assert near(share(no_addr, addr), r["no_address"], 0.9, 1.1)


# -- household -----------------------------------------------------------------------------


def _pairs(run: Run, kind: str) -> list[tuple[Row, Row, dict[str, str]]]:
    out = []
    for n in run.negatives:
        if n["kind"] == kind:
            a = run.rows[(n["source_system"], n["source_key_a"])]
            b = run.rows[(n["source_system"], n["source_key_b"])]
            out.append((a, b, n))
    return out


def test_household_hard_negatives_are_different_people(runs: dict[str, Run]) -> None:
    run = runs["household"]
    kinds = Counter(n["kind"] for n in run.negatives)
    for kind in HOUSEHOLD_KINDS:
        assert kinds[kind] >= 10, kinds
    for a, b, n in (p for kind in HOUSEHOLD_KINDS for p in _pairs(run, kind)):
        assert a.entity == n["true_entity_a"] and b.entity == n["true_entity_b"]
        assert a.entity != b.entity
        assert a.system == b.system == n["source_system"]
    # and the standard run has none of them
    assert not {n["kind"] for n in runs["standard"].negatives} & set(HOUSEHOLD_KINDS)


def _commune(r: Row) -> str | None:
    addr = standardize_record("citizen", r.raw).standardized.get("permanent_address")
    return addr.get("commune_code") if isinstance(addr, dict) else None


def test_households_share_address_and_phone(runs: dict[str, Run]) -> None:
    run = runs["household"]
    same_phone = both_phone = same_place = both_place = 0
    for kind in ("household_phone", "household_twins", "father_son_same_name"):
        for a, b, _ in _pairs(run, kind):
            pa_, pb = standardize_phone(a.raw["phone"])[0], standardize_phone(b.raw["phone"])[0]
            if kind == "household_phone" and pa_ and pb:
                both_phone += 1
                same_phone += pa_ == pb
            ca, cb = _commune(a), _commune(b)
            if ca and cb:
                both_place += 1
                same_place += ca == cb
    assert both_phone > 50 and same_phone == both_phone
    assert both_place > 50 and same_place / both_place >= 0.97


def test_household_twins_and_namesake_sons(runs: dict[str, Run]) -> None:
    run = runs["household"]
    twins = _pairs(run, "household_twins")
    dates = [(a.raw["date_of_birth"], b.raw["date_of_birth"]) for a, b, _ in twins]
    assert sum(x == y for x, y in dates) >= 0.7 * len(twins)  # record noise spoils a few
    names = [
        (fold(a.raw["full_name"]).split(), fold(b.raw["full_name"]).split()) for a, b, _ in twins
    ]
    assert sum(x[0] == y[0] and x[-1] != y[-1] for x, y in names if x and y) >= 0.8 * len(twins)
    sons = _pairs(run, "father_son_same_name")
    same = sum(fold(a.raw["full_name"]) == fold(b.raw["full_name"]) for a, b, _ in sons)
    assert same >= 0.75 * len(sons)
    for a, b, _ in sons:
        ya, yb = ymd(a.raw["date_of_birth"]), ymd(b.raw["date_of_birth"])
        if ya and yb:
            assert yb[0] - ya[0] >= 18  # a generation apart


def test_relative_id_rows_carry_the_relatives_id(runs: dict[str, Run]) -> None:
    run = runs["household"]
    own: dict[str, set[str]] = defaultdict(set)
    carried = {
        (n["source_system"], n["source_key_a"]) for n in run.negatives if n["kind"] == "relative_id"
    }
    for ref, r in run.rows.items():
        if r.raw["personal_id"] and ref not in carried:
            own[r.entity].add(r.raw["personal_id"])
    pairs = _pairs(run, "relative_id")
    known = 0
    for a, b, _ in pairs:
        pid = a.raw["personal_id"]
        assert pid and pid not in own[a.entity]
        if own[b.entity]:
            known += 1
            assert own[b.entity] == {pid}
    assert known >= 0.5 * len(pairs)
    rows = sum(1 for r in run.legacy().values())
    hz = run.manifest["summary"]["hazards"]
    assert hz["relative_id"] == len(pairs) and len(pairs) >= 0.003 * rows


# -- migration -----------------------------------------------------------------------------


def test_migration_people_in_many_systems(runs: dict[str, Run]) -> None:
    def many(run: Run) -> float:
        systems: dict[str, set[str]] = defaultdict(set)
        for r in run.legacy().values():
            systems[r.entity].add(r.system)
        return sum(len(s) >= 3 for s in systems.values()) / len(systems)

    assert many(runs["migration"]) >= RATES["migration"]["multi_province"]
    assert many(runs["migration"]) >= 2.5 * many(runs["standard"])


def test_migration_second_cmnd(runs: dict[str, Run]) -> None:
    run = runs["migration"]
    codes = [int(p["code"]) for p in run.manifest["provinces"]]
    regions = {cmnd_region_of_province(f"{c:03d}") for c in codes}
    region_of_system = {
        f["source_system"]: cmnd_region_of_province(f"{codes[i]:03d}")
        for i, f in enumerate(
            e
            for e in run.manifest["files"]
            if e["layout"].startswith("citizen_") and e["source_system"] != PORTAL
        )
    }
    cmnds: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in run.legacy().values():
        if r.raw["old_id_number"]:
            cmnds[r.entity][r.raw["old_id_number"]].add(r.system)
    two = {e: c for e, c in cmnds.items() if len(c) >= 2}
    assert len(two) >= 0.01 * len(cmnds)
    assert not [e for e, c in cmnds.items() if len(c) >= 2 and e not in two]
    for c in two.values():
        assert len(c) == 2 and {x[:2] for x in c} <= regions
        # one of the two was issued where the person re-registered
        assert any(region_of_system[s] == x[:2] for x, systems in c.items() for s in systems)
    assert not any(len(c) >= 2 for c in _cmnds(runs["standard"]).values())


def _cmnds(run: Run) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for r in run.legacy().values():
        if r.raw["old_id_number"]:
            out[r.entity].add(r.raw["old_id_number"])
    return out


def test_migration_2025_addresses_in_legacy_systems(runs: dict[str, Run]) -> None:
    from mdm.synth import geo

    run = runs["migration"]
    wards = [w for c in run.manifest["provinces"] for w in geo.load_province(int(c["code"])).wards]
    new_wards = {fold(w.new_ward) for w in wards}
    new_provinces = {fold(p["new_name"]) for p in run.manifest["provinces"]}
    rows = [r for r in run.legacy().values() if r.layout == "citizen_b" and r.cols["XA_PHUONG"]]
    new = [r for r in rows if not r.cols["QUAN_HUYEN"]]
    # movers' rows at their destination mostly, other rows now and then
    assert near(share(len(new), len(rows)), RATES["migration"]["new_form_other"], 1.0, 3.0)
    assert all(fold(r.cols["XA_PHUONG"]) in new_wards for r in new)
    assert all(fold(r.cols["TINH_THANH"]) in new_provinces for r in new)
    hz = run.manifest["summary"]["hazards"]
    assert hz["address_2025_form_movers"] > 0 and hz["new_cmnd"] > 0


def test_twins_never_carry_one_full_name() -> None:
    """Parents never give twins (or two of their children) one full name, even where
    the first twin was named after the father (that hazard is planted first)."""
    from mdm.synth.generate import _World

    world = _World(SynthParams(provinces=2, citizens=30_000, seed=7, profile="household"))
    p = world.people
    twins = [(a, b) for kind, a, b in p.hard_negatives if kind == "household_twins"]
    assert len(twins) > 100
    assert all(p.sex[a] == p.sex[b] for a, b in twins)
    assert all(p.middle[a] == p.middle[b] for a, b in twins)
    assert not [(a, b) for a, b in twins if p.given[a] == p.given[b]]
    # nor do a brother and a brother, a sister and a sister
    siblings = [
        (a, b)
        for kind, a, b in p.hard_negatives
        if kind in ("household_phone", "household_address")
        and p.sex[a] == p.sex[b]
        and p.surname[a] == p.surname[b]
        and abs(int(p.year[a]) - int(p.year[b])) <= 8
    ]
    assert len(siblings) > 100
    assert not [(a, b) for a, b in siblings if p.given[a] == p.given[b]]
