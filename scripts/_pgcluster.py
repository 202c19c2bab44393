"""A throwaway Postgres cluster of one's own (``initdb`` into a temporary directory),
for what must not touch the machine's shared server: the reliability tests stop and
start it, and ``bench_api.py --shared-buffers`` sizes its memory as a deployment
would. Used by ``tests/reliability/conftest.py`` and the benchmarks.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from contextlib import suppress
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_as_user() -> str | None:
    """The user the server runs as: None unless this process is root (``initdb`` and
    ``postgres`` refuse root), then ``MDM_TEST_PG_USER`` or ``postgres``. Raises
    RuntimeError naming what is missing."""
    if os.geteuid() != 0:
        return None
    user = os.environ.get("MDM_TEST_PG_USER", "postgres")
    if shutil.which("runuser") is None:
        raise RuntimeError("running as root and runuser is missing")
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise RuntimeError(
            f"running as root and there is no {user!r} user to run Postgres as"
        ) from None
    return user


def pg_bindir() -> Path | None:
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
        self.root = Path(tempfile.mkdtemp(prefix="mdm-own-pg-"))
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

    def init(self, **overrides: str) -> None:
        """``initdb`` and the settings; ``overrides`` are more ``postgresql.conf``
        settings (for example ``shared_buffers="4GB"``)."""
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
            **overrides,
        }
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# mdm: a cluster of its own\n")
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
