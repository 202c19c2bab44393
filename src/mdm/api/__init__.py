"""The agency API under ``/v1``: lookup, history, cross-references, batch lookup,
search and registration, behind API keys, scopes, masking, rate limits and the
audit trail (docs/api.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from mdm.api.auth import RateLimited, clear_auth_cache
from mdm.api.errors import error_response, install_error_handlers
from mdm.api.middleware import BodySizeLimit
from mdm.api.openapi_links import install_links
from mdm.config import get_settings
from mdm.services.audit import close_writers

__all__ = ["clear_auth_cache", "install"]


def _router() -> APIRouter:
    from mdm.api import entities, events, records, search, subscriptions

    router = APIRouter(prefix="/v1")
    router.include_router(entities.router)
    router.include_router(search.router)
    router.include_router(records.router)
    router.include_router(events.router)
    router.include_router(subscriptions.router)
    return router


def install(app: FastAPI) -> None:
    """Mount the ``/v1`` routers, the error rendering and the body-size limit."""
    app.include_router(_router())
    install_error_handlers(app)
    install_links(app)

    @app.exception_handler(RateLimited)
    async def _rate_limited(_request: Request, exc: RateLimited) -> Response:
        return error_response(
            429, exc.code, exc.detail, headers={"Retry-After": str(exc.retry_after)}
        )

    app.add_middleware(BodySizeLimit, max_bytes=get_settings().api_max_body_bytes)
    if get_settings().api_fast_reads:
        from mdm.api.fastpath import FastReads

        app.add_middleware(FastReads, fastapi_app=app)  # outermost: added last

    inner: Callable[[Any], Any] = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            try:
                yield state
            finally:
                close_writers()

    app.router.lifespan_context = lifespan
