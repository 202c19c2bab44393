"""Benchmark: the agency API on Postgres, against a minimal FastAPI + psycopg lookup.

1. Seeds a scratch Postgres database with N citizen entities (default 1,000,000) by
   COPY: source systems, source records, entities, entity versions, active links,
   and the matcher's feature rows and blocking keys (so search has candidates).
2. Trains a citizen model on a small `mdm synth` registry (scratch SQLite) unless
   ``--rules-dir`` names a directory with a trained ``models/citizen.json``.
3. Serves ``mdm.app:create_served_app`` under uvicorn (auth, rate limits and the
   audit trail on: every request commits its audit row before it is answered) and, on
   the same table, ``scripts/_minimal_lookup_app.py`` (one SELECT, no auth, no audit),
   both at once.
4. Load: wrk when installed (``apt-get install wrk``), else a keep-alive HTTP/1.1
   generator in separate processes (asyncio, raw sockets), ``--connections`` (default
   32) in total. The minimal lookup, ``GET /v1/entities/{id}`` and
   ``GET /v1/xrefs/{system}/{key}`` run in ``--rounds`` interleaved rounds (default 3):
   a shared virtual machine's speed drifts by tens of percent within minutes, and interleaving
   makes a slow spell hit both sides. Each round prints throughput, latencies and the
   CPU a request costs (server processes, Postgres); the summary takes the medians,
   and the ratio is that of the median throughputs. Then ``POST /v1/entities:batchGet``
   (1,000 IDs a call, in ``--rounds`` rounds after vacuuming the audit trail the
   lookups wrote, see :func:`settle`) and ``POST /v1/citizen/search`` (name without
   diacritics + birth year + province) at 1, 2 and ``--connections`` connections.

    .venv/bin/python scripts/bench_api.py --entities 20000 --duration 5
    .venv/bin/python scripts/bench_api.py                     # 1,000,000 entities

Targets (issue 7): lookup and xref ≥ 0.8x the minimal lookup, p99 ≤ 50 ms;
batchGet ≥ 50,000 IDs/s; search p95 ≤ 30 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import orjson
import psycopg
from _common import STREETS, bench_postgres, machine, scratch_postgres
from _common import person as common_person
from _pgcluster import free_port

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = ["hn-legacy-2019", "hcm-legacy-2020", "national-portal", "moh-insurance"]
T0 = datetime(2025, 7, 1, tzinfo=UTC)
CHUNK = 50_000


# ------------------------------------------------------------------ seeding


def person(rng: random.Random, i: int) -> dict[str, Any]:
    """A citizen in one of the 34 provinces of 2025."""
    return common_person(rng, i, provinces=34, streets=STREETS[:5])


def seed(dsn: str, n: int, seed_value: int = 7, *, matcher_tables: bool = True) -> dict[str, Any]:
    """COPY n citizens (one record each) into a migrated database; returns samples.

    ``matcher_tables=False`` leaves ``match_features`` and ``blocking_keys`` empty
    (lookups do not read them; they hold most of the bytes and the seeding time)."""
    from mdm.domain.canonical_id import new_canonical_id
    from mdm.matching import blocking_keys, build_features, load_rules
    from mdm.store.models.match import blocking_key_hashes

    rules = load_rules("citizen", ROOT / "matching_rules")
    rng = random.Random(seed_value)
    samples: dict[str, list[Any]] = {"ids": [], "xrefs": [], "people": []}
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            for sid, name in enumerate(SYSTEMS, start=1):
                cur.execute(
                    "INSERT INTO source_systems (id, name, trust, created_at) "
                    "VALUES (%s, %s, '{}'::jsonb, %s)",
                    (sid, name, T0),
                )
        start = 0
        while start < n:
            stop = min(n, start + CHUNK)
            recs, ents, vers, lnks, feats, keys = [], [], [], [], [], []
            for i in range(start, stop):
                rid = i + 1
                sid = 1 + i % len(SYSTEMS)
                skey = f"K{rid:09d}"
                std = person(rng, i)
                cid = new_canonical_id("citizen", f"bench/{i}".encode())
                ref = f"{SYSTEMS[sid - 1]}/{skey}"
                prov = {
                    a: {"rule": "unanimous", "source_records": [ref], "conflict": False}
                    for a in std
                }
                attrs_json = orjson.dumps(std).decode()
                prov_json = orjson.dumps(prov).decode()
                at = T0 + timedelta(seconds=i)
                recs.append((rid, sid, skey, "citizen", 1, "active", at, at))
                ents.append((rid, cid, "citizen", "active", 1, attrs_json, prov_json, at, at))
                vers.append((rid, rid, 1, "active", attrs_json, prov_json, "created", "bench", at))
                lnks.append((rid, rid, rid, "new", None, "bench", at, True))
                if matcher_tables:
                    f = build_features("citizen", str(rid), SYSTEMS[sid - 1], std)
                    ks = blocking_key_hashes("citizen", blocking_keys(f, rules))
                    feats.append((rid, "citizen", 1, f"h{rid}", orjson.dumps(f).decode()))
                    keys.extend(("citizen", k, rid) for k in ks)
                if rng.random() < 20_000 / max(n, 1):
                    samples["ids"].append(cid)
                    samples["xrefs"].append((SYSTEMS[sid - 1], skey))
                    samples["people"].append(std)
            with conn.cursor() as cur:
                for sql, rows in (
                    (
                        "COPY source_records (id, source_system_id, source_key, entity_type, "
                        "current_version, status, first_seen_at, updated_at) FROM STDIN",
                        recs,
                    ),
                    (
                        "COPY entities (id, canonical_id, entity_type, status, version, "
                        "attributes, provenance, created_at, updated_at) FROM STDIN",
                        ents,
                    ),
                    (
                        "COPY entity_versions (id, entity_id, version, status, attributes, "
                        "provenance, change, changed_by, valid_from) FROM STDIN",
                        vers,
                    ),
                    (
                        "COPY links (id, source_record_id, entity_id, method, score, "
                        "created_by, created_at, active) FROM STDIN",
                        lnks,
                    ),
                    (
                        "COPY match_features (source_record_id, entity_type, record_version, "
                        "content_hash, features) FROM STDIN",
                        feats,
                    ),
                    (
                        "COPY blocking_keys (entity_type, key_hash, source_record_id) FROM STDIN",
                        keys,
                    ),
                ):
                    with cur.copy(sql) as copy:
                        for row in rows:
                            copy.write_row(row)
            conn.commit()
            start = stop
            print(f"  seeded {stop:,} / {n:,}", file=sys.stderr)
        with conn.cursor() as cur:
            for table in ("source_systems", "source_records", "entities", "entity_versions"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
                )
            cur.execute("SELECT setval(pg_get_serial_sequence('links', 'id'), max(id)) FROM links")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        # The load wrote gigabytes: write the dirty buffers out now, or the server's
        # next checkpoint does it during the first measured minutes, and the tail
        # latencies of both servers measure that flush instead of the lookups.
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            print("  (no CHECKPOINT: not a superuser; the first round may be slower)")
        prewarm(conn)
    return samples


def settle(dsn: str) -> None:
    """Before the batch lookups: vacuum the audit trail and checkpoint. The rounds of
    single lookups appended hundreds of thousands of audit rows; without this,
    autovacuum of ``audit_log`` and the checkpoint of that WAL land in the batch
    measurement (seen: one run at 39,700 IDs/s, p95 411 ms, against 50,000-52,000
    and p95 232-236 ms in the runs around it), which then measures the previous
    phase's upkeep rather than the batches' own cost, their own audit rows included."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE audit_log")
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            print("  (no CHECKPOINT: not a superuser)")


