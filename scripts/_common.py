"""Shared pieces of the benchmark and crash scripts (not part of the package)."""

from __future__ import annotations

import csv
import os
import platform
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, text

SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng"]
SURNAMES += ["Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý"]
MIDDLES = ["Văn", "Thị", "Hữu", "Đức", "Minh", "Ngọc", "Thanh", "Quang", "Kim", "Xuân"]
GIVEN = ["An", "Bình", "Cường", "Dũng", "Hà", "Hải", "Hạnh", "Hoa", "Hùng", "Hương"]
GIVEN += ["Lan", "Linh", "Long", "Mai", "Nam", "Nga", "Phong", "Phương", "Quân", "Sơn"]
GIVEN += ["Tâm", "Thảo", "Thắng", "Trang", "Trung", "Tuấn", "Vy", "Yến", "Khoa", "Đạt"]
STREETS = ["Lê Lợi", "Trần Hưng Đạo", "Nguyễn Huệ", "Hai Bà Trưng", "Lý Thường Kiệt"]
STREETS += ["Phan Đình Phùng", "Điện Biên Phủ", "Hùng Vương", "Quang Trung", "Bạch Đằng"]


def person(
    rng: random.Random, i: int, *, provinces: int = 96, streets: list[str] = STREETS
) -> dict[str, Any]:
    """A standardized citizen (the shape the standardizers produce), for seeding a
    store directly; province codes 01..``provinces``."""
    sex = rng.choice(("male", "female"))
    middle = "Thị" if sex == "female" and rng.random() < 0.6 else rng.choice(MIDDLES)
    dob = datetime(1930, 1, 1) + timedelta(days=rng.randrange(0, 33_000))
    province = f"{rng.randrange(1, provinces + 1):02d}"
    return {
        "full_name": f"{rng.choice(SURNAMES)} {middle} {rng.choice(GIVEN)}",
        "date_of_birth": dob.strftime("%Y-%m-%d"),
        "sex": sex,
        "personal_id": f"0{province}{rng.randrange(0, 2)}{dob.year % 100:02d}{i % 1_000_000:06d}",
        "permanent_address": {
            "province_code": province,
            "commune_code": f"{rng.randrange(1, 32_000):05d}",
            "street": f"{rng.randrange(1, 300)} {rng.choice(streets)}",
        },
        "phone": f"+849{rng.randrange(0, 100_000_000):08d}",
    }


PG_ADMIN = os.environ.get(
    "MDM_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{cpu}; {psutil.cpu_count()} logical cores; {mem:.0f} GiB RAM; "
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}; "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )


