"""Benchmark: canonical-ID lookup latency as the registry grows (1M → 10M citizens).

Issue 10's sizing guide claims point lookups stay flat with table size while the
indexes stay in memory; this measures it. For each size given to ``--entities``, in
one run on one machine:

1. Seeds a scratch Postgres database with ``bench_api.seed`` (COPY: source systems,
   source records, entities, entity versions, active links). The matcher's tables
   (``match_features``, ``blocking_keys``) are left empty unless ``--matcher-tables``:
   lookups never read them and they hold most of the bytes and the seeding time.
2. Sizes: the database, the tables the lookups read (``pg_total_relation_size``),
   the indexes the lookups' plans use (``pg_relation_size``) and their B-tree depth
   (``pageinspect.bt_metap``, skipped with a note when the extension is missing).
3. SQL point lookups on one psycopg connection, server-side prepared, with the API's
   own statements (``mdm.store.repositories.lookup``): by canonical ID and by
   (source system, source key), each on its own random keys spread over the whole
   table. Three figures per kind, p50/p95/p99 in µs: the first ``--first`` (1,000)
   lookups after seeding (cold-ish: Postgres is not restarted, so whatever the seeding
   left in shared buffers and the OS cache stays), the next ``--lookups`` (20,000)
   distinct keys, each looked up once ("warm": index upper levels cached, leaves and
   heap pages as the cache has them), and the same keys again ("hot": every page
   touched before). Shared-buffer hits and reads (reads come from the OS cache or the
   disk) per lookup from ``pg_stat_database``, with ``track_io_timing`` on.
4. The real API (``mdm.app:create_served_app`` under uvicorn as ``bench_api.py`` starts it;
   auth, rate limits and the audit trail on): ``GET /v1/entities/{id}`` and
   ``GET /v1/xrefs/{system}/{key}`` at 1 and at ``--connections`` (32) connections
   with wrk when installed, else bench_api's Python generator: req/s, p50/p95/p99 ms.
5. ``EXPLAIN (ANALYZE, BUFFERS)`` of one never-read key of each kind.

Then a table of every latency figure per size with the ratio largest/smallest size.

    .venv/bin/python scripts/bench_lookup_scale.py --entities 20000 10000 --duration 3
    .venv/bin/python scripts/bench_lookup_scale.py --entities 1000000 10000000 \\
        --results lookup_scale.json

Prints the machine, per size the seeding time and disk used, the sizes and depths,
the figures above, and the comparison table; ``--results FILE`` writes them as JSON.
Databases are dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import psycopg
from _common import PG_ADMIN, machine, scratch_postgres
from bench_api import (
    SYSTEMS,
    _request,
    create_key,
    load,
    load_wrk,
    seed,
    start_server,
    stop,
)
from sqlalchemy import create_engine, text

from mdm.domain.canonical_id import new_canonical_id

Sample = dict[str, float]


def label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


@contextmanager
def database(prefix: str, keep: bool) -> Iterator[str]:
    """A scratch database (dropped afterwards), or with ``keep`` one that stays."""
    if not keep:
        with scratch_postgres(prefix) as url:
            yield url
        return
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    print(f"  keeping database {name} (--keep): drop it yourself")
    yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name


# ------------------------------------------------------------------ keys


def canonical_id(i: int) -> str:
    """The canonical ID ``bench_api.seed`` gave the i-th entity (0-based)."""
    return new_canonical_id("citizen", f"bench/{i}".encode())


def xref(i: int) -> tuple[str, str]:
    """The (source system, source key) of the i-th seeded source record."""
    return SYSTEMS[i % len(SYSTEMS)], f"K{i + 1:09d}"


# ------------------------------------------------------------------ SQL level


def statements() -> tuple[str, str]:
    """The API's single-lookup statements, compiled for psycopg as the API runs them."""
    from sqlalchemy.dialects import postgresql

    from mdm.store.repositories import lookup

    dialect = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
    return (
        str(lookup._ONE.compile(dialect=dialect)),
        str(lookup._ONE_XREF.compile(dialect=dialect)),
    )


def summarize(lat_us: list[float]) -> Sample:
    xs = sorted(lat_us)

    def pct(q: float) -> float:
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    return {
        "n": len(xs),
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "mean": sum(xs) / len(xs) if xs else float("nan"),
    }


