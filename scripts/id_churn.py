"""ID-churn report: are canonical IDs stable across matching + resolution runs?

    .venv/bin/python scripts/id_churn.py [--db URL] [--citizens 1000] [--provinces 2]

1. ``mdm synth`` a data set, ``mdm ingest --manifest`` it into a fresh database.
2. Hold back 10% of the records (by a hash of source system/key): they "arrive later".
3. Round 1: cluster the other 90% and ``apply_partition`` + resolve.
   Round 2: the same again -> expect 0 canonical IDs changed, 0 versions written.
   Round 3: all 100% -> no existing ID may disappear except through a redirect.

Clusters come from the synth ground truth (``truth.csv``), not from the matcher
(``mdm match run`` does not call ``apply_partition`` yet). To exercise merges, rounds
1-2 under-link on purpose: every 10th multi-record true cluster is cut in two, as a
cautious matcher would; round 3 uses the full truth, so those halves merge.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from mdm.services.history import get_entity
from mdm.services.identity import PartitionSummary, apply_partition
from mdm.services.resolve import rebuild, resolve_pending
from mdm.store import migrate
from mdm.store.db import make_engine
from mdm.store.models import Entity, Link, SourceRecord, SourceSystem

ROOT = Path(__file__).resolve().parents[1]
MDM = str(ROOT / ".venv" / "bin" / "mdm")


def _held_back(system: str, key: str, share: float) -> bool:
    h = int.from_bytes(hashlib.sha256(f"{system}/{key}".encode()).digest()[:4], "big")
    return h / 2**32 < share


def _xref(session: Session, entity_type: str) -> dict[int, str]:
    rows = session.execute(
        select(Link.source_record_id, Entity.canonical_id)
        .join(Entity, Entity.id == Link.entity_id)
        .where(Link.active.is_(True), Entity.entity_type == entity_type)
    )
    return {int(r): c for r, c in rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--db", help="database URL (default: a new SQLite file)")
    ap.add_argument("--citizens", type=int, default=1000)
    ap.add_argument("--provinces", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--holdout", type=float, default=0.10)
    ap.add_argument("--entity", action="append", default=None)
    ap.add_argument("--data", type=Path, help="an existing `mdm synth` directory to reuse")
    args = ap.parse_args()
    types = args.entity or ["citizen", "organization", "dossier"]

    work = Path(tempfile.mkdtemp(prefix="mdm-churn-"))
    url = args.db or f"sqlite:///{work / 'churn.db'}"
    env = {**os.environ, "MDM_DATABASE_URL": url}
    data = args.data or work / "synth"
    if args.data is None:
        subprocess.run(
            [
                MDM,
                "synth",
                "--out",
                str(data),
                "--citizens",
                str(args.citizens),
                "--provinces",
                str(args.provinces),
                "--seed",
                str(args.seed),
            ],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    migrate.upgrade(url)
    subprocess.run(
        [MDM, "ingest", "--manifest", str(data / "manifest.json")],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    truth: dict[tuple[str, str], str] = {}
    with (data / "truth.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            truth[(row["source_system"], row["source_key"])] = row["true_entity"]

    engine = make_engine(url)
    failed = False
    for entity_type in types:
        with Session(engine) as session:
            recs = session.execute(
                select(SourceRecord.id, SourceSystem.name, SourceRecord.source_key)
                .join(SourceSystem, SourceSystem.id == SourceRecord.source_system_id)
                .where(SourceRecord.entity_type == entity_type, SourceRecord.status == "active")
            ).all()
        clusters: dict[str, list[int]] = defaultdict(list)
        early: set[int] = set()
        for rid, system, key in recs:
            clusters[truth.get((system, key), f"unknown:{system}/{key}")].append(int(rid))
            if not _held_back(system, key, args.holdout):
                early.add(int(rid))
        full = sorted(sorted(g) for g in clusters.values())
        under: list[list[int]] = []
        multi = 0
        for g in full:
            g = [r for r in g if r in early]
            if not g:
                continue
            if len(g) > 1:
                multi += 1
                if multi % 10 == 0:
                    under.extend([g[: len(g) // 2], g[len(g) // 2 :]])
                    continue
            under.append(g)

        def run(
            groups: list[list[int]], entity_type: str = entity_type
        ) -> tuple[dict[int, str], PartitionSummary, float]:
            t0 = time.perf_counter()
            with Session(engine) as s, s.begin():
                summary = apply_partition(s, entity_type, groups)
                resolve_pending(s, entity_type)
            with Session(engine) as s:
                return _xref(s, entity_type), summary, time.perf_counter() - t0

        x1, s1, t1 = run(under)
        x2, s2, t2 = run(list(reversed(under)))
        changed = sum(1 for r, c in x1.items() if x2.get(r) != c)
        x3, s3, t3 = run(full)
        ids1 = set(x1.values())
        ids3 = set(x3.values())
        gone = ids1 - ids3
        with Session(engine) as s:
            redirected = {c for c in gone if get_entity(s, c).canonical_id in ids3}
            report = rebuild(s, entity_type)
        moved = sum(1 for r, c in x1.items() if x3[r] != c)
        print(f"== {entity_type}: {len(recs)} records, {len(full)} true entities")
        print(f"round 1 (90%, under-linked): {s1.as_dict()}  [{t1:.2f} s]")
        print(
            f"round 2 (same data):  canonical IDs changed: {changed} of {len(x1)} records; "
            f"entities created {s2.entities_created}, merged {s2.entities_merged}, "
            f"versions written {s2.versions}  [{t2:.2f} s]"
        )
        print(
            f"round 3 (+{len(x3) - len(x1)} records): existing IDs {len(ids1)}, "
            f"kept {len(ids1 & ids3)}, gone via redirect {len(redirected)}, "
            f"gone WITHOUT redirect {len(gone - redirected)}, new IDs {len(ids3 - ids1)}; "
            f"records whose ID changed {moved}"
            f"  [{t3:.2f} s]"
        )
        print(f"round 3 summary: {s3.as_dict()}")
        print(f"rebuild: {report.entities} golden records, {len(report.differing)} differ")
        failed |= bool(changed or s2.versions or (gone - redirected) or not report.ok)
    print("FAIL" if failed else "OK: no canonical ID lost")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
