"""`/healthz` and `/readyz` over real HTTP, with the database taken away and back."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from mdm.store import migrate
from tests.servers import running_server
from tests.tcp_proxy import TcpProxy


def _wait_for(url: str, status: int, timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(url, timeout=10)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_readyz_follows_postgres_availability_without_restart(
    fresh_db_url: str, backend: str
) -> None:
    if backend != "postgres":
        return _readyz_sqlite_volume(fresh_db_url)
    url = make_url(fresh_db_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    with running_server(proxied) as base:
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["database"] == "postgresql"

        proxy.stop()
        down = _wait_for(f"{base}/readyz", 503)
        assert down.status_code == 503
        body = down.json()
        assert body["error"] == "database_unavailable"
        assert "unreachable" in body["detail"]
        assert down.headers["Retry-After"]
        assert httpx.get(f"{base}/healthz").status_code == 200  # the process itself is fine

        proxy.start()
        back = _wait_for(f"{base}/readyz", 200)
        assert back.status_code == 200, back.text
    proxy.stop()


def _readyz_sqlite_volume(fresh_db_url: str) -> None:
    """SQLite: the database file's volume is missing, then mounted."""
    source = Path(fresh_db_url.removeprefix("sqlite:///"))
    volume = source.parent / "volume-not-mounted"
    db_path = volume / "mdm.db"
    with running_server(f"sqlite:///{db_path}") as base:
        down = _wait_for(f"{base}/readyz", 503)
        assert down.status_code == 503
        assert down.json()["error"] == "database_unavailable"

        volume.mkdir()
        db_path.write_bytes(source.read_bytes())
        back = _wait_for(f"{base}/readyz", 200)
        assert back.status_code == 200, back.text
        assert back.json()["database"] == "sqlite"
        assert migrate.current(f"sqlite:///{db_path}") is not None
