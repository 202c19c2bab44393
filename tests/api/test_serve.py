"""`mdm serve --workers N` answers without the 40 ms Nagle / delayed-ACK stall."""

from __future__ import annotations

import socket
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import psutil

from tests.conftest import Databases
from tests.servers import running_server, serving


def test_multi_worker_server_sets_tcp_nodelay(databases: Databases) -> None:
    with running_server(databases.fresh("sqlite"), "--workers", "2") as base:
        url = urlparse(base)
        with socket.create_connection((url.hostname, url.port)) as conn:
            request = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
            latencies = []
            for _ in range(25):
                started = time.perf_counter()
                conn.sendall(request)
                data = b""
                while not data.endswith(b'{"status":"ok"}'):
                    chunk = conn.recv(65536)
                    assert chunk, "connection closed"
                    data += chunk
                latencies.append((time.perf_counter() - started) * 1000)
    # with Nagle on, every response waits ~40 ms for the client's delayed ACK
    assert statistics.median(latencies) < 20, latencies


def test_keep_alive_connections_spread_over_the_workers(databases: Databases) -> None:
    """Each worker listens on a socket of its own (SO_REUSEPORT): long-lived client
    connections are spread over the workers by the kernel, instead of the first free
    worker accepting them all (seen: 31 of 32 in one worker). With 24 connections,
    all in one of two workers happens by chance about once in 10^7 runs."""
    db = databases.fresh("sqlite")
    with (
        tempfile.TemporaryDirectory(prefix="mdm-serve-") as tmp,
        serving(db, Path(tmp) / "serve.log", "--workers", "2") as server,
    ):
        url = urlparse(server.base)
        conns = [socket.create_connection((url.hostname, url.port)) for _ in range(24)]
        try:
            for conn in conns:
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            for conn in conns:
                data = b""
                while not data.endswith(b'{"status":"ok"}'):
                    chunk = conn.recv(65536)
                    assert chunk, "connection closed"
                    data += chunk
            workers = psutil.Process(server.proc.pid).children(recursive=True)
            held = {
                w.pid: sum(
                    1
                    for c in w.net_connections(kind="tcp")
                    if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == url.port
                )
                for w in workers
            }
        finally:
            for conn in conns:
                conn.close()
    serving_workers = [n for n in held.values() if n > 0]
    assert sum(held.values()) == 24, held
    assert len(serving_workers) == 2, held
