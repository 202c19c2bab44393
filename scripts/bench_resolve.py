"""Benchmark: identity assignment + golden records (`apply_partition`) on Postgres.

Builds N synthetic citizen source records straight into a scratch Postgres database
(COPY into source_systems / source_records / source_record_versions, realistic
standardized dicts), a partition in which ~25% of people have 2-3 records, then times
``apply_partition`` three times, each in its own committed transaction:

1. first run (every group founds an entity),
2. rerun with nothing changed (must write nothing),
3. rerun with ~5% of the groups regrouped (splits and merges).

Prints wall and CPU seconds of this process (Postgres works in its own processes:
wall minus CPU is mostly waiting for it), records/s, the peak RSS of the stage and
the machine.

    .venv/bin/python scripts/bench_resolve.py                 # 100,000 records
    .venv/bin/python scripts/bench_resolve.py --records 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import STREETS, PeakRss, machine, person, scratch_postgres
from sqlalchemy import text
from sqlalchemy.orm import Session

from mdm.services.identity import apply_partition
from mdm.store import migrate
from mdm.store.db import make_engine

SYSTEMS = [
    ("hn-legacy-2019", {"default": 0.6, "personal_id": 0.8}),
    ("hcm-legacy-2020", {"default": 0.6}),
    ("national-portal", {"default": 0.9, "phone": 0.7}),
    ("moh-insurance", {"default": 0.7, "date_of_birth": 0.85}),
    ("mopolice-residence", {"default": 0.95}),
    ("edu-registry", {"default": 0.5}),
]
T0 = datetime(2025, 7, 1, tzinfo=UTC)
COPY_CHUNK = 50_000


def variant(
    rng: random.Random, base: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Another source's view of the same person: partial dates, other phones, moves."""
    std = json.loads(json.dumps(base))
    if rng.random() < 0.2:
        std["date_of_birth"] = std["date_of_birth"][:4]
    if rng.random() < 0.3:
        std["phone"] = f"+849{rng.randrange(0, 100_000_000):08d}"
    if rng.random() < 0.15:
        std["permanent_address"]["street"] = f"{rng.randrange(1, 300)} {rng.choice(STREETS)}"
    if rng.random() < 0.1:
        del std["phone"]
    issues: list[dict[str, str]] = []
    if rng.random() < 0.05:
        issues.append(
            {"field": "personal_id", "code": "personal_id_inconsistent", "severity": "warning"}
        )
    return std, issues


def build_partition(n: int, rng: random.Random) -> list[list[int]]:
    """Record ids 1..n in groups: ~25% of people have 2 or 3 records."""
    groups: list[list[int]] = []
    next_id = 1
    while next_id <= n:
        size = 1 if rng.random() >= 0.25 else rng.choice((2, 3))
        size = min(size, n - next_id + 1)
        groups.append(list(range(next_id, next_id + size)))
        next_id += size
    # records of one person are not adjacent in a real load: shuffle the id space
    perm = list(range(1, n + 1))
    rng.shuffle(perm)
    return [[perm[r - 1] for r in g] for g in groups]


