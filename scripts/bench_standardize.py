"""Benchmark: standardize generated citizen records; compare with vietnamadminunits.

Not a test. Builds citizen rows whose addresses are drawn from the unit data itself (a few
thousand legacy communes with Zipf-like repetition, households sharing an address, official
names, abbreviations, no diacritics, upper case, NFD, and some written in 2025 form), so the
true 2025 commune of every address is known. Then it measures:

* our address standardizer (cached as in production, and uncached per address);
* whole citizen records through ``mdm.standardize.records.standardize_record`` if present;
* vietnamadminunits' own parser/converter on a sample of the same addresses, OFFLINE: its
  geocoder hook (used for split wards with a street) is replaced by a stub returning
  ``None``, which the package itself treats as "no location" and answers with its default
  ward. No address leaves the machine.

Every timing is reported as wall-clock and CPU (``time.process_time``) rates: on a shared
machine the wall clock mostly measures the neighbours. "Cold" means every standardizer cache
emptied first (the unit index stays loaded, as in a worker); "warm" is a second pass over the
same rows.

On a busy machine, ``--repeat N`` runs the record passes N times (each cold pass after
emptying the caches again) and reports the best of each; the load average is printed beside
the figures.

Usage: ``.venv/bin/python scripts/bench_standardize.py [--rows 100000] [--vau-sample 3000]
[--repeat 1]``
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import time
import tracemalloc
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from mdm.standardize import addresses
from mdm.standardize.addresses import parse_uncached, standardize_address
from mdm.standardize.units import dataset_version, get_index

STREETS = [
    "Lê Lợi", "Trần Hưng Đạo", "Nguyễn Trãi", "Hai Bà Trưng", "Lý Thường Kiệt", "Quang Trung",
    "Nguyễn Huệ", "Lê Duẩn", "Phan Đình Phùng", "Hùng Vương", "Điện Biên Phủ", "Võ Thị Sáu",
    "Nguyễn Văn Cừ", "Trường Chinh", "Lạc Long Quân", "Bạch Đằng", "Lê Thánh Tông", "Tôn Đức Thắng",
    "Nguyễn Thị Minh Khai", "Phạm Văn Đồng", "Cách Mạng Tháng Tám", "Ngô Quyền", "Lê Hồng Phong",
]  # fmt: skip
HAMLETS = ["Thôn", "Xóm", "Ấp", "Tổ", "Khu phố", "Bản"]
SURNAMES = [
    ("Nguyễn", 38), ("Trần", 11), ("Lê", 9.5), ("Phạm", 7), ("Hoàng", 3), ("Huỳnh", 2),
    ("Phan", 4.5), ("Vũ", 2), ("Võ", 2), ("Đặng", 2), ("Bùi", 2), ("Đỗ", 1.4), ("Hồ", 1.3),
    ("Ngô", 1.3), ("Dương", 1), ("Lý", 0.5),
]  # fmt: skip
MALE = ["Văn An", "Minh Đức", "Quốc Huy", "Văn Hùng", "Thành Long", "Đức Thắng", "Hữu Phước"]
FEMALE = ["Thị Lan", "Thị Hoa", "Ngọc Anh", "Thu Trang", "Thị Mai", "Phương Thảo", "Thị Hằng"]

DISTRICT_ABBR = {"quận": "Q.", "huyện": "H.", "thị xã": "TX.", "thành phố": "TP."}
COMMUNE_ABBR = {"phường": "P.", "xã": "X.", "thị trấn": "TT."}


@dataclass(frozen=True, slots=True)
class Truth:
    commune: str  # the true 2025 commune code
    candidates: tuple[str, ...]  # all targets of the legacy commune (1 unless split)
    form: str  # "pre2025" | "2025"


def _strip(s: str) -> str:
    out = "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))
    return out.replace("Đ", "D").replace("đ", "d")


def _bare(name: str) -> str:
    from mdm.standardize.units import split_type

    return split_type(name)[1]


def _province_text(rnd: random.Random, name: str) -> str:
    bare = _bare(name)
    if bare == "Hồ Chí Minh":
        return rnd.choice(["TP.HCM", "TP. Hồ Chí Minh", "Tp HCM", "Thành phố Hồ Chí Minh"])
    if bare == "Hà Nội":
        return rnd.choice(["Hà Nội", "TP. Hà Nội", "HN", "Thành phố Hà Nội"])
    return rnd.choice([name, bare, bare])


def build_rows(n: int, seed: int = 2025) -> tuple[list[dict[str, str | None]], list[Truth]]:
    ix = get_index()
    rnd = random.Random(seed)
    mapped = sorted(c for c in ix.legacy_communes if ix.crosswalk.get(c))
    communes = rnd.sample(mapped, 4000)
    weights = [1.0 / (i + 1) ** 0.8 for i in range(len(communes))]
    # households: one address shared by ~3 people
    households: list[tuple[str, Truth]] = []
    for code in rnd.choices(communes, weights, k=max(1, n // 3)):
        households.append(_address(rnd, ix, code))
    surnames, sw = zip(*SURNAMES, strict=True)
    rows: list[dict[str, str | None]] = []
    truths: list[Truth] = []
    for _ in range(n):
        addr, truth = rnd.choice(households)
        male = rnd.random() < 0.5
        year = rnd.randint(1940, 2010)
        old_province = rnd.choice(sorted(ix.legacy_provinces))
        century = 0 if year < 2000 else 2
        sex_digit = century + (0 if male else 1)
        pid = f"0{old_province}{sex_digit}{year % 100:02d}{rnd.randrange(10**6):06d}"
        given = rnd.choice(MALE if male else FEMALE)
        rows.append(
            {
                "personal_id": pid,
                "full_name": f"{rnd.choices(surnames, sw)[0]} {given}",
                "date_of_birth": f"{rnd.randint(1, 28):02d}/{rnd.randint(1, 12):02d}/{year}",
                "sex": "Nam" if male else "Nữ",
                "permanent_address": addr,
                "phone": f"09{rnd.randrange(10**8):08d}",
                "ethnicity": "Kinh",
                "nationality": "Việt Nam",
            }
        )
        truths.append(truth)
    return rows, truths


def _address(rnd: random.Random, ix: Any, code: str) -> tuple[str, Truth]:
    c = ix.legacy_communes[code]
    d = ix.legacy_districts[c.parent_code]
    p = ix.legacy_provinces[d.parent_code]
    targets = ix.crosswalk[code]
    true = rnd.choice(targets)
    r = rnd.random()
    street = (
        f"{rnd.randint(1, 300)} {rnd.choice(STREETS)}"
        if r < 0.5
        else f"{rnd.choice(HAMLETS)} {rnd.randint(1, 12)}"
        if r < 0.85
        else ""
    )
    if rnd.random() < 0.15:  # written by a new system: street, 2025 commune, 2025 province
        nc = ix.communes[true]
        np = ix.provinces[nc.parent_code]
        parts = [street, nc.name, _province_text(rnd, np.name)]
        truth = Truth(true, (true,), "2025")
    else:
        style = rnd.random()
        if style < 0.45:
            parts = [street, c.name, d.name, _province_text(rnd, p.name)]
        elif style < 0.8:
            parts = [
                street,
                f"{COMMUNE_ABBR[c.type]} {_bare(c.name)}",
                f"{DISTRICT_ABBR[d.type]} {_bare(d.name)}",
                _province_text(rnd, p.name),
            ]
        else:
            parts = [street, _bare(c.name), _bare(d.name), _province_text(rnd, p.name)]
        truth = Truth(true, targets, "pre2025")
    text = ", ".join(x for x in parts if x)
    v = rnd.random()
    if v < 0.2:
        text = _strip(text)
    elif v < 0.25:
        text = text.upper()
    elif v < 0.3:
        text = unicodedata.normalize("NFD", text)
    return text, truth


def score_ours(result: dict[str, Any] | None, truth: Truth) -> bool:
    if result is None:
        return False
    if result["ambiguous"]:
        return truth.commune in {c["commune_code"] for c in result["candidates"]}
    return bool(result["commune_code"] == truth.commune)


# ---------------------------------------------------------------- vietnamadminunits, offline


def load_vau() -> tuple[Callable[[str, str], str | None], str] | None:
    try:
        import importlib.metadata as md

        import vietnamadminunits.converter.converter_2025 as conv
        import vietnamadminunits.parser.utils as vau_utils
        from vietnamadminunits import ParseMode, convert_address, parse_address
    except ImportError:
        return None

    def no_geocoder(*_args: object, **_kwargs: object) -> None:
        return None  # the package treats this as "location unknown": default ward

    conv.get_geo_location = no_geocoder  # the only path that goes online
    vau_utils.get_geo_location = no_geocoder

    def run(text: str, form: str) -> str | None:
        try:
            if form == "2025":
                unit = parse_address(text, mode=ParseMode.FROM_2025, keep_street=True, level=2)
            else:
                unit = convert_address(text)
            return str(unit.ward_code) if unit.ward_code else None
        except Exception:
            return None

    return run, md.version("vietnamadminunits")


# ---------------------------------------------------------------- main


def machine() -> str:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        model = platform.processor() or "unknown"
    return (
        f"{model}; {os.cpu_count()} logical cores (benchmark uses 1); "
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}"
    )


def clear_caches() -> None:
    """Empty every standardizer cache but the unit index and one-off compiled tables."""
    import importlib
    import pkgutil

    import mdm.standardize as pkg

    addresses.clear_caches()
    for info in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"mdm.standardize.{info.name}")
        for obj in list(vars(module).values()):
            params = getattr(obj, "cache_parameters", None)
            if params is not None and params().get("maxsize") not in (None, 1):
                obj.cache_clear()


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


class Timer:
    """Wall and CPU time of a block."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    @staticmethod
    def best(timers: list[Timer]) -> Timer:
        """The lowest CPU and the lowest wall time among several runs of one block."""
        out = Timer()
        out.cpu = min(t.cpu for t in timers)
        out.wall = min(t.wall for t in timers)
        return out

    def rates(self, n: int, unit: str = "records") -> str:
        return f"{n / self.cpu:,.0f} {unit}/s CPU, {n / self.wall:,.0f} {unit}/s wall"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--vau-sample", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=1, help="record passes: best of N")
    args = ap.parse_args()
    proc = psutil.Process()

    print(f"machine: {machine()}; load average {_load()}")
    with Timer() as tm:
        version = dataset_version()
    print(
        f"reference data: {version} (index built in {tm.wall:.2f} s wall, {tm.cpu:.2f} s CPU; "
        "each ingest worker pays this once)"
    )
    ix = get_index()
    print(
        f"units: {len(ix.legacy_provinces)} legacy provinces, {len(ix.legacy_districts)} "
        f"districts, {len(ix.legacy_communes)} communes; {len(ix.provinces)} provinces and "
        f"{len(ix.communes)} communes (2025); crosswalk {len(ix.crosswalk)} old communes"
    )
    rss_base = proc.memory_info().rss

    t = time.perf_counter()
    rows, truths = build_rows(args.rows)
    texts = [str(r["permanent_address"]) for r in rows]
    distinct = len(set(texts))
    splits = sum(len(t.candidates) > 1 for t in truths)
    new_form = sum(t.form == "2025" for t in truths)
    print(
        f"data: {len(rows):,} citizen rows, {distinct:,} distinct address strings, "
        f"{len({t.commune for t in truths}):,} distinct true 2025 communes, "
        f"{splits:,} rows in split former communes, {new_form:,} written in 2025 form "
        f"(generated in {time.perf_counter() - t:.1f} s)"
    )
    print("  e.g.", *texts[:4], sep="\n    ")

    # 1. addresses, production path, streamed as a pipeline would (the lru cache warms up
    #    inside the timed run); results are scored on the fly, not kept
    clear_caches()
    gc.collect()
    ours_ok = ours_amb = ours_unres = 0
    with Timer() as tm_cached:
        for x, truth in zip(texts, truths, strict=True):
            r = standardize_address(x)[0]
            ours_ok += score_ours(r, truth)
            if r is not None and r["ambiguous"]:
                ours_amb += 1
            elif r is None or not r["commune_code"]:
                ours_unres += 1
    # 2. uncached: every distinct string parsed in full, no cache at all
    uniq = list(dict.fromkeys(texts))
    with Timer() as tm_uncached:
        for x in uniq:
            parse_uncached(x)
    addr_rate = len(texts) / tm_cached.cpu
    print("\nours (mdm.standardize.addresses):")
    print(
        f"  {len(texts):,} addresses, production path from cold caches: "
        f"{tm_cached.rates(len(texts), 'addresses')}"
    )
    print(
        f"  uncached: {len(uniq):,} distinct, {tm_uncached.cpu / len(uniq) * 1e6:.1f} µs/address "
        f"CPU ({tm_uncached.wall / len(uniq) * 1e6:.1f} µs wall)"
    )
    print(
        f"  accuracy: {ours_ok / len(texts):.2%} ({ours_ok:,}/{len(texts):,}); "
        f"ambiguous (split, scored correct when the truth is a candidate) {ours_amb:,}; "
        f"unresolved {ours_unres:,}"
    )

    # 3. whole records
    rec_rate: float | None = None
    try:
        from mdm.standardize.records import standardize_record
    except ImportError:
        print("\nrecords: mdm.standardize.records.standardize_record not available yet")
    else:
        colds: list[Timer] = []
        warms: list[Timer] = []
        for _ in range(max(1, args.repeat)):
            clear_caches()
            gc.collect()
            with Timer() as cold:
                for row in rows:
                    standardize_record("citizen", row)
            with Timer() as warm:
                for row in rows:
                    standardize_record("citizen", row)
            colds.append(cold)
            warms.append(warm)
        cold = Timer.best(colds)
        warm = Timer.best(warms)
        rec_rate = len(rows) / cold.cpu
        best = f", best of {len(colds)}" if len(colds) > 1 else ""
        print(f"\nrecords ({len(rows):,} citizen records, one core{best}; load average {_load()}):")
        print(f"  cold pass (caches emptied first): {cold.rates(len(rows))}")
        print(f"  warm pass (same rows again):      {warm.rates(len(rows))}")

    # 4. memory (a separate pass: tracemalloc slows Python down)
    clear_caches()
    gc.collect()
    tracemalloc.start()
    for x in texts:
        standardize_address(x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = proc.memory_info().rss
    import resource

    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"\nmemory: RSS {rss / 2**20:.0f} MiB now ({(rss - rss_base) / 2**20:+.0f} MiB over "
        f"the loaded index), peak RSS {maxrss_kb / 1024:.0f} MiB; tracemalloc peak during a "
        f"cold pass over all addresses {peak / 2**20:.1f} MiB"
    )

    # 5. vietnamadminunits on a sample of the same rows
    vau = load_vau()
    if vau is None:
        print("\nvietnamadminunits: not installed (pip install '.[bench]')")
        return
    run, vau_version = vau
    rnd = random.Random(7)
    sample = rnd.sample(range(len(texts)), min(args.vau_sample, len(texts)))
    run(texts[sample[0]], truths[sample[0]].form)  # warm its lazy loads
    with Timer() as tm_vau:
        vau_answers = [run(texts[i], truths[i].form) for i in sample]
    vau_rate = len(sample) / tm_vau.cpu
    strict = sum(a == truths[i].commune for a, i in zip(vau_answers, sample, strict=True))
    lenient = sum(a in truths[i].candidates for a, i in zip(vau_answers, sample, strict=True))
    ours_s = sum(score_ours(standardize_address(texts[i])[0], truths[i]) for i in sample)
    with Timer() as tm_ours_s:
        for i in sample:
            parse_uncached(texts[i])
    ours_s_rate = len(sample) / tm_ours_s.cpu
    print(
        f"\nvietnamadminunits {vau_version} (offline: geocoder stubbed), same {len(sample):,} rows:"
    )
    print(
        f"  {tm_vau.cpu / len(sample) * 1e6:,.0f} µs/address CPU = "
        f"{tm_vau.rates(len(sample), 'addresses')}"
    )
    print(
        f"  accuracy: {strict / len(sample):.2%} strict (its one answer is the true commune); "
        f"{lenient / len(sample):.2%} lenient (its answer is any target of the split commune)"
    )
    print(f"ours on the same sample: {ours_s / len(sample):.2%}, uncached {ours_s_rate:,.0f}/s CPU")
    print(
        f"speed ratio (CPU): {ours_s_rate / vau_rate:,.0f}x uncached, {addr_rate / vau_rate:,.0f}x "
        "on the production path from cold caches"
    )
    print("\ntargets: >= 20,000 records/s CPU on one core (cold pass):", end=" ")
    print("met" if rec_rate and rec_rate >= 20_000 else f"{rec_rate and round(rec_rate)} records/s")
    ok = ours_s >= strict and ours_s_rate >= 10 * vau_rate
    print(f">= 10x faster at equal or better accuracy: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
