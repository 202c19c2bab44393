"""One error body everywhere: ``{"error": CODE, "detail": ...}``.

FastAPI's own errors are re-rendered: unknown routes (404 ``not_found``), wrong
methods (405 ``method_not_allowed``), and payload validation (422
``validation_error``, whose ``detail`` lists ``{"pointer", "message"}`` with the JSON
pointer of the offending field in the body, or ``/<name>`` for a path, query or
header parameter, with ``in`` saying which).

A database that cannot be used right now (down, restarting, a connection lost
mid-request, the pool exhausted: :data:`mdm.store.db.UNAVAILABLE_ERRORS`) is 503
``database_unavailable`` with ``Retry-After``, never a 500, wherever the error is
raised (authentication, a route, the audit writer's driver connection); the driver's
message is logged by class name only (it may carry connection details).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from mdm.store.db import RETRY_AFTER_SECONDS, UNAVAILABLE_ERRORS, DBAPIError, is_unavailable

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class JsonResponse(Response):
    """JSON rendered by orjson (several times faster than the json module)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ErrorBody(BaseModel):
    error: str = Field(description="Stable machine-readable code")
    detail: Any = Field(None, description="Human-readable explanation")


class FieldError(BaseModel):
    pointer: str = Field(description="JSON pointer of the field (body) or /name (parameter)")
    message: str
    location: str = Field("body", alias="in", description="body, path, query or header")


class ValidationErrorBody(BaseModel):
    error: str = Field("validation_error")
    detail: list[FieldError]


def error_response(
    status: int, code: str, detail: Any, headers: dict[str, str] | None = None
) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def _escape(part: Any) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer_of(loc: tuple[Any, ...] | list[Any]) -> tuple[str, str]:
    """FastAPI's ``loc`` -> (JSON pointer, location)."""
    parts = list(loc)
    where = str(parts.pop(0)) if parts and parts[0] in ("body", "path", "query", "header") else ""
    # Pydantic names union members / validators in loc ("function-after[...]"): drop them.
    parts = [p for p in parts if not (isinstance(p, str) and "[" in p and p.endswith("]"))]
    return "/" + "/".join(_escape(p) for p in parts), where or "body"


def validation_detail(errors: list[Any]) -> list[dict[str, str]]:
    out = []
    for err in errors:
        pointer, where = pointer_of(tuple(err.get("loc", ())))
        message = str(err.get("msg", "invalid"))
        out.append({"pointer": pointer if pointer != "/" else "", "message": message, "in": where})
    return out


def database_unavailable(exc: BaseException) -> JsonResponse:
    """503 ``database_unavailable`` with ``Retry-After`` for an error that
    :func:`mdm.store.db.is_unavailable` accepts."""
    log.warning("database unavailable: %s", type(getattr(exc, "orig", None) or exc).__name__)
    return error_response(
        503,
        "database_unavailable",
        "The database is unavailable; retry later.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install_error_handlers(app: FastAPI) -> None:
    async def _db_unavailable(_request: Request, exc: Exception) -> Response:
        return database_unavailable(exc)

    for cls in UNAVAILABLE_ERRORS:
        app.add_exception_handler(cls, _db_unavailable)

    @app.exception_handler(DBAPIError)
    async def _dbapi(_request: Request, exc: DBAPIError) -> Response:
        if is_unavailable(exc):  # e.g. a driver error SQLAlchemy saw as a disconnect
            return database_unavailable(exc)
        raise exc  # a bug, not an outage: the server's 500

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        return JsonResponse(
            {"error": "validation_error", "detail": validation_detail(list(exc.errors()))},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, "error")
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such route"
        elif exc.status_code == 405:
            detail = "this route does not accept that method"
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, detail, headers=headers)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing, unknown or revoked API key"},
    403: {"model": ErrorBody, "description": "The key lacks the scope"},
    413: {"model": ErrorBody, "description": "Request body too large"},
    422: {"model": ValidationErrorBody, "description": "Payload validation failed"},
    429: {
        "model": ErrorBody,
        "description": "Rate limit exceeded; see Retry-After",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
    503: {"model": ErrorBody, "description": "Database or audit trail unavailable"},
}


def responses(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """The common error responses plus ``codes`` (each with the error body)."""
    out = dict(ERROR_RESPONSES)
    for code in codes:
        out[code] = {"model": ErrorBody, "description": described.get(f"r{code}", "Error")}
    return out
