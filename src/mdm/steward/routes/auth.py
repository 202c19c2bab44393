"""Logging in and out. The login form has no session yet: its CSRF token is a
double-submit cookie, checked before the password is."""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mdm.services import accounts, audit
from mdm.steward.deps import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    ConsoleSettings,
    ConsoleTemplates,
    Lang,
    Sessions,
    ViewerForm,
)
from mdm.steward.i18n import translate
from mdm.steward.rendering import PREFIX
from mdm.store.db import unit_of_work

router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request,
    lang: Lang,
    cfg: ConsoleSettings,
    templates: ConsoleTemplates,
    next: str = "",
    expired: str = "",
) -> Response:
    token = secrets.token_urlsafe(24)
    response = templates.render(
        request,
        "login.html",
        lang,
        next=next,
        login_csrf=token,
        message=translate("login.expired", lang) if expired else "",
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=cfg.steward_cookie_secure,
        path=PREFIX,
    )
    return response


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    lang: Lang,
    cfg: ConsoleSettings,
    templates: ConsoleTemplates,
    sessions: Sessions,
    username: str = Form(""),
    password: str = Form(""),
    csrf_token: str = Form(""),
    next: str = Form(""),
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not cookie or not hmac.compare_digest(cookie, csrf_token):
        return templates.error_page(request, 403, translate("error.csrf", lang))
    address = request.client.host if request.client else "?"
    with unit_of_work(sessions, write=True) as db:
        try:
            steward = accounts.authenticate(db, username, password, address=address, settings=cfg)
        except accounts.LoginThrottled:
            steward, status, key = None, 429, "login.throttled"
        else:
            status, key = 401, "login.failed"
        audit.append(
            db.connection(),
            [
                audit.AuditEntry(
                    "steward",
                    f"steward:{username[:100]}",
                    "console.login" if steward else "console.login_failed",
                    details={"address": address},
                )
            ],
        )
        if steward is None:
            # The counters and the audit row are committed with this unit of work.
            response: Response = templates.render(
                request,
                "login.html",
                lang,
                status=status,
                next=next,
                login_csrf=cookie,
                message=translate(key, lang),
            )
            return response
        token, _csrf = accounts.start_session(db, steward)
    target = next if next.startswith(PREFIX + "/") and "//" not in next else PREFIX + "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=cfg.steward_cookie_secure,
        path=PREFIX,
        max_age=int(cfg.steward_session_absolute_hours * 3600),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return response


@router.post("/logout")
def logout(page: ViewerForm) -> Response:
    with page.open() as c:
        accounts.end_session(c.db, c.user.token_hash)
        c.audit("console.logout")
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response