def io_counters(conn: psycopg.Connection[Any]) -> tuple[int, int, float]:
    """(shared-buffer hits, reads, read ms) of this database, own pending stats
    flushed first (the flush runs when the first statement's transaction ends)."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    row = conn.execute(
        "SELECT blks_hit, blks_read, blk_read_time FROM pg_stat_database "
        "WHERE datname = current_database()"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), float(row[2])


def timed(conn: psycopg.Connection[Any], sql: str, params: list[dict[str, str]]) -> Sample:
    """Each statement executed and its row fetched; latencies in µs, with the
    buffer traffic per lookup."""
    before = io_counters(conn)
    lat: list[float] = []
    for p in params:
        t = time.perf_counter_ns()
        row = conn.execute(sql, p, prepare=True).fetchone()
        lat.append((time.perf_counter_ns() - t) / 1000)
        if row is None:
            raise SystemExit(f"lookup found nothing for {p}: seeding and keys disagree")
    after = io_counters(conn)
    out = summarize(lat)
    out["hits_per_lookup"] = (after[0] - before[0]) / len(params)
    out["reads_per_lookup"] = (after[1] - before[1]) / len(params)
    out["read_ms_per_lookup"] = (after[2] - before[2]) / len(params)
    return out


def plan_indexes(conn: psycopg.Connection[Any], sql: str, params: dict[str, str]) -> list[str]:
    """The indexes the statement's plan uses (EXPLAIN without ANALYZE reads no data)."""
    row = conn.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
    assert row is not None
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if "Index Name" in node and node["Index Name"] not in found:
            found.append(node["Index Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(row[0][0]["Plan"])
    return found


def explain(conn: psycopg.Connection[Any], sql: str, params: dict[str, str]) -> list[str]:
    rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).fetchall()
    return [str(r[0]) for r in rows]


def sizes(conn: psycopg.Connection[Any], indexes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"tables": {}, "indexes": {}}
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    out["database_bytes"] = int(row[0])
    for table in (
        "entities",
        "source_records",
        "links",
        "source_systems",
        "entity_versions",
        "match_features",
        "blocking_keys",
    ):
        row = conn.execute(
            "SELECT pg_total_relation_size(%s::regclass), pg_relation_size(%s::regclass)",
            (table, table),
        ).fetchone()
        assert row is not None
        out["tables"][table] = {"total_bytes": int(row[0]), "heap_bytes": int(row[1])}
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        depth_note = ""
    except psycopg.Error as exc:
        depth_note = f"pageinspect unavailable ({exc.sqlstate}): B-tree depth skipped"
    out["depth_note"] = depth_note
    for name in indexes:
        row = conn.execute(
            "SELECT pg_relation_size(%s::regclass), (SELECT relname FROM pg_class "
            "WHERE oid = (SELECT indrelid FROM pg_index WHERE indexrelid = %s::regclass))",
            (name, name),
        ).fetchone()
        assert row is not None
        entry: dict[str, Any] = {"bytes": int(row[0]), "table": row[1]}
        if not depth_note:
            meta = conn.execute("SELECT level, fastlevel FROM bt_metap(%s)", (name,)).fetchone()
            assert meta is not None
            entry["levels"] = int(meta[0]) + 1  # root level + 1: leaves included
        out["indexes"][name] = entry
    return out


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB" if n < 10 * 2**30 else f"{n / 2**30:,.1f} GiB"


# ------------------------------------------------------------------ one size


def run_size(args: argparse.Namespace, n: int, run_load: Any, loadgen: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    from mdm.store import migrate

    res: dict[str, Any] = {"entities": n, "matcher_tables": args.matcher_tables}
    print(f"\n== {n:,} citizen entities ({label(n)}); load average {os.getloadavg()[0]:.2f}")
    with database("mdm_bench_lookup", args.keep) as url:
        migrate.upgrade(url)
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        t = time.perf_counter()
        seed(dsn, n, matcher_tables=args.matcher_tables)
        res["seed_seconds"] = time.perf_counter() - t
        print(
            f"seeded in {res['seed_seconds']:,.0f} s ({n / res['seed_seconds']:,.0f} entities/s, "
            "COPY, VACUUM ANALYZE included); matcher tables "
            + ("seeded" if args.matcher_tables else "NOT seeded (match_features, blocking_keys)")
        )

        rng = random.Random(n)
        # distinct keys for each kind and phase; a small database gets fewer of them
        per_kind = min(args.first + args.lookups, (n - 4) // 2)
        first = min(args.first, per_kind // 2)
        if per_kind < args.first + args.lookups:
            print(f"  only {n:,} entities: {first:,} first + {per_kind - first:,} lookups a kind")
        idx = rng.sample(range(n), 2 * per_kind + 4)
        cid_idx, xref_idx, spare = idx[:per_kind], idx[per_kind : 2 * per_kind], idx[-4:]
        entity_sql, xref_sql = statements()

        def cid_params(ii: list[int]) -> list[dict[str, str]]:
            return [{"cid": canonical_id(i)} for i in ii]

        def xref_params(ii: list[int]) -> list[dict[str, str]]:
            return [{"s": s, "k": k} for s, k in (xref(i) for i in ii)]

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET track_io_timing = on")
            indexes = plan_indexes(conn, entity_sql, cid_params(spare[:1])[0])
            indexes += [
                x
                for x in plan_indexes(conn, xref_sql, xref_params(spare[:1])[0])
                if x not in indexes
            ]
            res["sizes"] = sz = sizes(conn, indexes)
            print(f"database {mib(sz['database_bytes'])} on disk; tables with their indexes:")
            print(
                "  "
                + "; ".join(
                    f"{t} {mib(v['total_bytes'])} (heap {mib(v['heap_bytes'])})"
                    for t, v in sz["tables"].items()
                    if v["total_bytes"] > 64 * 1024
                )
            )
            print("lookup indexes (from the plans):")
            for name, v in sz["indexes"].items():
                depth = f", B-tree levels {v['levels']}" if "levels" in v else ""
                print(f"  {name:<42} on {v['table']:<15} {mib(v['bytes']):>10}{depth}")
            if sz["depth_note"]:
                print(f"  {sz['depth_note']}")

            sql: dict[str, Sample] = {}
            # prepare both statements on keys outside the measured sets
            conn.execute(entity_sql, cid_params(spare[1:2])[0], prepare=True).fetchone()
            conn.execute(xref_sql, xref_params(spare[1:2])[0], prepare=True).fetchone()
            first_c, warm_c = cid_params(cid_idx[:first]), cid_params(cid_idx[first:])
            first_x, warm_x = xref_params(xref_idx[:first]), xref_params(xref_idx[first:])
            sql["id first"] = timed(conn, entity_sql, first_c)
            sql["xref first"] = timed(conn, xref_sql, first_x)
            sql["id warm"] = timed(conn, entity_sql, warm_c)
            sql["xref warm"] = timed(conn, xref_sql, warm_x)
            sql["id hot"] = timed(conn, entity_sql, warm_c)
            sql["xref hot"] = timed(conn, xref_sql, warm_x)
            res["sql"] = sql
            print(
                "SQL point lookups, one connection, prepared (µs; shared-buffer hits / reads "
                f"per lookup, read time; load average {os.getloadavg()[0]:.2f} after):"
            )
            for name, s in sql.items():
                print(
                    f"  {name:<11} n={s['n']:>6,.0f}  p50 {s['p50']:7.0f}  p95 {s['p95']:7.0f}  "
                    f"p99 {s['p99']:7.0f}  mean {s['mean']:7.0f}   hits {s['hits_per_lookup']:5.2f}"
                    f"  reads {s['reads_per_lookup']:5.2f}  read {s['read_ms_per_lookup']:.3f} ms"
                )

            res["explain"] = {
                "id": explain(conn, entity_sql, cid_params(spare[2:3])[0]),
                "xref": explain(conn, xref_sql, xref_params(spare[3:4])[0]),
            }
            for kind, plan in res["explain"].items():
                print(f"EXPLAIN (ANALYZE, BUFFERS) one never-read key, by {kind}:")
                for ln in plan:
                    print(f"  | {ln}")

        key = create_key(url)
        auth = {"Authorization": f"Bearer {key}", "X-Purpose": "benchmark"}
        env = {
            "MDM_DATABASE_URL": url,
            "MDM_DB_POOL_SIZE": "32",
            "MDM_DB_MAX_OVERFLOW": "8",
        }
        api_res: dict[str, dict[str, Any]] = {}
        server, port = start_server("mdm.app:create_served_app", args.workers, env, factory=True)
        try:
            api_rng = random.Random(n + 1)
            for kind in ("entities", "xrefs"):
                for conns in (1, args.connections):
                    ii = api_rng.sample(range(n), min(n, args.api_keys))
                    if kind == "entities":
                        reqs = [
                            _request("GET", f"/v1/entities/{canonical_id(i)}", auth) for i in ii
                        ]
                    else:
                        reqs = [
                            _request("GET", f"/v1/xrefs/{s}/{k}", auth)
                            for s, k in (xref(i) for i in ii)
                        ]
                    r = run_load(
                        port,
                        reqs,
                        connections=conns,
                        processes=args.load_processes,
                        warmup=args.warmup,
                        duration=args.duration,
                    )
                    api_res[f"{kind}@{conns}"] = r
        finally:
            stop(server)
        res["api"] = api_res
        print(
            f"API ({loadgen}, {args.workers} uvicorn workers, auth + audit on, "
            f"{args.duration:.0f} s after {args.warmup:.0f} s warm-up, random keys; "
            f"load average {os.getloadavg()[0]:.2f} after):"
        )
        for name, r in api_res.items():
            path = "GET /v1/entities/{id}" if name.startswith("entities") else "GET /v1/xrefs/..."
            conns = name.split("@")[1]
            print(
                f"  {path:<22} {conns:>2} conn  {r['rps']:7,.0f} req/s  p50 {r['p50']:6.2f} ms  "
                f"p95 {r['p95']:6.2f} ms  p99 {r['p99']:6.2f} ms  status "
                f"{dict(sorted((str(k), v) for k, v in r['status'].items()))}"
            )
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            assert row is not None
            res["database_bytes_after"] = int(row[0])
    return res


# ------------------------------------------------------------------ comparison


def figures(res: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, s in res["sql"].items():
        for q in ("p50", "p95", "p99"):
            out[f"SQL {name} {q} µs"] = s[q]
        out[f"SQL {name} buffer reads/lookup"] = s["reads_per_lookup"]
    for name, r in res["api"].items():
        path = "GET entities" if name.startswith("entities") else "GET xrefs"
        conns = name.split("@")[1]
        out[f"API {path} {conns} conn req/s"] = r["rps"]
        for q in ("p50", "p95", "p99"):
            out[f"API {path} {conns} conn {q} ms"] = r[q]
    for name, v in res["sizes"]["indexes"].items():
        out[f"index {name} MiB"] = v["bytes"] / 2**20
        if "levels" in v:
            out[f"index {name} levels"] = v["levels"]
    out["database GiB"] = res["sizes"]["database_bytes"] / 2**30
    out["seeding s"] = res["seed_seconds"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--entities", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--lookups", type=int, default=20_000, help="warm SQL lookups per kind")
    parser.add_argument("--first", type=int, default=1_000, help="cold-ish first lookups")
    parser.add_argument("--connections", type=int, default=32, help="API load besides 1")
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="uvicorn workers")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per test")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--api-keys", type=int, default=30_000, help="random keys per API test")
    parser.add_argument(
        "--matcher-tables",
        action="store_true",
        help="also seed match_features and blocking_keys (lookups do not read them)",
    )
    parser.add_argument(
        "--loadgen",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="wrk when installed, else bench_api's Python generator",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--results", type=Path, help="write the figures as JSON")
    args = parser.parse_args()
    use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and bool(shutil.which("wrk")))
    run_load = load_wrk if use_wrk else load
    loadgen = "wrk" if use_wrk else "Python generator"

    started = time.perf_counter()
    print(f"machine: {machine()}")
    print(
        f"sizes: {', '.join(f'{n:,}' for n in args.entities)} citizen entities, one source "
        "record and one active link each; matcher tables "
        + ("seeded" if args.matcher_tables else "not seeded (lookups do not read them)")
    )
    results = [run_size(args, n, run_load, loadgen) for n in args.entities]

    lo, hi = results[0], results[-1]
    ratio_label = f"{label(hi['entities'])}/{label(lo['entities'])}"
    print(f"\n== comparison ({len(results)} sizes, same machine, one run)")
    figs = [figures(r) for r in results]
    header = "".join(f"{label(r['entities']):>12}" for r in results)
    print(f"{'figure':<62}{header}{ratio_label:>10}")
    ratios: dict[str, float] = {}
    for name in figs[0]:
        vals = [f.get(name, float("nan")) for f in figs]
        ratios[name] = vals[-1] / vals[0] if vals[0] else float("nan")
        cells = "".join(f"{v:>12,.1f}" for v in vals)
        print(f"{name:<62}{cells}{ratios[name]:>9.2f}x")
    print(f"total wall time {time.perf_counter() - started:,.0f} s")
    if args.results:
        args.results.write_text(
            json.dumps(
                {"machine": machine(), "sizes": results, "ratios": ratios},
                indent=2,
                default=str,
            )
        )
        print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