#: What the lookups read: the tables and their indexes.
_HOT = ("entities", "redirects", "source_records", "source_systems", "links")


def prewarm(conn: psycopg.Connection[Any]) -> None:
    """Read what the lookups read into memory before measuring (``pg_prewarm``): a
    serving registry has its working set cached, and a load that only just wrote
    the tables left them on disk, so the first rounds would measure disk reads (tails
    of seconds on a shared virtual machine's disk). Both servers read the same tables.

    Into shared buffers as far as they hold three quarters of it, indexes first (every
    lookup walks them), then the tables; the rest into the OS page cache only (which
    the host of a shared virtual machine may empty within minutes: run with
    ``--shared-buffers``)."""
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    except psycopg.Error as exc:
        print(f"  (no pg_prewarm: {exc}; the first rounds may read from disk)")
        return
    row = conn.execute(
        "SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'"
    ).fetchone()
    room = int(row[0]) * 3 // 4 if row else 0
    indexes: list[tuple[str, int]] = []
    tables: list[tuple[str, int]] = []
    for table in _HOT:
        indexes += conn.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
            "WHERE indrelid = %s::regclass",
            (table,),
        ).fetchall()
        size = conn.execute("SELECT pg_relation_size(%s::regclass)", (table,)).fetchone()
        tables.append((table, int(size[0]) if size else 0))
    buffered = cached = 0
    for rel, size in indexes + tables:  # every index ahead of every table
        mode = "buffer" if buffered + size <= room else "read"
        conn.execute("SELECT pg_prewarm(%s::regclass, %s)", (rel, mode))
        if mode == "buffer":
            buffered += size
        else:
            cached += size
    print(
        f"  prewarmed {', '.join(_HOT)} and their indexes: {buffered / 2**20:,.0f} MiB into "
        f"shared buffers, {cached / 2**20:,.0f} MiB into the OS page cache",
        file=sys.stderr,
    )


