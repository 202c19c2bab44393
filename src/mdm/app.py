"""The FastAPI application: health checks, error rendering; routers mount here."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from mdm import __version__
from mdm.exceptions import MDMError
from mdm.store.db import get_engine

log = logging.getLogger(__name__)


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
        headers = {"Retry-After": "5"} if exc.status_code == 503 else None
        return JSONResponse(
            error_body(exc.code, exc.detail), status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(OperationalError)
    async def _db_down(_request: Request, exc: OperationalError) -> JSONResponse:
        # Never echo the driver's message: it may carry connection details.
        log.warning("database unavailable: %s", type(exc.orig).__name__)
        return JSONResponse(
            error_body("database_unavailable", "The database is unavailable; retry later."),
            status_code=503,
            headers={"Retry-After": "5"},
        )

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
                conn.execute(text("SELECT 1"))
        except (DBAPIError, OSError) as exc:
            log.warning("readiness check failed: %s", type(exc).__name__)
            return JSONResponse(
                error_body(
                    "database_unavailable",
                    f"The database ({engine.dialect.name}) is unreachable: "
                    f"{type(getattr(exc, 'orig', exc)).__name__}. Retry later.",
                ),
                status_code=503,
                headers={"Retry-After": "5"},
            )
        return JSONResponse({"status": "ready", "database": engine.dialect.name})

    from mdm.api import install as install_api

    install_api(app)

    from mdm.steward.app import create_console

    app.mount("/steward", create_console())
    return app
