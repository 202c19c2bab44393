"""Run the real `mdm serve` in a subprocess for HTTP tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@contextmanager
def serving(
    database_url: str, log: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """`mdm serve` in a subprocess, its output in the file ``log``: a pipe nobody reads
    fills up under a flood of log lines (an outage) and then blocks the server."""
    port = free_port()
    environ = {**os.environ, "MDM_DATABASE_URL": database_url, **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mdm", "serve", "--port", str(port), "--no-migrate", *args],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{server.base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    output = server.output()[-20_000:]
                    raise RuntimeError(f"server did not start:\n{output}") from None
                time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_server(
    database_url: str, *extra_args: str, env: dict[str, str] | None = None
) -> Iterator[str]:
    """:func:`serving` with its log in a temporary directory; yields the base URL."""
    with (
        tempfile.TemporaryDirectory(prefix="mdm-serve-") as tmp,
        serving(database_url, Path(tmp) / "serve.log", *extra_args, env=env) as server,
    ):
        yield server.base