@contextmanager
def scratch_postgres(prefix: str, admin_url: str = PG_ADMIN) -> Iterator[str]:
    """A database of its own on the local Postgres (or the server of ``admin_url``),
    dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_synth(
    out: Path,
    *,
    provinces: int,
    citizens: int,
    seed: int,
    organizations: int = 10,
    dossiers: int = 10,
    portal: bool = False,
) -> None:
    """`mdm synth` into ``out`` (``citizens`` records per former province), unless a
    manifest is already there."""
    if (out / "manifest.json").exists():
        return
    args = ["--provinces", str(provinces), "--citizens", str(citizens)]
    args += ["--organizations", str(organizations), "--dossiers", str(dossiers)]
    args += ["--portal" if portal else "--no-portal", "--seed", str(seed), "--out", str(out)]
    subprocess.run([sys.executable, "-m", "mdm", "synth", *args], check=True, capture_output=True)


def synth_citizen_file(workdir: Path, seed: int = 5) -> tuple[Path, Path]:
    """One realistic legacy citizen export from `mdm synth` and its mapping."""
    out = workdir / "synth"
    run_synth(out, provinces=1, citizens=100_000, seed=seed)
    import json

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    entry = next(
        f for f in manifest["files"] if f["entity_type"] == "citizen" and f["format"] == "csv"
    )
    return out / entry["path"], out / entry["mapping"]


def replicate_csv(source: Path, target: Path, rows: int, encoding: str = "utf-8-sig") -> Path:
    """A file of `rows` rows made by repeating `source` with distinct keys (first column)."""
    if target.exists():
        return target
    with source.open(encoding=encoding, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        body = list(reader)
    with target.open("w", encoding=encoding, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        written = 0
        copy = 0
        while written < rows:
            for row in body:
                if written >= rows:
                    break
                writer.writerow([f"{row[0]}-{copy}", *row[1:]] if copy else row)
                written += 1
            copy += 1
    return target


class PeakRss:
    """Samples the RSS of a process and all its descendants (workers) every 0.2 s."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            proc = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            try:
                procs = [proc, *proc.children(recursive=True)]
                total = sum(p.memory_info().rss for p in procs if p.is_running())
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            time.sleep(0.2)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class CpuSeconds:
    """CPU seconds (user + system) a job costs, by process group, sampled every 0.3 s:

    * ``main``: the job's own process; ``workers``: its descendants;
    * ``postgres``: the Postgres backends serving ``database`` (found by their
      process title, which names the database);
    * ``postgres (shared)``: the server's other processes (checkpointer, WAL writer,
      background writer, autovacuum), as their growth during the job.

    On a machine whose speed varies from run to run, CPU seconds per group compare
    two versions of a job better than wall time does. A process that lives less
    than one sampling interval is missed; the figures are lower bounds.
    """

    def __init__(self, pid: int, database: str | None = None) -> None:
        self.pid = pid
        self.database = database
        self._last: dict[int, tuple[str, float]] = {}
        self._start: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _group(self, proc: psutil.Process, tree: set[int]) -> str | None:
        if proc.pid == self.pid:
            return "main"
        if proc.pid in tree:
            return "workers"
        if proc.name() != "postgres":
            return None
        title = " ".join(proc.cmdline())
        if self.database and f" {self.database} " in title:
            return "postgres"
        return "postgres (shared)"

    def _sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            tree = {p.pid for p in root.children(recursive=True)}
        except psutil.Error:
            tree = set()
        for proc in psutil.process_iter():
            try:
                group = self._group(proc, tree)
                if group is None:
                    continue
                times = proc.cpu_times()
                cpu = times.user + times.system
            except psutil.Error:
                continue
            if proc.pid not in self._last and group == "postgres (shared)":
                self._start.setdefault(proc.pid, cpu)  # count its growth only
            self._last[proc.pid] = (group, cpu)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(0.3)

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, (group, cpu) in self._last.items():
            out[group] = out.get(group, 0.0) + cpu - self._start.get(pid, 0.0)
        return dict(sorted(out.items()))

    def __enter__(self) -> CpuSeconds:
        self._sample()  # the shared processes' starting point
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def bench_postgres(shared_buffers: str | None) -> Iterator[tuple[str, str]]:
    """``(admin URL, what it is)`` of the server a benchmark runs on: the machine's
    as it is, or with ``shared_buffers`` a cluster of the bench's own sized as a
    deployment would size it (also ``effective_cache_size``, and ``max_wal_size``
    4GB as for a bulk load)."""
    if not shared_buffers:
        yield PG_ADMIN, "the machine's server, its own settings"
        return
    with own_postgres(
        shared_buffers=shared_buffers,
        effective_cache_size=shared_buffers,
        max_wal_size="4GB",
    ) as admin:
        yield (
            admin,
            (
                f"a cluster of the bench's own: shared_buffers = {shared_buffers}, "
                f"effective_cache_size = {shared_buffers}, max_wal_size = 4GB "
                "(the machine's server keeps its settings)"
            ),
        )


@contextmanager
def own_postgres(**settings: str) -> Iterator[str]:
    """A Postgres cluster of the benchmark's own, with ``settings`` in its
    ``postgresql.conf`` (for example ``shared_buffers="4GB"``): its admin URL. The
    machine's shared server keeps its own settings; this one is sized as a
    deployment would size it."""
    from _pgcluster import PgCluster, pg_bindir, run_as_user

    bindir = pg_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        raise SystemExit("no initdb/pg_ctl found (PATH, pg_config, /usr/lib/postgresql/*/bin)")
    cluster = PgCluster(bindir, run_as_user())
    try:
        cluster.init(**settings)
        cluster.start()
        yield cluster.url()
    finally:
        cluster.destroy()
