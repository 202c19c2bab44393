"""The console's error pages: its own HTML in the steward's language, never the API's
JSON. A mounted application's errors never reach the parent's handlers."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mdm.exceptions import MDMError
from mdm.steward.deps import COOKIE, ConsoleState, CsrfFailed, LoginRequired
from mdm.steward.i18n import translate
from mdm.steward.params import BadParameter
from mdm.steward.rendering import PREFIX, request_language
from mdm.store.db import RETRY_AFTER_SECONDS, UNAVAILABLE_ERRORS, DBAPIError, is_unavailable


def _error_page(request: Request, status: int, message: str) -> HTMLResponse:
    state: ConsoleState = request.app.state.console
    return state.templates.error_page(request, status, message)


def _bad_parameter_message(names: list[str], allowed: tuple[str, ...], request: Request) -> str:
    lang = request_language(request)
    parts = [translate("error.bad_request", lang)]
    parts += [translate("error.bad_parameter", lang).format(name=n) for n in dict.fromkeys(names)]
    if allowed:
        parts.append(translate("error.allowed", lang).format(allowed=", ".join(allowed)))
    return " ".join(parts)


async def login_required(request: Request, exc: LoginRequired) -> Response:
    """To the login page, which comes back here (to the home page after a POST)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = PREFIX + "/"
    query = {"next": target}
    if exc.expired:
        query["expired"] = "1"
    response = RedirectResponse(f"{PREFIX}/login?{urlencode(query)}", status_code=303)
    if exc.expired:
        response.delete_cookie(COOKIE, path=PREFIX)
    return response


async def csrf_failed(request: Request, _exc: CsrfFailed) -> Response:
    return _error_page(request, 403, translate("error.csrf", request_language(request)))


async def bad_parameter(request: Request, exc: BadParameter) -> Response:
    return _error_page(request, 400, _bad_parameter_message([exc.name], exc.allowed, request))


async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
    # FastAPI's default is a JSON 422; the console answers with its own page.
    names = [str(e["loc"][-1]) for e in exc.errors() if e.get("loc")]
    return _error_page(request, 400, _bad_parameter_message(names, (), request))


async def mdm_error(request: Request, exc: MDMError) -> Response:
    lang = request_language(request)
    message = translate("error.forbidden", lang) if exc.status_code == 403 else ""
    if exc.status_code == 400:
        message = translate("error.bad_request", lang)
    response = _error_page(request, exc.status_code, f"{message} {exc.detail}".strip())
    if exc.status_code == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


async def db_unavailable(request: Request, exc: Exception) -> Response:
    # Without this, a database outage is a 500 (and a reset connection) on every page.
    if not is_unavailable(exc):
        raise exc
    response = _error_page(
        request, 503, translate("error.database_unavailable", request_language(request))
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def install(console: FastAPI) -> None:
    console.add_exception_handler(LoginRequired, login_required)  # type: ignore[arg-type]
    console.add_exception_handler(CsrfFailed, csrf_failed)  # type: ignore[arg-type]
    console.add_exception_handler(BadParameter, bad_parameter)  # type: ignore[arg-type]
    console.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    console.add_exception_handler(MDMError, mdm_error)  # type: ignore[arg-type]
    for cls in (*UNAVAILABLE_ERRORS, DBAPIError):
        console.add_exception_handler(cls, db_unavailable)
