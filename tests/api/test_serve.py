"""`mdm serve --workers N` answers without the 40 ms Nagle / delayed-ACK stall."""

from __future__ import annotations

import socket
import statistics
import time
from urllib.parse import urlparse

from tests.conftest import Databases
from tests.servers import running_server


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
