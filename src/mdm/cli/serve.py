"""``mdm serve``: the API (and, later, the stewards' console) under uvicorn."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import typer


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind"),
    port: int = typer.Option(8000, help="Port"),
    workers: int = typer.Option(1, help="Worker processes"),
    migrate: bool = typer.Option(True, help="Upgrade the schema to head first"),
) -> None:
    """Serve the registry over HTTP."""
    from mdm.config import get_settings

    if migrate:
        from mdm.store.migrate import upgrade

        upgrade(get_settings().database_url)
    run_uvicorn(
        "mdm.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,  # access logs would put personal IDs from URLs into logs
    )


def run_uvicorn(app: str, *, workers: int = 1, **options: Any) -> None:
    """``uvicorn.run`` with ``TCP_NODELAY`` on every connection, also with workers.

    With several workers uvicorn binds the listening socket itself, without a
    protocol number, and asyncio then leaves Nagle's algorithm on for the accepted
    connections: a response written in two parts (headers, body) waits for the
    client's delayed ACK, about 40 ms on Linux, on *every* request. The option set on
    the listening socket is inherited by the connections it accepts.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    if workers <= 1:
        uvicorn.run(app, **options)
        return
    config = uvicorn.Config(app, workers=workers, **options)
    sock = config.bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[sock]).run()
