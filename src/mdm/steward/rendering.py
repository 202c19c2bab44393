"""The console's HTML: Jinja2 templates with its filters, the language of a request,
and the headers every page carries (no caching, no framing, a strict CSP)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from mdm.services import accounts
from mdm.steward.i18n import DEFAULT_LANG, LANGS, translate

HERE = Path(__file__).parent
PREFIX = "/steward"
LANG_COOKIE = "mdm_lang"


def request_language(request: Request) -> str:
    """``?lang=`` if it names a language, else the cookie's, else Vietnamese."""
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return str(asked)
    cookie = request.cookies.get(LANG_COOKIE)
    return cookie if cookie in LANGS else DEFAULT_LANG


def _fmt(value: Any) -> str:
    """A standardized value as a steward reads it."""
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, dict):
        if "commune_name" in value or "province_name" in value or "street" in value:
            now = ", ".join(
                str(value[k]) for k in ("street", "commune_name", "province_name") if value.get(k)
            )
            old = ", ".join(
                str(value[k])
                for k in ("legacy_commune_name", "legacy_district_name", "legacy_province_name")
                if value.get(k)
            )
            text = now or "—"
            if old:
                text += f" (cũ/former: {old})"
            if value.get("ambiguous"):
                text += " ⚠"
            return text
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


class Templates:
    """Renders the console's pages; one per application (on ``app.state``)."""

    def __init__(self, directory: Path = HERE / "templates") -> None:
        self.env = Environment(
            loader=FileSystemLoader(directory),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["fmt"] = _fmt
        self.env.filters["when"] = _when

    def render(
        self,
        request: Request,
        template: str,
        lang: str,
        status: int = 200,
        user: accounts.SessionInfo | None = None,
        **data: Any,
    ) -> HTMLResponse:
        def t(key: str) -> str:
            return translate(key, lang)

        query = dict(request.query_params)
        query.pop("lang", None)
        other = "en" if lang == "vi" else "vi"
        html = self.env.get_template(template).render(
            t=t,
            lang=lang,
            user=user,
            csrf=user.csrf_token if user else "",
            prefix=PREFIX,
            request=request,
            lang_url=f"{request.url.path}?{urlencode({**query, 'lang': other})}",
            **data,
        )
        response = HTMLResponse(html, status_code=status)
        if request.query_params.get("lang") in LANGS:
            response.set_cookie(
                LANG_COOKIE, lang, max_age=365 * 86400, path=PREFIX, samesite="strict"
            )
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'"
        )
        return response

    def error_page(self, request: Request, status: int, message: str) -> HTMLResponse:
        return self.render(
            request,
            "error.html",
            request_language(request),
            status=status,
            message=message,
            status_code=status,
        )
