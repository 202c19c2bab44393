"""A connection pool that stays exhausted past ``pool_timeout`` is an outage of the
database as far as a request can tell: 503 ``database_unavailable`` with
``Retry-After`` and the one error body, not a 500 (SQLAlchemy's ``TimeoutError`` is
not a DBAPI error), and the next request after a connection is free succeeds.
"""

from __future__ import annotations

import httpx

from mdm.api import clear_auth_cache
from mdm.app import create_app
from mdm.store.db import make_engine
from tests.api.conftest import serving
from tests.reliability.conftest import make_api_clients


def test_an_exhausted_connection_pool_answers_503_then_recovers(
    backend: str, fresh_db_url: str
) -> None:
    key = make_api_clients(fresh_db_url, ["pool-reader"], ["citizen:read"])["pool-reader"]
    engine = make_engine(fresh_db_url, pool_size=1, max_overflow=0, pool_timeout=0.5)
    app = create_app()
    app.state.mdm_engine = engine
    clear_auth_cache()  # the key must be looked up in the database
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with serving(app) as base, httpx.Client(base_url=base, timeout=30) as client:
            with engine.connect():  # the pool's only connection, held
                busy = client.get("/v1/xrefs/nowhere/K1", headers=headers)
            assert busy.status_code == 503, busy.text
            assert busy.json() == {
                "error": "database_unavailable",
                "detail": "The database is unavailable; retry later.",
            }
            assert int(busy.headers["Retry-After"]) >= 1
            free = client.get("/v1/xrefs/nowhere/K1", headers=headers)
            assert free.status_code == 404, free.text
            assert free.json()["error"] == "xref_not_found"
    finally:
        clear_auth_cache()
        engine.dispose()
