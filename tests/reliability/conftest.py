"""Shared parts of the reliability tests: a trained citizen model, synthetic people
that the matcher links across sources, API clients, and a Postgres cluster of the
test's own that it may stop and start (never the shared server at 5432).
"""

from __future__ import annotations

import glob
import os
import pwd
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from mdm.services import matching as matching_svc
from mdm.services.clients import create_client
from mdm.store.db import make_engine
from tests.conftest import IN_CI
from tests.matching.synthetic import trained_citizen_rules
from tests.servers import free_port

# ------------------------------------------------------------------ model


@pytest.fixture(scope="session")
def citizen_rules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The shipped citizen rules and a model trained on synthetic citizens (as in
    tests/services/test_registration.py: :func:`trained_citizen_rules`)."""
    tmp = tmp_path_factory.mktemp("reliability-rules")
    yield trained_citizen_rules(tmp)
    matching_svc.clear_cache()


# ------------------------------------------------------------------ people

_SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô"]
_MALE = (
    ["Văn", "Đức", "Minh", "Quang", "Hữu", "Công", "Xuân"],
    ["An", "Bảo", "Cường", "Dũng", "Hải", "Hùng", "Khánh", "Long", "Nam", "Phúc", "Sơn", "Tú"],
)
_FEMALE = (
    ["Thị", "Ngọc", "Thu", "Thanh", "Minh", "Kim", "Bích"],
    ["Anh", "Chi", "Dung", "Hà", "Hạnh", "Lan", "Linh", "Mai", "Nga", "Phương", "Thảo", "Yến"],
)


def person(i: int, seed: int = 1) -> dict[str, str]:
    """Raw attributes of synthetic person ``i``: a unique, well-formed personal ID (its
    province, century and sex digits agree with the birth date and sex), a unique
    phone, a name and a birth date. Two sources sending the same person send the same
    attributes, which the model links automatically."""
    rng = random.Random(seed * 1_000_003 + i)
    male = rng.random() < 0.5
    middles, givens = _MALE if male else _FEMALE
    year = rng.randint(1945, 2009)
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    century = 0 if year < 2000 else 2
    sex_digit = century + (0 if male else 1)
    return {
        "full_name": f"{rng.choice(_SURNAMES)} {rng.choice(middles)} {rng.choice(givens)}",
        "date_of_birth": f"{year:04d}-{month:02d}-{day:02d}",
        "sex": "nam" if male else "nữ",
        "personal_id": (
            f"{1 + i % 96:03d}{sex_digit}{year % 100:02d}{(seed * 7919 + i) % 10**6:06d}"
        ),
        "phone": f"09{(seed * 104729 + i * 37) % 10**8:08d}",
    }


def make_api_clients(
    url: str, names: list[str], scopes: list[str], *, rate_limit_per_minute: int = 10**6
) -> dict[str, str]:
    """API clients (``mdm clients create``'s service) in the database at ``url``;
    name -> key."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            keys = {
                n: create_client(
                    session, n, scopes, rate_limit_per_minute=rate_limit_per_minute
                ).key
                for n in names
            }
            session.commit()
    finally:
        engine.dispose()
    return keys


# ------------------------------------------------------------------ own Postgres


def _pg_bindir() -> Path | None:
    override = os.environ.get("MDM_TEST_PG_BINDIR")
    if override:
        return Path(override)
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "pg_ctl").exists():
            return Path(out.stdout.strip())
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


class PgCluster:
    """A throwaway Postgres cluster: ``initdb`` into a temporary directory, served on a
    free loopback port (and a socket in that directory, never the system's), stopped
    and started by the test. As root, the server runs as the ``postgres`` user
    (``initdb`` and ``postgres`` refuse root) through ``runuser``."""

    def __init__(self, bindir: Path, run_as: str | None) -> None:
        self.bindir = bindir
        self.run_as = run_as
        self.root = Path(tempfile.mkdtemp(prefix="mdm-reliability-pg-"))
        if run_as is not None:
            shutil.chown(self.root, user=run_as)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()

    def _cmd(self, tool: str, *args: str) -> list[str]:
        cmd = [str(self.bindir / tool), *args]
        return ["runuser", "-u", self.run_as, "--", *cmd] if self.run_as else cmd

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        out = subprocess.run(
            self._cmd(tool, *args), capture_output=True, text=True, timeout=timeout
        )
        if out.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
                f"\n--- server log ---\n{self.server_log()}"
            )

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-40000:]
        except OSError:
            return ""

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "logging_collector": "off",
        }
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# mdm reliability test\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def start(self) -> None:
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60")

    def stop(self, mode: str) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def _unavailable(reason: str) -> None:
    message = f"!!! SKIPPED: cannot run a Postgres cluster of the test's own: {reason}"
    if IN_CI:
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


@pytest.fixture
def own_postgres(request: pytest.FixtureRequest) -> Iterator[PgCluster]:
    """A running Postgres cluster of this test's own (see :class:`PgCluster`)."""
    backends = str(request.config.getoption("--backends"))
    if "postgres" not in backends and not IN_CI:
        pytest.skip(f"!!! SKIPPED: postgres is not among --backends ({backends})")
    bindir = _pg_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        _unavailable("no initdb/pg_ctl found (PATH, pg_config, /usr/lib/postgresql/*/bin)")
    assert bindir is not None
    run_as: str | None = None
    if os.geteuid() == 0:
        run_as = os.environ.get("MDM_TEST_PG_USER", "postgres")
        if shutil.which("runuser") is None:
            _unavailable("running as root and runuser is missing")
        try:
            pwd.getpwnam(run_as)
        except KeyError:
            _unavailable(f"running as root and there is no {run_as!r} user to run Postgres as")
    cluster = PgCluster(bindir, run_as)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def json_or_text(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
