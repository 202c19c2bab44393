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

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    database_url: str, *extra_args: str, env: dict[str, str] | None = None
) -> Iterator[str]:
    port = free_port()
    environ = {**os.environ, "MDM_DATABASE_URL": database_url, **(env or {})}
    # The server's output goes to a file, not a pipe: nobody reads a pipe while the
    # test runs, and a server that logs a lot (an outage) would block once it filled.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "mdm", "serve", "--port", str(port), "--no-migrate", *extra_args],
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    out = log.read().decode(errors="replace")[-20_000:]
                    raise RuntimeError(f"server did not start:\n{out}") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
