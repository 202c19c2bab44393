"""Crash-resume of every long job: kill -9 each one at random moments, run the same
command again until it completes, and compare the final state with an uninterrupted
run from the same starting state.

Jobs (``--jobs``, all by default):

* ``ingest``   ``mdm ingest --manifest`` of a synthetic export (``mdm synth``);
* ``match``    ``mdm match run --entity citizen`` after ingest and training;
* ``resolve``  ``mdm resolve`` after a second ingest changed a third of the citizens;
* ``rebuild``  ``mdm resolve --rebuild`` (read-only: must report the same and exit 0);
* ``relay``    ``mdm relay`` delivering every event to a local webhook receiver;
* ``nats``     ``mdm relay --nats`` publishing every event to a JetStream stream.

For each job two scratch databases are cloned from the same state (Postgres
``CREATE DATABASE ... TEMPLATE``, SQLite's backup API): the reference runs the command
once; the other gets ``--kills-per-job`` SIGKILLs to the command's process group at
seeded random moments, then runs it to the end. Compared: per table, the row count
and an order-independent digest of the columns that must be identical (canonical IDs,
links, golden records, versions, event payloads per entity and sequence, match
features and candidates, delivery state; not timestamps nor the surrogate ids that
rolled-back transactions consume). The relay is also checked against its guarantee
(docs/events.md): every event delivered, in order per entity, and an event arrives
twice only if the relay that sent it first was killed before recording it.

    .venv/bin/python scripts/crash_jobs.py --citizens 8000 --kills-per-job 5
    .venv/bin/python scripts/crash_jobs.py --backend sqlite --jobs ingest,match

Databases are named mdm_crash_* and dropped at the end (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib
import itertools

import _crash
from _common import machine
from _crash import INGEST_TABLES, KillLog, Query, Scratch

JOBS = ("ingest", "match", "resolve", "rebuild", "relay", "nats")
NATS_URL = os.environ.get("MDM_CRASH_NATS_URL", "nats://127.0.0.1:4222")

# ------------------------------------------------------------- what is compared


def _event_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    payload = row[-1]
    if isinstance(payload, str):
        payload = json.loads(payload)
    stable = {k: v for k, v in payload.items() if k not in ("event_id", "occurred_at")}
    return (*row[:-1], stable)


# Source records come from the cloned starting state, so their ids are the same in
# both databases; entities are created by the job, so they are named by canonical ID.
ENTITY_TABLES = {
    "entities": Query(
        "SELECT canonical_id, entity_type, status, version, attributes, provenance FROM entities"
    ),
    "entity_versions": Query(
        "SELECT e.canonical_id, v.version, v.status, v.attributes, v.provenance, v.change, "
        "v.changed_by FROM entity_versions v JOIN entities e ON e.id = v.entity_id"
    ),
    "links": Query(
        "SELECT l.source_record_id, e.canonical_id, l.method, l.score, l.active, l.created_by "
        "FROM links l JOIN entities e ON e.id = l.entity_id"
    ),
    "redirects": Query(
        "SELECT f.canonical_id, t.canonical_id, r.reason, r.created_by FROM redirects r "
        "JOIN entities f ON f.id = r.from_entity_id JOIN entities t ON t.id = r.to_entity_id"
    ),
    "entity_conflicts": Query(
        "SELECT e.canonical_id, c.attribute, c.candidates FROM entity_conflicts c "
        "JOIN entities e ON e.id = c.entity_id"
    ),
    # per entity, in order: (canonical ID, sequence) names the event
    "outbox_events": Query(
        "SELECT canonical_id, entity_type, event_type, sequence, payload FROM outbox_events",
        _event_row,
    ),
}

MATCH_TABLES = {
    **ENTITY_TABLES,
    "match_features": Query(
        "SELECT source_record_id, entity_type, record_version, content_hash, features "
        "FROM match_features"
    ),
    "blocking_keys": Query("SELECT entity_type, key_hash, source_record_id FROM blocking_keys"),
    "term_frequencies": Query("SELECT entity_type, column_name, value, tf FROM term_frequencies"),
    "match_candidates": Query(
        "SELECT entity_type, left_record_id, right_record_id, score, match_weight, weights, "
        "reason, status FROM match_candidates"
    ),
    # a killed run leaves a row marked failed (interrupted): only completed runs compare
    "match_runs (completed)": Query(
        "SELECT entity_type, kind, backend, model_hash, tf_hash FROM match_runs "
        "WHERE status = 'completed'"
    ),
    "match_runs (running)": Query("SELECT id FROM match_runs WHERE status = 'running'"),
}

RELAY_TABLES = {
    "outbox_events (feed)": Query(
        "SELECT event_id, canonical_id, sequence, feed_position FROM outbox_events"
    ),
    # the NATS cursor is named after the stream, which differs between the two runs
    "event_cursors": Query(
        "SELECT name, position FROM event_cursors",
        lambda row: ("nats:<stream>" if row[0].startswith("nats:") else row[0], row[1]),
    ),
    "subscriptions": Query("SELECT id, filters, status, feed_cursor FROM subscriptions"),
    # attempts are not compared: a request that timed out on a loaded machine is retried
    # in one run and not the other (a kill between POST and commit adds no attempt);
    # the notes count the retried deliveries of both runs
    "deliveries": Query(
        "SELECT d.subscription_id, o.event_id, d.feed_position, d.status, d.last_status_code "
        "FROM deliveries d JOIN outbox_events o ON o.position = d.event_position"
    ),
}


# -------------------------------------------------------------------- the session


@dataclass
class Outcome:
    job: str
    kills: int = 0
    runs: int = 0
    result: str = "identical"
    details: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reference_seconds: float = 0.0
    crashed_seconds: float = 0.0


class Session:
    """One crash session: a working directory (synthetic data, rules, logs), the
    scratch databases and the states the jobs start from."""

    def __init__(self, args: argparse.Namespace, dbs: Scratch, workdir: Path) -> None:
        self.args = args
        self.dbs = dbs
        self.workdir = workdir
        self.rng = random.Random(args.seed)
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.rules = workdir / "rules"
        self.rules.mkdir(exist_ok=True)
        repo_rules = Path(__file__).resolve().parents[1] / "matching_rules"
        for f in repo_rules.glob("*.yaml"):
            (self.rules / f.name).write_bytes(f.read_bytes())
        self.synth = workdir / (
            f"synth-p{args.provinces}-c{args.citizens}-s{args.data_seed}"
            + ("" if args.portal else "-noportal")
        )
        self.states: dict[str, str] = {}
        self.outcomes: list[Outcome] = []

    def say(self, message: str) -> None:
        if not self.args.quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def env(self, url: str) -> dict[str, str]:
        return {
            **os.environ,
            "MDM_DATABASE_URL": url,
            "MDM_MATCHING_RULES_DIR": str(self.rules),
            "MDM_DATA_DIR": str(self.workdir / "var"),
            "MDM_LOG_LEVEL": "WARNING",
            # a killed relay's leases run out quickly (lease > timeout + 1 s)
            "MDM_RELAY_LEASE_SECONDS": str(self.args.relay_lease),
            "MDM_RELAY_HTTP_TIMEOUT_SECONDS": str(self.args.relay_lease - 2),
            # the relay job's receiver listens on loopback, where webhooks may not point
            # by default (docs/events.md, "Where webhooks may point")
            "MDM_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        }

    @staticmethod
    def mdm(*args: str) -> list[str]:
        return [sys.executable, "-m", "mdm", *args]

    def run(self, url: str, *args: str, label: str) -> float:
        return _crash.timed_run(
            self.mdm(*args), self.env(url), cwd=self.workdir, log=self.logs / f"{label}.log"
        )

    # --- starting states ---------------------------------------------------------

    def synthesize(self) -> None:
        if (self.synth / "manifest.json").exists():
            return
        a = self.args
        self.say(
            f"mdm synth --provinces {a.provinces} --citizens {a.citizens} --seed {a.data_seed}"
        )
        _crash.timed_run(
            self.mdm(
                "synth",
                "--provinces",
                str(a.provinces),
                "--citizens",
                str(a.citizens),
                "--organizations",
                str(max(10, a.citizens // 10)),
                "--dossiers",
                str(max(10, a.citizens // 4)),
                "--seed",
                str(a.data_seed),
                "--portal" if a.portal else "--no-portal",
                "--out",
                str(self.synth),
            ),
            os.environ,
            cwd=self.workdir,
            log=self.logs / "synth.log",
        )

    def state(self, name: str) -> str:
        """The database in state ``name`` (made on first use; a template for clones)."""
        if name in self.states:
            return self.states[name]
        if name == "empty":
            url = self.dbs.create("empty")
            self.run(url, "db", "upgrade", label="prepare")
        elif name == "ingested":
            url = self.dbs.create("ingested", self.state("empty"))
            self.say("preparing: ingest")
            self.run(url, *self.ingest_args("prepare"), label="prepare")
        elif name == "trained":
            url = self.dbs.create("trained", self.state("ingested"))
            self.say("preparing: mdm match train --entity citizen")
            self.run(url, "match", "train", "--entity", "citizen", label="prepare")
        elif name == "matched":
            url = self.dbs.create("matched", self.state("trained"))
            self.say("preparing: mdm match run --entity citizen")
            self.run(url, "match", "run", "--entity", "citizen", label="prepare")
        elif name == "changed":
            url = self.dbs.create("changed", self.state("matched"))
            self.say("preparing: ingest changed versions of a third of the citizens")
            for source, mapping, path in self.changed_citizen_files():
                self.run(
                    url,
                    "ingest",
                    "--source",
                    source,
                    "--mapping",
                    str(mapping),
                    str(path),
                    "--report-dir",
                    str(self.workdir / "reports" / "prepare"),
                    label="prepare",
                )
        elif name == "resolved":
            url = self.dbs.create("resolved", self.state("changed"))
            self.say("preparing: mdm resolve")
            self.run(url, "resolve", label="prepare")
        else:
            raise ValueError(name)
        self.states[name] = url
        return url

    def ingest_args(self, label: str) -> list[str]:
        return [
            "ingest",
            "--manifest",
            str(self.synth / "manifest.json"),
            "--json",
            "--report-dir",
            str(self.workdir / "reports" / label),
        ]

    def changed_citizen_files(self) -> list[tuple[str, Path, Path]]:
        """Every citizen CSV of the manifest with a third of its rows changed (another
        phone number and an e-mail address): new versions for ``mdm resolve``."""
        manifest = json.loads((self.synth / "manifest.json").read_text(encoding="utf-8"))
        rng = random.Random(self.args.data_seed)
        out = []
        for entry in manifest["files"]:
            if entry["entity_type"] != "citizen" or entry["format"] != "csv":
                continue
            mapping = self.synth / entry["mapping"]
            fields = _mapping_fields(mapping)
            src = self.synth / entry["path"]
            dst = self.workdir / "changed" / src.name
            dst.parent.mkdir(exist_ok=True)
            encoding, delimiter = entry["encoding"], entry.get("delimiter") or ","
            with (
                src.open(encoding=encoding, newline="") as fin,
                dst.open("w", encoding=encoding, newline="") as fout,
            ):
                reader = csv.reader(fin, delimiter=delimiter)
                writer = csv.writer(fout, delimiter=delimiter)
                header = next(reader)
                writer.writerow(header)
                phone = header.index(fields["phone"]) if fields.get("phone") in header else None
                email = header.index(fields["email"]) if fields.get("email") in header else None
                for row in reader:
                    if len(row) == len(header) and rng.random() < 1 / 3:
                        if phone is not None:
                            row[phone] = f"09{rng.randrange(10**8):08d}"
                        if email is not None:
                            row[email] = f"crash{rng.randrange(10**6)}@example.vn"
                    writer.writerow(row)
            out.append((entry["source_system"], mapping, dst))
        return out


def _mapping_fields(path: Path) -> dict[str, str]:
    import yaml

    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    fields: dict[str, str] = {}
    for name, spec in (doc.get("fields") or {}).items():
        column = spec.get("column") if isinstance(spec, dict) else spec
        if isinstance(column, str):
            fields[name] = column
    return fields


# ------------------------------------------------------------------ the receiver


@dataclass(frozen=True, slots=True)
class Arrival:
    path: str
    event_id: str
    canonical_id: str
    sequence: int
    at: float
    attempt: int = 1  # the relay's X-MDM-Delivery-Attempt


class Receiver:
    """A webhook receiver on loopback that records every complete request (answers 200)."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    return  # the sender died mid-request: nothing was delivered
                event = json.loads(body)
                with receiver.lock:
                    receiver.arrivals.append(
                        Arrival(
                            self.path,
                            self.headers["X-MDM-Event-Id"],
                            event["canonical_id"],
                            int(event["sequence"]),
                            time.time(),
                            int(self.headers.get("X-MDM-Delivery-Attempt") or 1),
                        )
                    )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a relay killed mid-request resets its connection: expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{path}"

    def of(self, path: str) -> list[Arrival]:
        with self.lock:
            return [a for a in self.arrivals if a.path == f"/{path}"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def subscribe(url: str, target: str) -> None:
    """An API client and a subscription to every event, as `POST /v1/subscriptions`
    makes them (the same secret in both databases)."""
    from sqlalchemy.orm import Session as OrmSession

    from mdm.events.destinations import DestinationPolicy, parse_networks
    from mdm.services.clients import create_client
    from mdm.services.subscriptions import create_subscription

    engine = _crash.engine_for(url)
    try:
        with OrmSession(engine) as session:
            client = create_client(session, "crash-agency", ["subscriptions:manage", "*:read"])
            create_subscription(
                session,
                client.client.id,
                target,
                {},
                secret="whsec_crash",
                policy=DestinationPolicy(allowed_networks=parse_networks("127.0.0.0/8")),
            )
            session.commit()
    finally:
        engine.dispose()


def relay_done(url: str) -> Callable[[], bool]:
    """True once every event is sequenced, fanned out and delivered (or dead)."""
    sql = (
        "SELECT (SELECT count(*) FROM outbox_events) AS events, "
        "(SELECT count(*) FROM outbox_events WHERE feed_position IS NULL) AS unsequenced, "
        "(SELECT min(feed_cursor) FROM subscriptions) AS cursor, "
        "(SELECT count(*) FROM deliveries) AS deliveries, "
        "(SELECT count(*) FROM deliveries WHERE status = 'pending') AS pending"
    )
    engine = _crash.engine_for(url)

    def done() -> bool:
        try:
            with engine.connect() as conn:
                from sqlalchemy import text

                ev, unseq, cursor, deliveries, pending = conn.execute(text(sql)).one()
        except Exception:
            return False
        return bool(unseq == 0 and cursor == ev and deliveries == ev and pending == 0)

    return done


def relay_remaining(url: str) -> Callable[[], float]:
    def remaining() -> float:
        total = _crash.scalar(url, "SELECT count(*) FROM outbox_events") or 1
        delivered = _crash.scalar(url, "SELECT count(*) FROM deliveries WHERE status <> 'pending'")
        return 1.0 - float(delivered or 0) / float(total)

    return remaining


def check_deliveries(
    arrivals: list[Arrival], expected: Mapping[str, tuple[str, int]], log: KillLog
) -> tuple[list[str], str]:
    """The webhook guarantee of docs/events.md, on what the receiver saw:

    * every event of the subscription arrived at least once, and nothing else did;
    * per entity, arrivals are in ``sequence`` order (a repeat only of the event just
      sent, never of an earlier one after a later one);
    * an event arrived more than once only if every arrival but the last was sent by
      a relay process that was then killed (it POSTed, and died before it recorded
      the delivery), or was followed by a later attempt (the relay saw the attempt
      fail, e.g. a timeout on a loaded machine, and retried: at least once, as
      documented); a relay that lives never sends an event twice otherwise.

    An arrival is time-stamped when the receiver has read it, which on a loaded
    machine can be a moment after the sender was killed: a killed run's window
    extends to the start of the next run, since no relay was alive in between.
    """
    problems: list[str] = []
    seen: dict[str, list[Arrival]] = defaultdict(list)
    for a in arrivals:
        seen[a.event_id].append(a)
    missing = set(expected) - set(seen)
    unexpected = set(seen) - set(expected)
    if missing:
        problems.append(f"{len(missing)} events never delivered")
    if unexpected:
        problems.append(f"{len(unexpected)} unknown events delivered")
    per_entity: dict[str, list[int]] = defaultdict(list)
    for a in sorted(arrivals, key=lambda a: a.at):
        per_entity[a.canonical_id].append(a.sequence)
    wanted: dict[str, list[int]] = defaultdict(list)
    for cid, seq in expected.values():
        wanted[cid].append(seq)
    disorder = 0
    for cid, seqs in per_entity.items():
        distinct = [s for i, s in enumerate(seqs) if i == 0 or s != seqs[i - 1]]
        if any(b < a for a, b in itertools.pairwise(seqs)) or distinct != sorted(wanted[cid]):
            disorder += 1
    if disorder:
        problems.append(f"{disorder} entities received out of order or with gaps")
    runs = sorted(log.runs, key=lambda r: r.started)
    killed = [
        (r.started, nxt.started if nxt is not None else float("inf"))
        for r, nxt in itertools.zip_longest(runs, runs[1:])
        if r is not None and r.outcome == "killed"
    ]

    def in_killed_run(t: float) -> bool:
        return any(s <= t <= e for s, e in killed)

    def explained(arr: list[Arrival]) -> bool:
        return all(
            in_killed_run(a.at) or any(b.attempt > a.attempt for b in arr[i + 1 :])
            for i, a in enumerate(arr[:-1])
        )

    repeated = {eid: arr for eid, arr in seen.items() if len(arr) > 1}
    bad = [eid for eid, arr in repeated.items() if not explained(arr)]
    if bad:
        problems.append(f"{len(bad)} events repeated without a kill between POST and commit")
    extra = sum(len(arr) - 1 for arr in repeated.values())
    note = (
        f"{len(expected):,} events, {len(arrivals):,} POSTs received: every event at least "
        f"once, in order per entity; {len(repeated)} events more than once ({extra} "
        "repeats), each after a relay that had POSTed it was killed before recording it, "
        "or retried after a failed attempt"
    )
    return problems, note


# ---------------------------------------------------------------------- the jobs


def compare_job(
    s: Session,
    name: str,
    base: str,
    command: Callable[[str], list[str]],
    tables: Mapping[str, Query],
    *,
    setup: Callable[[str, str], None] | None = None,
    done: Callable[[str], Callable[[], bool]] | None = None,
    remaining: Callable[[str, str], Callable[[], float]] | None = None,
    finished: Callable[[str, str], Callable[[], bool]] | None = None,
    check: Callable[[str, str, KillLog, Outcome], list[str]] | None = None,
    keep_reference_as: str | None = None,
) -> Outcome:
    out = Outcome(name)
    ref = s.dbs.create(f"{name}_ref", s.state(base))
    crash = s.dbs.create(f"{name}_crash", s.state(base))
    for url, label in ((ref, "ref"), (crash, "crash")):
        if setup is not None:
            setup(url, label)
    s.say(f"{name}: reference run")
    env = s.env(ref)
    out.reference_seconds = _crash.timed_run(
        command("ref"),
        env,
        cwd=s.workdir,
        log=s.logs / f"{name}-ref.log",
        done=done(ref) if done else None,
    )
    reference = _crash.digests(ref, tables)
    s.say(f"{name}: reference {out.reference_seconds:.1f} s; now {s.args.kills_per_job} kills")
    started = time.monotonic()
    log = _crash.kill_and_resume(
        command("crash"),
        s.env(crash),
        cwd=s.workdir,
        log=s.logs / f"{name}-crash.log",
        kills=s.args.kills_per_job,
        rng=s.rng,
        full_seconds=out.reference_seconds,
        done=done(crash) if done else None,
        remaining=remaining(ref, crash) if remaining else None,
        finished=finished(ref, crash) if finished else None,
        min_delay=s.args.min_delay,
        on_kill=lambda k: s.say(f"{name}: kill -9 #{k}"),
    )
    out.crashed_seconds = time.monotonic() - started
    out.kills, out.runs = log.kills, len(log.runs)
    if log.error is not None:
        out.result = "DIFFERENT"
        out.details.append(log.error)
    else:
        final = _crash.digests(crash, tables)
        out.details.extend(_crash.differences(reference, final))
        for table_name, query in tables.items():
            a, b = reference[table_name], final[table_name]
            if a != b and a[0] == b[0]:
                s.say(f"{name}: {table_name}: {_crash.examples(ref, crash, query)}")
        if check is not None:
            out.details.extend(check(ref, crash, log, out))
        if out.details:
            out.result = "DIFFERENT"
    if out.result == "identical" and log.runs and log.runs[-1].outcome.endswith("last commit"):
        out.result = "identical (the last kill landed after the last commit)"
    s.say(f"{name}: {out.result} after {out.kills} kills, {out.runs} runs")
    if keep_reference_as is not None:
        s.states.setdefault(keep_reference_as, ref)
    elif not s.args.keep:
        s.dbs.drop(ref)
    if not s.args.keep:
        s.dbs.drop(crash)
    return out


def job_ingest(s: Session) -> Outcome:
    def remaining(ref: str, crash: str) -> Callable[[], float]:
        sql = "SELECT (SELECT count(*) FROM source_records) + (SELECT count(*) FROM rejects)"
        total = _crash.scalar(ref, sql) or 1
        return lambda: 1.0 - float(_crash.scalar(crash, sql) or 0) / float(total)

    def finished(ref: str, crash: str) -> Callable[[], bool]:
        # every file's run completed, as many as the reference's: the command's work
        # is all committed (a kill now only interrupts its report or its exit)
        want = _crash.scalar(ref, "SELECT count(*) FROM ingest_runs")

        def check() -> bool:
            done = _crash.scalar(
                crash, "SELECT count(*) FROM ingest_runs WHERE status = 'completed'"
            )
            return bool(done == want == _crash.scalar(crash, "SELECT count(*) FROM ingest_runs"))

        return check

    return compare_job(
        s,
        "ingest",
        "empty",
        lambda label: s.mdm(*s.ingest_args(label)),
        INGEST_TABLES,
        remaining=remaining,
        finished=finished,
        keep_reference_as="ingested",
    )


def job_match(s: Session) -> Outcome:
    def finished(ref: str, crash: str) -> Callable[[], bool]:
        # the run is marked completed after its last write: a kill after that only
        # interrupts the command's report or its exit, and running it again would be
        # a second run (a second completed row), not a resume
        sql = "SELECT count(*) FROM match_runs WHERE status = 'completed'"
        want = _crash.scalar(ref, sql)
        return lambda: bool(_crash.scalar(crash, sql) == want)

    return compare_job(
        s,
        "match",
        "trained",
        lambda _label: s.mdm("match", "run", "--entity", "citizen", "--json"),
        MATCH_TABLES,
        finished=finished,
        keep_reference_as="matched",
    )


def job_resolve(s: Session) -> Outcome:
    return compare_job(
        s,
        "resolve",
        "changed",
        lambda _label: s.mdm("resolve"),
        ENTITY_TABLES,
        keep_reference_as="resolved",
    )


def _rebuild_reports(log: Path) -> dict[str, Any]:
    """The last report of each entity type that `mdm resolve --rebuild` printed."""
    reports: dict[str, Any] = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith('{"entity_type"'):
            doc = json.loads(line)
            reports[doc["entity_type"]] = doc
    return reports


def job_rebuild(s: Session) -> Outcome:
    def check(_ref: str, _crash_url: str, _log: KillLog, out: Outcome) -> list[str]:
        a = _rebuild_reports(s.logs / "rebuild-ref.log")
        b = _rebuild_reports(s.logs / "rebuild-crash.log")
        out.notes.append(
            "rebuild: "
            + ", ".join(f"{t} {r['identical']}/{r['entities']} identical" for t, r in a.items())
        )
        return [] if a == b and a else [f"rebuild reports differ: {a} vs {b}"]

    return compare_job(
        s,
        "rebuild",
        "resolved",
        lambda _label: s.mdm("resolve", "--rebuild"),
        {**ENTITY_TABLES, **MATCH_TABLES},
        check=check,
    )


def job_relay(s: Session) -> Outcome:
    receiver = Receiver()
    try:

        def setup(url: str, label: str) -> None:
            subscribe(url, receiver.url(label))

        def check(ref: str, crash: str, log: KillLog, out: Outcome) -> list[str]:
            problems: list[str] = []
            for url, label, runs in ((ref, "ref", KillLog()), (crash, "crash", log)):
                expected = _expected_events(url)
                found, note = check_deliveries(receiver.of(label), expected, runs)
                problems.extend(f"{label}: {p}" for p in found)
                retried = _crash.scalar(url, "SELECT count(*) FROM deliveries WHERE attempts > 1")
                if label == "crash":
                    out.notes.append(f"relay: {note}")
                out.notes.append(f"relay ({label}): {retried} deliveries needed a retry")
            return problems

        return compare_job(
            s,
            "relay",
            "resolved",
            lambda label: s.mdm("relay"),
            RELAY_TABLES,
            setup=setup,
            done=relay_done,
            remaining=lambda _ref, crash: relay_remaining(crash),
            check=check,
        )
    finally:
        receiver.close()


def _expected_events(url: str) -> dict[str, tuple[str, int]]:
    from sqlalchemy import text

    engine = _crash.engine_for(url)
    try:
        with engine.connect() as conn:
            return {
                str(e): (str(c), int(q))
                for e, c, q in conn.execute(
                    text("SELECT event_id, canonical_id, sequence FROM outbox_events")
                )
            }
    finally:
        engine.dispose()


def job_nats(s: Session) -> Outcome:
    tag = uuid.uuid4().hex[:6].upper()
    streams = {label: f"MDM_CRASH_{tag}_{label.upper()}" for label in ("ref", "crash")}
    prefixes = {label: f"crash{tag.lower()}{label}" for label in ("ref", "crash")}

    def command(label: str) -> list[str]:
        return s.mdm(
            "relay",
            "--nats",
            NATS_URL,
            "--stream",
            streams[label],
            "--subject-prefix",
            prefixes[label],
        )

    def done_for(label: str) -> Callable[[str], Callable[[], bool]]:
        def factory(url: str) -> Callable[[], bool]:
            sql = (
                "SELECT (SELECT count(*) FROM outbox_events) - coalesce((SELECT position "
                f"FROM event_cursors WHERE name = 'nats:{streams[label]}'), -1)"
            )
            return lambda: _crash.scalar(url, sql) == 0

        return factory

    urls: dict[str, str] = {}

    def setup(url: str, label: str) -> None:
        urls[label] = url

    def done(url: str) -> Callable[[], bool]:
        label = "ref" if url == urls["ref"] else "crash"
        return done_for(label)(url)

    def remaining(_ref: str, crash: str) -> Callable[[], float]:
        sql = (
            "SELECT coalesce((SELECT position FROM event_cursors WHERE name = "
            f"'nats:{streams['crash']}'), 0)"
        )
        total = _crash.scalar(crash, "SELECT count(*) FROM outbox_events") or 1
        return lambda: 1.0 - float(_crash.scalar(crash, sql) or 0) / float(total)

    def check(ref: str, crash: str, log: KillLog, out: Outcome) -> list[str]:
        got = {label: asyncio.run(_read_stream(streams[label])) for label in streams}
        problems = []
        for label, url in (("ref", ref), ("crash", crash)):
            expected = _feed_order(url)
            if got[label] != expected:
                problems.append(
                    f"{label}: stream holds {len(got[label])} messages, feed {len(expected)}"
                    + (" (same set, other order)" if sorted(got[label]) == sorted(expected) else "")
                )
        if got["ref"] != got["crash"]:
            problems.append("the two streams differ")
        out.notes.append(
            f"nats: {len(got['crash']):,} messages in the stream, each event exactly once, "
            "in feed order (the broker dropped the republished ones by Nats-Msg-Id)"
        )
        return problems

    try:
        return compare_job(
            s,
            "nats",
            "resolved",
            command,
            {k: v for k, v in RELAY_TABLES.items() if k != "deliveries"},
            setup=setup,
            done=done,
            remaining=remaining,
            check=check,
        )
    finally:
        asyncio.run(_delete_streams(list(streams.values())))


def _feed_order(url: str) -> list[str]:
    from sqlalchemy import text

    engine = _crash.engine_for(url)
    try:
        with engine.connect() as conn:
            return [
                str(e)
                for (e,) in conn.execute(
                    text("SELECT event_id FROM outbox_events ORDER BY feed_position")
                )
            ]
    finally:
        engine.dispose()


async def _read_stream(stream: str) -> list[str]:
    """Event IDs of every message of the stream, in stream order."""
    import nats

    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        total = info.state.messages
        sub = await js.subscribe(">", stream=stream, ordered_consumer=True)
        out: list[str] = []
        while len(out) < total:
            msg = await sub.next_msg(timeout=10)
            out.append(json.loads(msg.data)["event_id"])
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


async def _delete_streams(names: list[str]) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        for name in names:
            with contextlib.suppress(Exception):
                await js.delete_stream(name)
    finally:
        await nc.close()


RUNNERS: dict[str, Callable[[Session], Outcome]] = {
    "ingest": job_ingest,
    "match": job_match,
    "resolve": job_resolve,
    "rebuild": job_rebuild,
    "relay": job_relay,
    "nats": job_nats,
}


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    p.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated, of {JOBS}")
    p.add_argument("--kills-per-job", type=int, default=5)
    p.add_argument("--provinces", type=int, default=3)
    p.add_argument("--citizens", type=int, default=8000, help="per province (mdm synth)")
    p.add_argument("--data-seed", type=int, default=7, help="mdm synth --seed")
    p.add_argument(
        "--portal", action=argparse.BooleanOptionalAction, default=True, help="mdm synth --portal"
    )
    p.add_argument("--seed", type=int, default=2025, help="seeds the kill moments")
    p.add_argument(
        "--min-delay", type=float, default=1.5, help="no kill earlier (seconds after start)"
    )
    p.add_argument(
        "--relay-lease",
        type=float,
        default=7.0,
        help="MDM_RELAY_LEASE_SECONDS (the HTTP timeout is 2 s less): how long a killed "
        "relay's work waits",
    )
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the scratch databases")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    args.jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    bad = set(args.jobs) - set(JOBS)
    if bad:
        p.error(f"unknown jobs {sorted(bad)}")
    return args


def run(args: argparse.Namespace) -> list[Outcome]:
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mdm-crash-jobs-"))
    workdir.mkdir(parents=True, exist_ok=True)
    with _crash.scratch(args.backend, workdir) as dbs:
        s = Session(args, dbs, workdir)
        s.synthesize()
        for job in JOBS:
            if job in args.jobs:
                try:
                    s.outcomes.append(RUNNERS[job](s))
                except Exception as exc:  # a preparation step failed: report, go on
                    s.outcomes.append(
                        Outcome(job, result="ERROR", details=[f"{type(exc).__name__}: {exc}"])
                    )
        if args.keep:
            dbs.urls.clear()
    return s.outcomes


def table(outcomes: list[Outcome]) -> str:
    lines = [
        f"{'job':<8} {'kills':>5} {'runs':>4} {'ref s':>6} {'crash s':>7}  result",
        f"{'-' * 8} {'-' * 5} {'-' * 4} {'-' * 6} {'-' * 7}  {'-' * 30}",
    ]
    for o in outcomes:
        result = o.result if not o.details else f"{o.result}: {'; '.join(o.details)}"
        lines.append(
            f"{o.job:<8} {o.kills:>5} {o.runs:>4} {o.reference_seconds:>6.1f} "
            f"{o.crashed_seconds:>7.1f}  {result}"
        )
    total = sum(o.kills for o in outcomes)
    lines.append(f"{'total':<8} {total:>5}")
    for o in outcomes:
        lines.extend(o.notes)
    return "\n".join(lines)


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # runs the clean-ups (databases)


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    args = parse_args()
    print(f"machine: {machine()}")
    print(
        f"backend {args.backend}; mdm synth --provinces {args.provinces} --citizens "
        f"{args.citizens} --seed {args.data_seed}; {args.kills_per_job} kills per job, "
        f"kill seed {args.seed}",
        flush=True,
    )
    started = time.monotonic()
    outcomes = run(args)
    print()
    print(table(outcomes))
    print(f"elapsed {time.monotonic() - started:.0f} s")
    raise SystemExit(0 if all(o.result.startswith("identical") for o in outcomes) else 1)


if __name__ == "__main__":
    main()