def train_small_model(rules_dir: Path) -> None:
    """A citizen model trained on a small `mdm synth` registry (scratch SQLite)."""
    import yaml

    from mdm.ingest.mapping import load_mapping
    from mdm.services.ingest import ingest_file
    from mdm.services.matching.batch import run_batch
    from mdm.services.matching.training import train_from_store
    from mdm.store import migrate
    from mdm.store.db import make_engine
    from mdm.synth import SynthParams
    from mdm.synth import generate as generate_synth

    for entity in ("citizen", "organization", "dossier"):
        doc = yaml.safe_load((ROOT / "matching_rules" / f"{entity}.yaml").read_text("utf-8"))
        doc["training"] = {**doc.get("training", {}), "u_max_pairs": 5e5, "em_max_pairs": 5e5}
        (rules_dir / f"{entity}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    work = Path(tempfile.mkdtemp(prefix="bench-api-train-"))
    try:
        generate_synth(
            work / "synth",
            SynthParams(provinces=2, citizens=3000, organizations=10, dossiers=10, seed=3),
        )
        url = f"sqlite:///{work / 'train.db'}"
        migrate.upgrade(url)
        engine = make_engine(url)
        manifest = json.loads((work / "synth" / "manifest.json").read_text("utf-8"))
        for entry in manifest["files"]:
            if entry["entity_type"] == "citizen":
                ingest_file(
                    engine,
                    load_mapping(work / "synth" / entry["mapping"]),
                    work / "synth" / entry["path"],
                    source_name=entry["source_system"],
                    workers=1,
                )
        train_from_store(engine, "citizen", rules_dir=rules_dir, threads=2)
        run_batch(engine, "citizen", rules_dir=rules_dir, threads=2)  # proves the model runs
        engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def create_key(url: str) -> str:
    from sqlalchemy.orm import Session

    from mdm.services.clients import create_client
    from mdm.store.db import make_engine

    engine = make_engine(url)
    with Session(engine) as session:
        key = create_client(
            session,
            "bench",
            ["*:read", "*:search", "*:pii"],
            rate_limit_per_minute=100_000_000,
        ).key
        session.commit()
    engine.dispose()
    return key


# ------------------------------------------------------------------ servers


def start_server(
    app: str, workers: int, env: dict[str, str], *, factory: bool = False
) -> tuple[subprocess.Popen[bytes], int]:
    """Both apps through ``mdm serve``'s launcher (TCP_NODELAY also with workers)."""
    port = free_port()
    code = (
        "from mdm.cli.serve import run_uvicorn; "
        f"run_uvicorn({app!r}, factory={factory}, host='127.0.0.1', port={port}, "
        f"workers={workers}, log_level='warning', access_log=False)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    import httpx

    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1).status_code < 500:
                return proc, port
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"server {app} did not start:\n{err[-3000:]}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


# ------------------------------------------------------------------ load


def _request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: bench"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _connection(
    port: int,
    requests: list[bytes],
    offset: int,
    warm_until: float,
    stop_at: float,
    out: dict[str, Any],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    lat = out["latencies"]
    try:
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            done = time.perf_counter()
            if now >= warm_until:
                lat.append((done - now) * 1000)
                out["status"][status] = out["status"].get(status, 0) + 1
    finally:
        writer.close()


def _load_worker(
    port: int, requests: list[bytes], connections: int, warmup: float, duration: float, seed: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"latencies": [], "status": {}}

    async def main() -> None:
        t0 = time.perf_counter()
        await asyncio.gather(
            *(
                _connection(
                    port,
                    requests,
                    seed * 7919 + c * 104729,
                    t0 + warmup,
                    t0 + warmup + duration,
                    out,
                )
                for c in range(connections)
            )
        )

    asyncio.run(main())
    return out


def load(
    port: int,
    requests: list[bytes],
    *,
    connections: int,
    processes: int,
    warmup: float,
    duration: float,
) -> dict[str, Any]:
    processes = max(1, min(processes, connections))
    per = [
        connections // processes + (1 if p < connections % processes else 0)
        for p in range(processes)
    ]
    with ProcessPoolExecutor(processes) as pool:
        parts = list(
            pool.map(
                _load_worker,
                [port] * processes,
                [requests] * processes,
                per,
                [warmup] * processes,
                [duration] * processes,
                range(processes),
            )
        )
    lat = sorted(x for p in parts for x in p["latencies"])
    status: dict[int, int] = {}
    for p in parts:
        for k, v in p["status"].items():
            status[k] = status.get(k, 0) + v

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")

    return {
        "requests": len(lat),
        "rps": len(lat) / duration,
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "status": status,
    }


_WRK_LUA = r"""
-- Requests are prebuilt raw HTTP/1.1 messages, length-prefixed in a file.
local reqs = {}
local f = assert(io.open(os.getenv("BENCH_WRK_REQUESTS"), "rb"))
local data = f:read("*a")
f:close()
local pos = 1
while pos <= #data do
  local nl = data:find("\n", pos, true)
  local len = tonumber(data:sub(pos, nl - 1))
  reqs[#reqs + 1] = data:sub(nl + 1, nl + len)
  pos = nl + len + 1
end
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 7919)
end
local i = 0
function request()
  i = i + 1
  return reqs[((offset or 0) + i) % #reqs + 1]
end
function done(summary, latency, requests)
  io.write(string.format(
    "WRK {\"requests\": %d, \"duration_us\": %d, \"non2xx\": %d, \"socket_errors\": %d, "
    .. "\"p50\": %.3f, \"p95\": %.3f, \"p99\": %.3f}\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000))
end
"""


def load_wrk(
    port: int,
    requests: list[bytes],
    *,
    connections: int,
    processes: int,
    warmup: float,
    duration: float,
) -> dict[str, Any]:
    """The same load with wrk (C, event loop): it leaves the servers more of the two
    cores than the Python generator. ``processes`` becomes wrk's threads."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        lua = Path(tmp) / "raw.lua"
        lua.write_text(_WRK_LUA)
        data = Path(tmp) / "requests.bin"
        data.write_bytes(b"".join(str(len(r)).encode() + b"\n" + r for r in requests))
        env = {**os.environ, "BENCH_WRK_REQUESTS": str(data)}
        threads = max(1, min(processes, connections))

        def run(seconds: float) -> dict[str, Any]:
            out = subprocess.run(
                [
                    "wrk",
                    "-t",
                    str(threads),
                    "-c",
                    str(connections),
                    "-d",
                    f"{max(1, round(seconds))}s",
                    "--timeout",
                    "10s",
                    "-s",
                    str(lua),
                    f"http://127.0.0.1:{port}",
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                raise SystemExit(f"wrk failed: {out.stderr or out.stdout}")
            found = [ln for ln in out.stdout.splitlines() if ln.startswith("WRK ")]
            if not found:
                raise SystemExit(f"wrk printed no summary:\n{out}")
            return dict(json.loads(found[-1][4:]))

        if warmup > 0:
            run(max(1.0, warmup))
        r = run(duration)
    seconds = r["duration_us"] / 1e6
    ok = r["requests"] - r["non2xx"]
    status = {"2xx": ok, "other": r["non2xx"]}
    if r["socket_errors"]:
        status["socket_errors"] = r["socket_errors"]
    return {
        "requests": r["requests"],
        "rps": r["requests"] / seconds,
        "p50": r["p50"],
        "p95": r["p95"],
        "p99": r["p99"],
        "status": status,
    }


def line(name: str, r: dict[str, Any], extra: str = "") -> str:
    return (
        f"{name:<44} {r['rps']:>9,.0f} req/s  p50 {r['p50']:6.1f} ms  p95 {r['p95']:6.1f} ms  "
        f"p99 {r['p99']:6.1f} ms  status {dict(sorted(r['status'].items()))}{extra}"
    )


class ServerCpu:
    """CPU seconds (user + system) spent during a load by one server's processes and
    by Postgres (all its processes: backends, WAL writer, checkpointer), per request.
    On a machine whose speed varies from minute to minute, the CPU a request costs
    compares two servers better than their throughput alone."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.totals: dict[str, float] = {}

    def _snap(self) -> dict[int, tuple[str, float]]:
        import psutil

        try:
            tree = {p.pid for p in psutil.Process(self.pid).children(recursive=True)}
        except psutil.Error:
            tree = set()
        tree.add(self.pid)
        out: dict[int, tuple[str, float]] = {}
        for proc in psutil.process_iter():
            try:
                group = (
                    "server"
                    if proc.pid in tree
                    else "postgres"
                    if proc.name() == "postgres"
                    else None
                )
                if group is None:
                    continue
                t = proc.cpu_times()
                out[proc.pid] = (group, t.user + t.system)
            except psutil.Error:
                continue
        return out

    def __enter__(self) -> ServerCpu:
        self._start = self._snap()
        return self

    def __exit__(self, *exc: object) -> None:
        for pid, (group, cpu) in self._snap().items():
            self.totals[group] = (
                self.totals.get(group, 0.0) + cpu - self._start.get(pid, (group, 0.0))[1]
            )

    def per_request(self, requests: int) -> dict[str, float]:
        return {g: round(v / max(1, requests) * 1e6) for g, v in sorted(self.totals.items())}

    def describe(self, result: dict[str, Any]) -> str:
        cpu = result["cpu_us_per_request"]
        return "  CPU µs/request: " + ", ".join(f"{g} {v:,.0f}" for g, v in cpu.items())


def _median(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds (throughput, latencies, CPU)."""
    import statistics

    out: dict[str, Any] = {"rounds": len(results)}
    for key in ("rps", "p50", "p95", "p99"):
        out[key] = statistics.median(r[key] for r in results)
    out["requests"] = sum(r["requests"] for r in results)
    status: dict[Any, int] = {}
    for r in results:
        for k, v in r["status"].items():
            status[k] = status.get(k, 0) + v
    out["status"] = status
    groups = {g for r in results for g in r["cpu_us_per_request"]}
    out["cpu_us_per_request"] = {
        g: statistics.median(r["cpu_us_per_request"].get(g, 0) for r in results)
        for g in sorted(groups)
    }
    return out


# ------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="uvicorn workers")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per test")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of the three lookups"
    )
    parser.add_argument(
        "--shared-buffers",
        metavar="SIZE",
        help="run on a Postgres cluster of the bench's own with this shared_buffers "
        "(e.g. 4GB: the working set of 1M entities fits), not the machine's server",
    )
    parser.add_argument("--rules-dir", type=Path, help="with a trained models/citizen.json")
    parser.add_argument(
        "--loadgen",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="wrk when installed (apt-get install wrk), else the Python generator",
    )
    args = parser.parse_args()
    use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk"))
    run_load = load_wrk if use_wrk else load

    from sqlalchemy.engine import make_url

    from mdm.store import migrate

    print(f"machine: {machine()}")
    rules_tmp = None
    if args.rules_dir is None:
        rules_tmp = Path(tempfile.mkdtemp(prefix="bench-api-rules-"))
        t = time.perf_counter()
        train_small_model(rules_tmp)
        print(
            f"trained a citizen model on a small synth registry in {time.perf_counter() - t:.0f} s"
        )
    rules_dir = args.rules_dir or rules_tmp
    assert rules_dir is not None
    try:
        with contextlib.ExitStack() as stack:
            admin, label = stack.enter_context(bench_postgres(args.shared_buffers))
            print(f"postgres: {label}")
            url = stack.enter_context(scratch_postgres("mdm_bench_api", admin))
            migrate.upgrade(url)
            dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
            t = time.perf_counter()
            samples = seed(dsn, args.entities)
            print(f"seeded {args.entities:,} entities in {time.perf_counter() - t:.0f} s")
            with psycopg.connect(dsn) as conn:
                size = conn.execute(
                    "SELECT pg_size_pretty(pg_database_size(current_database()))"
                ).fetchone()
                ent = conn.execute(
                    "SELECT pg_size_pretty(pg_total_relation_size('entities'))"
                ).fetchone()
                keys = conn.execute("SELECT count(*) FROM blocking_keys").fetchone()
            assert size and ent and keys
            print(
                f"data: {args.entities:,} entities (one source record each), {keys[0]:,} "
                f"blocking keys; database {size[0]}, entities table with indexes {ent[0]}"
            )
            key = create_key(url)
            auth = {"Authorization": f"Bearer {key}", "X-Purpose": "benchmark"}
            env = {
                "MDM_DATABASE_URL": url,
                "MDM_MATCHING_RULES_DIR": str(rules_dir),
                # a pool that covers the concurrent requests: past pool_size, every
                # burst opens and closes overflow connections (measured: -30% req/s)
                "MDM_DB_POOL_SIZE": "32",
                "MDM_DB_MAX_OVERFLOW": "8",
                "BENCH_PG_DSN": dsn,
                "PYTHONPATH": str(Path(__file__).resolve().parent),
            }
            opts = {
                "connections": args.connections,
                "processes": args.load_processes,
                "warmup": args.warmup,
                "duration": args.duration,
            }
            print(
                f"load: {'wrk' if use_wrk else 'Python generator'}, {args.connections} "
                f"keep-alive connections from {args.load_processes} "
                f"threads/processes; {args.workers} uvicorn workers per app; {args.duration:.0f} s "
                f"measured after {args.warmup:.0f} s warm-up"
            )
            ids = samples["ids"]
            results: dict[str, dict[str, Any]] = {}

            # Both servers run side by side (the idle one costs nothing); the lookups
            # are measured in interleaved rounds, so that a slow spell of this
            # machine hits both sides: the ratio is that of the medians.
            minimal, mport = start_server("_minimal_lookup_app:app", args.workers, env)
            api, port = start_server("mdm.app:create_served_app", args.workers, env, factory=True)
            try:
                loads = {
                    "minimal": (
                        minimal,
                        mport,
                        [_request("GET", f"/entities/{c}", {}) for c in ids],
                    ),
                    "lookup": (
                        api,
                        port,
                        [_request("GET", f"/v1/entities/{c}", auth) for c in ids],
                    ),
                    "xref": (
                        api,
                        port,
                        [_request("GET", f"/v1/xrefs/{s}/{k}", auth) for s, k in samples["xrefs"]],
                    ),
                }
                names = {
                    "minimal": "minimal FastAPI+psycopg lookup",
                    "lookup": "GET /v1/entities/{id}",
                    "xref": "GET /v1/xrefs/{system}/{key}",
                }
                rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in loads}
                for r in range(args.rounds):
                    for kind, (proc, kport, reqs) in loads.items():
                        with ServerCpu(proc.pid) as cpu:
                            res = run_load(kport, reqs, **opts)
                        res["cpu_us_per_request"] = cpu.per_request(res["requests"])
                        rounds[kind].append(res)
                        print(line(f"  round {r + 1}: {names[kind]}", res, cpu.describe(res)))
                for kind in loads:
                    results[kind] = summary = _median(rounds[kind])
                    extra = ""
                    if kind != "minimal":
                        ratio = summary["rps"] / results["minimal"]["rps"]
                        summary["ratio"] = ratio
                        extra = f"  ratio {ratio:.2f}x"
                    print(line(f"{names[kind]} (median)", summary, extra))
                per_round = [
                    rounds["lookup"][i]["rps"] / rounds["minimal"][i]["rps"]
                    for i in range(args.rounds)
                ]
                print("lookup/minimal ratio per round: " + ", ".join(f"{x:.2f}" for x in per_round))
                stop(minimal)  # idle from here on

                rng = random.Random(1)
                bodies = []
                for _ in range(50):
                    chosen = [ids[rng.randrange(len(ids))] for _ in range(1000)]
                    body = orjson.dumps({"items": [{"id": c} for c in chosen]})
                    bodies.append(_request("POST", "/v1/entities:batchGet", auth, body))
                batch_opts = {**opts, "connections": min(8, args.connections)}
                settle(dsn)
                batch_rounds = []
                for r in range(args.rounds):
                    with ServerCpu(api.pid) as cpu:
                        res = run_load(port, bodies, **batch_opts)
                    res["cpu_us_per_request"] = cpu.per_request(res["requests"])
                    batch_rounds.append(res)
                    print(
                        line(f"  round {r + 1}: POST /v1/entities:batchGet x1000", res)
                        + f"  => {res['rps'] * 1000:,.0f} IDs/s"
                        + cpu.describe(res)
                    )
                results["batch"] = _median(batch_rounds)
                print(
                    line("POST /v1/entities:batchGet x1000 (median)", results["batch"])
                    + f"  => {results['batch']['rps'] * 1000:,.0f} IDs/s"
                )

                from mdm.standardize import fold

                searches = []
                for p in samples["people"][:2000]:
                    q = {
                        "attributes": {
                            "full_name": fold(p["full_name"]),
                            "birth_year": int(p["date_of_birth"][:4]),
                            "province_code": p["permanent_address"]["province_code"],
                        },
                        "limit": 10,
                    }
                    searches.append(_request("POST", "/v1/citizen/search", auth, orjson.dumps(q)))
                for conns in dict.fromkeys((1, 2, args.connections)):
                    r = run_load(port, searches, **{**opts, "connections": conns})
                    results[f"search@{conns}"] = r
                    print(line(f"POST /v1/citizen/search ({conns} conn)", r))
            finally:
                stop(api)
                stop(minimal)
            print(
                "targets: lookup/xref >= 0.8x minimal and p99 <= 50 ms; batchGet >= 50,000 IDs/s;"
            )
            print("         search p95 <= 30 ms")
            print(
                json.dumps(
                    {k: {m: v for m, v in r.items()} for k, r in results.items()}, default=str
                )
            )
    finally:
        if rules_tmp is not None:
            shutil.rmtree(rules_tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
