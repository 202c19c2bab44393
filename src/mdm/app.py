"""The FastAPI application: health checks, error rendering; routers mount here."""

from __future__ import annotations

import gc
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mdm import __version__
from mdm.exceptions import MDMError
from mdm.store.db import RETRY_AFTER_SECONDS, UNAVAILABLE_ERRORS, DBAPIError, get_engine
from mdm.store.repositories import health

log = logging.getLogger(__name__)

#: What makes ``/readyz`` answer 503: any driver error, a missing SQLite volume, and
#: the errors that mean the database cannot be used right now (a pool timeout too).
_NOT_READY: tuple[type[Exception], ...] = (DBAPIError, OSError, *UNAVAILABLE_ERRORS)


def error_body(code: str, detail: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail}


def create_app() -> FastAPI:
    app = FastAPI(
        title="mdm: national golden-record registry",
        version=__version__,
        description="Sổ đăng ký bản ghi gốc quốc gia / National golden-record registry.",
    )

    @app.exception_handler(MDMError)
    async def _mdm_error(_request: Request, exc: MDMError) -> JSONResponse:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status_code == 503 else None
        return JSONResponse(
            error_body(exc.code, exc.detail), status_code=exc.status_code, headers=headers
        )

    # Database outages (503 database_unavailable + Retry-After): mdm.api.errors.

    @app.get("/healthz", tags=["health"], summary="Liveness: the process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: the database answers",
        responses={503: {"description": "The database is unreachable"}},
    )
    def readyz() -> JSONResponse:
        engine = get_engine()
        try:
            with engine.connect() as conn:
                health.ping(conn)
        except _NOT_READY as exc:
            log.warning("readiness check failed: %s", type(exc).__name__)
            return JSONResponse(
                error_body(
                    "database_unavailable",
                    f"The database ({engine.dialect.name}) is unreachable: "
                    f"{type(getattr(exc, 'orig', exc)).__name__}. Retry later.",
                ),
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return JSONResponse({"status": "ready", "database": engine.dialect.name})

    from mdm.api import install as install_api

    install_api(app)

    from mdm.steward.app import create_console

    app.mount("/steward", create_console())

    from mdm.api.middleware import HeaderSizeLimit
    from mdm.config import get_settings

    # Outermost: also for the console and the health checks. The registry's own
    # server refuses such heads before reading them (mdm.http_server); this is for others.
    app.add_middleware(HeaderSizeLimit, max_bytes=get_settings().http_max_header_bytes)
    return app


def create_served_app() -> FastAPI:
    """The application as a server process runs it (``mdm serve``, ``mdm demo``).

    After the app is built, every object alive (modules, routes, models, the
    OpenAPI schema) is moved out of the cyclic garbage collector's reach
    (:func:`gc.freeze`): they live as long as the process, and without this every
    full collection walks them again. A request that allocates much (a batch of
    1,000 lookups builds thousands of objects) triggers such collections often:
    validating one batch body takes about 1.3 ms with the objects frozen and 6.5 ms
    without. Tests build apps with :func:`create_app`, which does not freeze.
    """
    app = create_app()
    gc.freeze()
    return app
