"""Oversized request heads: the server stops reading a request line plus headers
past ``MDM_HTTP_MAX_HEADER_BYTES`` (default 16 KiB) and answers 431 with the
registry's error body, before the head has ended; the application refuses the same
heads under a server that does not limit them. Over real HTTP (raw sockets: an HTTP
client library would refuse to send such heads or would wait for the whole of it)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from fastapi import FastAPI

from mdm.app import create_app
from mdm.config import Settings
from mdm.exceptions import ConfigError
from tests.conftest import Databases
from tests.servers import free_port, running_server

KIB = 1024


def _exchange(base: str, request: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` on a new connection, read until the server closes it (or
    ``timeout``: a server still waiting for the rest of a head never answers)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may close while we still send
            sock.sendall(request)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            pytest.fail(f"no answer within {timeout} s; got {data[:200]!r}")
        except ConnectionResetError:
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0] else 0
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def _get(path: str = "/healthz", header_bytes: int = 0, *, end: bool = True) -> bytes:
    head = f"GET {path} HTTP/1.1\r\nHost: mdm\r\nConnection: close\r\n".encode()
    if header_bytes:
        head += b"X-Filler: " + b"a" * header_bytes + b"\r\n"
    return head + (b"\r\n" if end else b"")


def _assert_431(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 431, (status, body[:200])
    assert headers.get("content-type") == "application/json"
    assert json.loads(body)["error"] == "header_too_large"


def test_server_refuses_a_large_head_before_reading_it(databases: Databases) -> None:
    with running_server(databases.fresh("sqlite")) as base:
        # a normal request, and one just under the limit, are served
        assert _exchange(base, _get())[0] == 200
        assert _exchange(base, _get(header_bytes=15 * KIB))[0] == 200
        # 64 KiB of header: 431 with the registry's error body
        _assert_431(*_exchange(base, _get(header_bytes=64 * KIB)))
        # a head that never ends is answered as soon as it passes the limit (the
        # server does not wait for the rest of it), and the connection is closed
        _assert_431(*_exchange(base, _get(header_bytes=64 * KIB, end=False), timeout=5))
        # a long request line counts too
        _assert_431(*_exchange(base, _get("/healthz?q=" + "x" * 20 * KIB)))
        # a small head whose body arrives in the same packet is not a large head
        body = b"username=" + b"u" * 64 * KIB
        post = (
            b"POST /steward/login HTTP/1.1\r\nHost: mdm\r\nConnection: close\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert _exchange(base, post)[0] == 403  # no login CSRF token: refused, not 431
        # the server still answers afterwards
        assert _exchange(base, _get())[0] == 200


def test_the_limit_is_a_setting(databases: Databases) -> None:
    env = {"MDM_HTTP_MAX_HEADER_BYTES": str(4 * KIB)}
    with running_server(databases.fresh("sqlite"), env=env) as base:
        assert _exchange(base, _get(header_bytes=3 * KIB))[0] == 200
        _assert_431(*_exchange(base, _get(header_bytes=6 * KIB)))


@contextmanager
def _plain_uvicorn(app: FastAPI) -> Iterator[str]:
    """uvicorn with its own defaults (httptools, which limits no head), in a thread."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_application_refuses_large_heads_under_another_server() -> None:
    """Under a server that does not limit heads, the app's own check answers the
    same 431 (the head has been read by then, but goes no further)."""
    with _plain_uvicorn(create_app()) as base:
        assert _exchange(base, _get())[0] == 200
        _assert_431(*_exchange(base, _get(header_bytes=20 * KIB)))
        _assert_431(*_exchange(base, _get("/steward/login?next=" + "x" * 20 * KIB)))
        assert _exchange(base, _get(header_bytes=10 * KIB))[0] == 200


def test_trusted_proxies_are_addresses_or_networks() -> None:
    from mdm.http_server import trusted_proxies

    assert trusted_proxies(Settings(trusted_proxies="")) == []
    assert trusted_proxies(Settings(trusted_proxies=" 10.0.0.7, 10.1.2.3/16 ,::1")) == [
        "10.0.0.7/32",
        "10.1.0.0/16",
        "::1/128",
    ]
    with pytest.raises(ConfigError, match=r"proxy\.example"):
        trusted_proxies(Settings(trusted_proxies="10.0.0.7,proxy.example"))
