"""The data stewards' console: a FastAPI sub-application mounted at ``/steward``,
rendering HTML on the server (Jinja2), with its own authentication (server-side
sessions, CSRF tokens on every POST) and its own error pages.

Each request is one unit of work: the handler opens it (:meth:`deps.Page.open`),
services flush, and the handler's ``with`` block commits (or rolls back on any
error). The pages are in :mod:`mdm.steward.routes`, their dependencies in
:mod:`mdm.steward.deps`.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from mdm.config import Settings, get_settings
from mdm.steward import errors
from mdm.steward.deps import COOKIE, LOGIN_CSRF_COOKIE, ConsoleState
from mdm.steward.rendering import HERE, LANG_COOKIE, PREFIX
from mdm.steward.routes import ROUTERS
from mdm.store.db import Engine

__all__ = ["COOKIE", "LANG_COOKIE", "LOGIN_CSRF_COOKIE", "PREFIX", "create_console"]


def create_console(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The console application. Without ``engine`` it works on the process-wide
    engine (:func:`mdm.store.db.get_engine`), looked up on each request."""
    console = FastAPI(
        title="mdm stewards' console", docs_url=None, redoc_url=None, openapi_url=None
    )
    console.state.console = ConsoleState.build(settings or get_settings(), engine)
    console.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    errors.install(console)
    for router in ROUTERS:
        console.include_router(router)
    return console