def load_records(url: str, groups: list[list[int]], seed: int) -> None:
    rng = random.Random(seed)
    engine = make_engine(url)
    system_of = {}
    with engine.begin() as conn:
        for sid, (name, trust) in enumerate(SYSTEMS, start=1):
            conn.execute(
                text(
                    "INSERT INTO source_systems (id, name, trust, created_at) "
                    "VALUES (:id, :name, CAST(:trust AS jsonb), :at)"
                ),
                {"id": sid, "name": name, "trust": json.dumps({"citizen": trust}), "at": T0},
            )
            system_of[name] = sid
        raw = conn.connection.driver_connection
        assert raw is not None

        def rows() -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
            for pi, g in enumerate(groups):
                base = person(rng, pi)
                systems = rng.sample(range(1, len(SYSTEMS) + 1), len(g))
                for k, (rid, sid) in enumerate(zip(g, systems, strict=True)):
                    std, issues = (base, []) if k == 0 else variant(rng, base)
                    at = T0 + timedelta(days=rng.randrange(0, 400), seconds=rid)
                    yield (
                        (rid, sid, f"K{rid:09d}", "citizen", 1, "active", f"h{rid}", at, at),
                        (
                            rid,
                            rid,
                            1,
                            "{}",
                            json.dumps(std, ensure_ascii=False),
                            json.dumps(issues),
                            f"h{rid}",
                            at,
                        ),
                    )

        cur = raw.cursor()
        buf: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = []

        def flush() -> None:
            with cur.copy(
                "COPY source_records (id, source_system_id, source_key, entity_type, "
                "current_version, status, current_hash, first_seen_at, updated_at) FROM STDIN"
            ) as copy:
                for rec, _v in buf:
                    copy.write_row(rec)
            with cur.copy(
                "COPY source_record_versions (id, source_record_id, version, raw, "
                "standardized, issues, content_hash, received_at) FROM STDIN"
            ) as copy:
                for _r, ver in buf:
                    copy.write_row(ver)
            buf.clear()

        for pair in rows():
            buf.append(pair)
            if len(buf) >= COPY_CHUNK:
                flush()
        flush()
        for table in ("source_systems", "source_records", "source_record_versions"):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
                )
            )
    with engine.begin() as conn:
        for table in ("source_systems", "source_records", "source_record_versions"):
            conn.execute(text(f"ANALYZE {table}"))
    engine.dispose()


def regroup(groups: list[list[int]], fraction: float, rng: random.Random) -> list[list[int]]:
    """~``fraction`` of the groups changed: multi-record groups split, singletons paired."""
    out = [list(g) for g in groups]
    picked = rng.sample(range(len(out)), int(len(out) * fraction))
    singles = [i for i in picked if len(out[i]) == 1]
    multis = [i for i in picked if len(out[i]) > 1]
    result: list[list[int]] = []
    drop = set(picked)
    for i in multis:  # split off the last record
        result.append(out[i][:-1])
        result.append(out[i][-1:])
    for a, b in zip(singles[0::2], singles[1::2], strict=False):
        result.append(out[a] + out[b])
    if len(singles) % 2:
        result.append(out[singles[-1]])
    result.extend(g for i, g in enumerate(out) if i not in drop)
    return result


def timed(url: str, label: str, groups: list[list[int]], n: int) -> dict[str, Any]:
    engine = make_engine(url)
    with PeakRss(os.getpid()) as rss:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        with Session(engine) as session:
            summary = apply_partition(session, "citizen", groups)
            session.commit()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    engine.dispose()
    s = summary.as_dict()
    print(
        f"{label:<22} {wall:7.1f} s wall {cpu:7.1f} s CPU  {n / wall:9,.0f} records/s  "
        f"peak RSS {rss.peak / 2**20:6,.0f} MiB  created {s['entities_created']:,} "
        f"updated {s['entities_updated']:,} merged {s['entities_merged']:,} "
        f"versions {s['versions']:,} events {s['events']:,}",
        flush=True,
    )
    return {"stage": label, "wall_s": wall, "cpu_s": cpu, "peak_rss": rss.peak, **s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--regroup", type=float, default=0.05)
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    rng = random.Random(args.seed)
    groups = build_partition(args.records, rng)
    multi = sum(1 for g in groups if len(g) > 1)
    print(
        f"{args.records:,} records in {len(groups):,} people "
        f"({multi / len(groups):.0%} with 2-3 records, "
        f"{args.records / len(groups):.2f} records per person)",
        flush=True,
    )
    with scratch_postgres("mdm_bench_resolve") as url:
        migrate.upgrade(url)
        t0 = time.perf_counter()
        load_records(url, groups, args.seed)
        print(f"loaded source records in {time.perf_counter() - t0:.1f} s", flush=True)
        timed(url, "first run", groups, args.records)
        timed(url, "rerun, unchanged", groups, args.records)
        changed = regroup(groups, args.regroup, random.Random(args.seed + 1))
        timed(url, f"rerun, {args.regroup:.0%} regrouped", changed, args.records)
        if args.keep:
            print(f"kept {url}; press Enter to drop it")
            input()


if __name__ == "__main__":
    main()
