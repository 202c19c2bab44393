"""Shared pieces of the crash scripts (`crash_ingest.py`, `crash_jobs.py`): scratch
databases that can be cloned, order-independent table digests, and the loop that
kills a command with SIGKILL at random moments and runs it again until it completes.

Not part of the package; the CI test `tests/reliability/test_crash_resume.py` imports
it through `crash_jobs.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

from _common import PG_ADMIN
from sqlalchemy import create_engine, text

from mdm.config import normalize_database_url

# --------------------------------------------------------------- scratch databases


class Scratch:
    """Databases of one crash session: created empty or cloned from another one, all
    dropped (Postgres) or deleted (SQLite) by :meth:`close`.

    Postgres clones with ``CREATE DATABASE ... TEMPLATE`` (nobody may be connected to
    the template); SQLite with the backup API. A clone is byte-for-byte the same
    starting state, so a reference run and a crashed run start from identical data.
    """

    def __init__(self, backend: str, workdir: Path, prefix: str = "mdm_crash") -> None:
        if backend not in ("postgres", "sqlite"):
            raise ValueError(f"unknown backend {backend!r}")
        self.backend = backend
        self.dir = workdir / "db"
        self.prefix = prefix
        self.tag = uuid.uuid4().hex[:6]
        self.urls: list[str] = []
        if backend == "sqlite":
            self.dir.mkdir(parents=True, exist_ok=True)

    def _name(self, label: str) -> str:
        return f"{self.prefix}_{self.tag}_{label}"

    def create(self, label: str, template: str | None = None) -> str:
        name = self._name(label)
        if self.backend == "sqlite":
            path = self.dir / f"{name}.db"
            for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                stale.unlink(missing_ok=True)
            if template is not None:
                src = sqlite3.connect(template.removeprefix("sqlite:///"))
                dst = sqlite3.connect(path)
                with dst:
                    src.backup(dst)
                src.close()
                dst.close()
            url = f"sqlite:///{path}"
        else:
            clause = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    for attempt in range(20):  # a killed client's backend may linger
                        try:
                            conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
                            break
                        except Exception:
                            if attempt == 19:
                                raise
                            time.sleep(0.5)
            finally:
                admin.dispose()
            url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
        self.urls.append(url)
        return url

    def drop(self, url: str) -> None:
        if url not in self.urls:
            return
        self.urls.remove(url)
        if self.backend == "sqlite":
            path = url.removeprefix("sqlite:///")
            for f in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
                Path(f).unlink(missing_ok=True)
            return
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(
                    text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
                )
        finally:
            admin.dispose()

    def close(self) -> None:
        for url in list(self.urls):
            self.drop(url)
        if self.backend == "sqlite":
            shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def scratch(backend: str, workdir: Path, prefix: str = "mdm_crash") -> Iterator[Scratch]:
    dbs = Scratch(backend, workdir, prefix)
    try:
        yield dbs
    finally:
        dbs.close()


def engine_for(url: str) -> Any:
    return create_engine(normalize_database_url(url))


# ------------------------------------------------------------------ table digests

Transform = Callable[[tuple[Any, ...]], tuple[Any, ...]]


@dataclass(frozen=True)
class Query:
    """The columns of a table that must be identical after a crash-resumed job: no
    timestamps, no surrogate ids a rolled-back transaction may have consumed (rows are
    named by canonical IDs and source records instead). ``transform`` drops volatile
    parts of a value in Python (e.g. an event payload's ``event_id``)."""

    sql: str
    transform: Transform | None = None


def _norm(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return float(f"{value:.12g}")  # the same computation, printed the same way
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return _norm(json.loads(value))  # SQLite returns JSON columns as text
        except ValueError:
            return value
    if isinstance(value, dict):
        return {str(k): _norm(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    return value


def row_key(row: tuple[Any, ...]) -> str:
    return json.dumps(_norm(list(row)), sort_keys=True, ensure_ascii=False, default=str)


INGEST_TABLES = {
    "source_systems": Query("SELECT name, trust FROM source_systems"),
    "source_records": Query(
        "SELECT s.name, r.source_key, r.entity_type, r.current_version, r.status, "
        "r.current_hash FROM source_records r JOIN source_systems s ON s.id = r.source_system_id"
    ),
    # versions by (system, key): record ids consumed by rolled-back chunks do not count
    "source_record_versions": Query(
        "SELECT s.name, r.source_key, v.version, v.content_hash, v.standardized, v.issues, "
        "v.raw FROM source_record_versions v JOIN source_records r ON r.id = v.source_record_id "
        "JOIN source_systems s ON s.id = r.source_system_id"
    ),
    "rejects": Query(
        "SELECT s.name, j.entity_type, j.location, j.source_key, j.reasons, j.raw_content "
        "FROM rejects j LEFT JOIN source_systems s ON s.id = j.source_system_id"
    ),
    # a resumed file continues its run: one run per file, counts as if uninterrupted
    "ingest_runs": Query(
        "SELECT s.name, i.entity_type, i.file_sha256, i.mapping_sha256, i.full_snapshot, "
        "i.status, i.rows_committed, i.counts FROM ingest_runs i "
        "JOIN source_systems s ON s.id = i.source_system_id",
        lambda row: (
            *row[:7],
            {k: v for k, v in _norm(row[7] or {}).items() if "seconds" not in k},
        ),
    ),
}


def digests(url: str, queries: Mapping[str, Query]) -> dict[str, tuple[int, str]]:
    """Per table: (row count, a digest that does not depend on row order)."""
    engine = engine_for(url)
    out: dict[str, tuple[int, str]] = {}
    try:
        with engine.connect() as conn:
            for name, q in queries.items():
                hashes: list[bytes] = []
                result = conn.execution_options(stream_results=True, yield_per=20_000).execute(
                    text(q.sql)
                )
                for row in result:
                    values = tuple(row)
                    if q.transform is not None:
                        values = q.transform(values)
                    hashes.append(hashlib.sha256(row_key(values).encode()).digest())
                hashes.sort()
                out[name] = (len(hashes), hashlib.sha256(b"".join(hashes)).hexdigest()[:16])
    finally:
        engine.dispose()
    return out


def differences(
    reference: Mapping[str, tuple[int, str]], final: Mapping[str, tuple[int, str]]
) -> list[str]:
    """What differs, e.g. ``links: 10012 rows vs 10010`` or ``entities: content``."""
    out = []
    for name in sorted(set(reference) | set(final)):
        a, b = reference.get(name), final.get(name)
        if a == b:
            continue
        if a is None or b is None or a[0] != b[0]:
            out.append(f"{name}: {a and a[0]} rows vs {b and b[0]}")
        else:
            out.append(f"{name}: content")
    return out


def examples(reference: str, final: str, q: Query, n: int = 2) -> str:
    """Rows of a table found only in one of the two databases (a few of each side)."""

    def rows(url: str) -> set[str]:
        engine = engine_for(url)
        try:
            with engine.connect() as conn:
                return {
                    row_key(q.transform(tuple(r)) if q.transform else tuple(r))
                    for r in conn.execute(text(q.sql))
                }
        finally:
            engine.dispose()

    a, b = rows(reference), rows(final)
    only_a, only_b = sorted(a - b)[:n], sorted(b - a)[:n]
    return f"only in the reference {only_a}; only after the kills {only_b}"


def scalar(url: str, sql: str) -> Any:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


# ------------------------------------------------------------- kill and resume


def killpg(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal the command's whole process group (ingest's standardization workers
    die with it, as on a power cut)."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def start(cmd: list[str], env: Mapping[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        return subprocess.Popen(
            cmd,
            env=dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, for killpg
        )


@dataclass
class Run:
    started: float
    ended: float
    outcome: str  # "killed", "exit 0", "exit N", "stopped" (a service told to stop)


@dataclass
class KillLog:
    runs: list[Run] = field(default_factory=list)
    kill_times: list[float] = field(default_factory=list)  # time.time() of each SIGKILL
    error: str | None = None

    @property
    def kills(self) -> int:
        return len(self.kill_times)


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def kill_and_resume(
    cmd: list[str],
    env: Mapping[str, str],
    *,
    cwd: Path,
    log: Path,
    kills: int,
    rng: Random,
    full_seconds: float,
    done: Callable[[], bool] | None = None,
    remaining: Callable[[], float] | None = None,
    min_delay: float = 1.0,
    spread: float = 0.6,
    timeout: float | None = None,
    on_kill: Callable[[int], None] | None = None,
    finished: Callable[[], bool] | None = None,
) -> KillLog:
    """Run ``cmd`` and ``kill -9`` it (its process group) up to ``kills`` times, each
    after a random delay, then run it to completion.

    A *batch* job (``done`` is None) completes when the command exits 0; a nonzero
    exit is recorded as the error (a resumed job that refuses to run is a bug). A
    *service* (``done`` given, e.g. the relay) runs until ``done()`` says its work is
    finished, then gets SIGTERM and must exit 0.

    Each delay is uniform in ``[min_delay, min_delay + spread * r * (full_seconds -
    min_delay)]`` with ``r = remaining()`` (the fraction of the work left, 1 if
    unknown), so that kills land while there is work (``spread`` < 1: a reference run
    on a loaded machine can take longer than the next). A run that completes before
    its kill ends the loop.

    ``finished()`` (batch jobs) tells whether the job's work is all committed: a kill
    that lands after the last commit (while the command writes its report or exits)
    leaves a finished job, and running the command again then is not a resume but a
    new, deliberate run (for ingest: a re-ingest with its own run and rejects). Such a
    kill ends the loop, recorded as ``killed after its last commit``, and the state is
    compared as it is.
    """
    result = KillLog()
    limit = timeout if timeout is not None else max(120.0, 10 * full_seconds)
    while True:
        frac = 1.0 if remaining is None else max(0.05, min(1.0, remaining()))
        want_kill = result.kills < kills
        delay = (
            rng.uniform(min_delay, min_delay + spread * frac * max(0.5, full_seconds - min_delay))
            if want_kill
            else limit
        )
        started = time.time()
        proc = start(cmd, env, cwd, log)
        try:
            outcome = _wait(proc, delay, done)
        except BaseException:  # the session is stopped: leave no job behind
            killpg(proc)
            proc.wait()
            raise
        if outcome == "timeout" and want_kill:
            killpg(proc)
            proc.wait()
            result.kill_times.append(time.time())
            if finished is not None and finished():
                result.runs.append(Run(started, time.time(), "killed after its last commit"))
                if on_kill is not None:
                    on_kill(result.kills)
                return result
            result.runs.append(Run(started, time.time(), "killed"))
            if on_kill is not None:
                on_kill(result.kills)
            continue
        if outcome == "timeout":
            killpg(proc)
            proc.wait()
            result.runs.append(Run(started, time.time(), "hung"))
            result.error = f"no completion within {limit:.0f} s:\n{_tail(log)}"
            return result
        if outcome == "done":
            killpg(proc, signal.SIGTERM)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                killpg(proc)
                proc.wait()
                code = -9
            outcome = f"exit {code}"
        result.runs.append(Run(started, time.time(), outcome))
        if outcome != "exit 0":
            result.error = f"run {len(result.runs)} ended with {outcome}:\n{_tail(log)}"
        return result


def _wait(proc: subprocess.Popen[bytes], seconds: float, done: Callable[[], bool] | None) -> str:
    """``exit N`` if the process ended, ``done`` if ``done()`` became true, else
    ``timeout`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        try:
            code = proc.wait(timeout=min(left, 0.25 if done is not None else left))
            return f"exit {code}"
        except subprocess.TimeoutExpired:
            pass
        if done is not None and done():
            return "done"


def timed_run(
    cmd: list[str],
    env: Mapping[str, str],
    *,
    cwd: Path,
    log: Path,
    done: Callable[[], bool] | None = None,
    timeout: float = 3600,
) -> float:
    """Run ``cmd`` uninterrupted (the reference); its duration. Raises on failure."""
    r = kill_and_resume(
        cmd,
        env,
        cwd=cwd,
        log=log,
        kills=0,
        rng=Random(0),
        full_seconds=timeout,
        done=done,
        timeout=timeout,
    )
    if r.error is not None:
        raise RuntimeError(f"reference run of {' '.join(cmd[2:])} failed: {r.error}")
    return r.runs[-1].ended - r.runs[-1].started
