"""Benchmark: the candidate index (`blocking_keys`) keyed by text, as now, against a
64-bit hash of the key: the Postgres time to COPY a 1M-record run's keys and the size.

Both tables get the same synthetic keys (six or seven per record, shaped like the
citizen rules' keys), COPY'd in batches of 20,000 records as the feature pass writes
them, each batch its own transaction; both sides run in one run and the ratio is
printed. A design measurement for the next step of the national-scale issue, not a
test of shipped code.

    .venv/bin/python scripts/bench_blocking_keys.py --records 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, scratch_postgres

BATCH = 20_000


def _keys(rng: random.Random, rid: int) -> list[str]:
    year = 1940 + rng.randrange(70)
    dob = f"{year}-{1 + rng.randrange(12):02d}-{1 + rng.randrange(28):02d}"
    given = f"g{rng.randrange(3000)}"
    keys = [
        f"dob_full:{dob}",
        f"surname_group+given_fold:s{rng.randrange(300)}\x1f{given}",
        f"commune_code+birth_year:{rng.randrange(3300):05d}\x1f{year}",
        f"personal_id:0{rng.randrange(10**11):011d}",
        f"phone:+849{rng.randrange(10**8):08d}",
        f"given_fold+dob_full:{given}\x1f{dob}",
        f"old_id:{rng.randrange(10**9):09d}",
    ]
    return keys[: 6 + (rid % 3 == 0)]


def _hash(entity_type: str, key: str) -> int:
    digest = hashlib.blake2b(f"{entity_type}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    rng = random.Random(1)
    batches = [
        [
            (k, rid)
            for rid in range(start + 1, min(args.records, start + BATCH) + 1)
            for k in _keys(rng, rid)
        ]
        for start in range(0, args.records, BATCH)
    ]
    print(f"{args.records:,} records, {sum(len(b) for b in batches):,} keys")
    results: dict[str, float] = {}
    with (
        scratch_postgres("mdm_bench_bk") as url,
        psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn,
    ):
        conn.execute(
            "CREATE TABLE bk_text (entity_type varchar(20), blocking_key varchar(500), "
            "source_record_id bigint, "
            "PRIMARY KEY (entity_type, blocking_key, source_record_id))"
        )
        conn.execute("CREATE INDEX ON bk_text (source_record_id)")
        conn.execute(
            "CREATE TABLE bk_hash (key_hash bigint, source_record_id bigint, "
            "PRIMARY KEY (key_hash, source_record_id))"
        )
        conn.execute("CREATE INDEX ON bk_hash (source_record_id)")
        conn.commit()
        for table in ("bk_text", "bk_hash"):
            build = copy = 0.0
            for rows in batches:
                t0 = time.perf_counter()
                if table == "bk_text":
                    block = "".join(f"citizen\t{k}\t{rid}\n" for k, rid in rows)
                    sql = "COPY bk_text (entity_type, blocking_key, source_record_id) FROM STDIN"
                else:
                    block = "".join(f"{_hash('citizen', k)}\t{rid}\n" for k, rid in rows)
                    sql = "COPY bk_hash (key_hash, source_record_id) FROM STDIN"
                t1 = time.perf_counter()
                with conn.cursor() as cur, cur.copy(sql) as cp:
                    cp.write(block)
                conn.commit()
                build += t1 - t0
                copy += time.perf_counter() - t1
            row = conn.execute(
                f"SELECT pg_size_pretty(pg_total_relation_size('{table}'))"
            ).fetchone()
            assert row is not None
            results[table] = copy
            what = "text + hash" if table == "bk_hash" else "text"
            print(
                f"  {table}: COPY + commit {copy:6.1f} s, Python {what} {build:5.1f} s, "
                f"table + indexes {row[0]}"
            )
    print(f"  ratio of COPY time, hash / text: {results['bk_hash'] / results['bk_text']:.2f}")


if __name__ == "__main__":
    main()
