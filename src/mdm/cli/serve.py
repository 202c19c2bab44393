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
    """``uvicorn.run`` with ``TCP_NODELAY`` on every connection, also with workers,
    and with several workers a listening socket of its own per worker; with the
    registry's head-size limit and proxy trust (:func:`mdm.http_server.uvicorn_options`)
    unless ``options`` say otherwise.

    * With several workers uvicorn binds the listening socket itself, without a
      protocol number, and asyncio then leaves Nagle's algorithm on for the accepted
      connections: a response written in two parts (headers, body) waits for the
      client's delayed ACK, about 40 ms on Linux, on *every* request. The option set
      on the listening socket is inherited by the connections it accepts.
    * With one shared listening socket, the worker whose event loop is free first
      accepts every connection waiting: measured with wrk, 31 of 32 keep-alive
      connections sit in one worker while the other idles, so agencies' long-lived
      connections would get one core. Each worker listens on a socket of its own, all
      bound to the same address with ``SO_REUSEPORT``, and the kernel spreads new
      connections over them (by a hash of the connection's addresses). A worker that
      is restarted gets its predecessor's socket back, with the connections waiting
      on it. Where ``SO_REUSEPORT`` does not exist, the workers share one socket.
    """
    import uvicorn

    from mdm.http_server import uvicorn_options

    options = {**uvicorn_options(), **options}
    if workers <= 1:
        uvicorn.run(app, **options)
        return
    config = uvicorn.Config(app, workers=workers, **options)
    if hasattr(socket, "SO_REUSEPORT") and config.uds is None and config.fd is None:
        sockets = _reuseport_sockets(config.host, config.port, workers, config.backlog)
    else:
        shared = config.bind_socket()
        if shared.family in (socket.AF_INET, socket.AF_INET6):
            shared.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sockets = [shared] * workers
    with contextlib.suppress(KeyboardInterrupt):
        _workers_class()(config, sockets).run()


def _reuseport_sockets(host: str, port: int, n: int, backlog: int) -> list[socket.socket]:
    """``n`` TCP sockets bound to ``(host, port)`` with ``SO_REUSEPORT`` and
    ``TCP_NODELAY`` (port 0: the first one's port for all)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    out: list[socket.socket] = []
    for _ in range(n):
        sock = socket.socket(family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        # Listening from the start: a connection the kernel hashes to a worker still
        # starting waits in its socket's backlog instead of going to another one.
        sock.listen(backlog)
        port = sock.getsockname()[1]
        sock.set_inheritable(True)
        out.append(sock)
    return out


def _workers_class() -> type:
    from uvicorn.supervisors.multiprocess import Multiprocess, Process

    class Workers(Multiprocess):
        """uvicorn's supervisor (restarts, health checks, signals), with worker ``i``
        always given listening socket ``i``: the three places that start a worker
        are uvicorn's own, but for the socket list they pass."""

        def __init__(self, config: Any, sockets: list[socket.socket]) -> None:
            super().__init__(config, sockets)
            self.per_worker = sockets

        def _new(self, idx: int) -> Process:
            process = Process(self.config, [self.per_worker[idx]])
            process.start()
            return process

        def init_processes(self) -> None:
            for idx in range(self.processes_num):
                self.processes.append(self._new(idx))

        def restart_all(self) -> None:
            for idx, old in enumerate(self.processes):
                if self.should_exit.is_set():
                    return
                new = self._new(idx)
                if not new.wait_until_ready(
                    self.config.timeout_worker_healthcheck, self.should_exit
                ):
                    new.kill()
                    new.join()
                    return
                old.terminate()
                old.join()
                self.processes[idx] = new

        def keep_subprocess_alive(self) -> None:
            from uvicorn.config import STARTUP_FAILURE

            if self.should_exit.is_set():
                return
            for idx, process in enumerate(self.processes):
                if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                    continue
                process.kill()
                process.join()
                if process.exitcode == STARTUP_FAILURE:
                    self.should_exit.set()  # the app or the socket is broken: stop
                    return
                if self.should_exit.is_set():
                    return
                self.processes[idx] = self._new(idx)

    return Workers
