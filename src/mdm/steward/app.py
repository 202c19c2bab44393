"""The data stewards' console: a FastAPI sub-application mounted at ``/steward``,
rendering HTML on the server (Jinja2), with its own authentication (server-side
sessions, CSRF tokens on every POST) and its own error pages.

Each request is one unit of work: the handler opens it, services flush, and the
handler's ``with`` block commits (or rolls back on any error).
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from mdm.config import get_settings
from mdm.domain.canonical_id import parse_canonical_id
from mdm.domain.standards import STANDARDS
from mdm.exceptions import BadRequest, Forbidden, MDMError
from mdm.services import audit, quality, review
from mdm.services.history import get_entity, history
from mdm.services.merge import preview_merge
from mdm.steward import accounts, charts
from mdm.steward import search as console_search
from mdm.steward.i18n import DEFAULT_LANG, LANGS, translate
from mdm.store.db import (
    RETRY_AFTER_SECONDS,
    UNAVAILABLE_ERRORS,
    is_unavailable,
    unit_of_work,
)
from mdm.store.models import ENTITY_TYPES, utcnow
from mdm.store.repositories import entities as repo

HERE = Path(__file__).parent
COOKIE = "mdm_steward"
LOGIN_CSRF_COOKIE = "mdm_login_csrf"
LANG_COOKIE = "mdm_lang"
PREFIX = "/steward"
BANDS = {
    "": (None, None),
    "0.99-1": (0.99, None),
    "0.95-0.99": (0.95, 0.99),
    "0.9-0.95": (0.9, 0.95),
    "0-0.9": (None, 0.9),
}
#: The largest row ID either database stores (a signed 64-bit integer): larger
#: numbers in a URL or a form are refused before they reach a driver.
MAX_ID = 2**63 - 1
RowId = Annotated[int, PathParam(ge=1, le=MAX_ID)]


class BadParameter(BadRequest):
    """A query or form parameter outside its allowed values: a 400 page naming the
    parameter (never its value) and, for enumerations, what is allowed."""

    def __init__(self, name: str, allowed: tuple[str, ...] = ()) -> None:
        self.name = name
        self.allowed = allowed
        detail = f"invalid value of {name!r}"
        if allowed:
            detail += f"; allowed: {', '.join(allowed)}"
        super().__init__(detail, code="bad_parameter")


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise BadParameter(name, tuple(a for a in allowed if a))
    return value


class LoginRequired(Exception):
    def __init__(self, expired: bool = False) -> None:
        self.expired = expired


class CsrfFailed(Exception):
    pass


@dataclass
class Ctx:
    request: Request
    db: Session
    user: accounts.SessionInfo
    lang: str


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


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["when"] = _when
    return env


def _lang(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return str(asked)
    cookie = request.cookies.get(LANG_COOKIE)
    return cookie if cookie in LANGS else DEFAULT_LANG


def create_console() -> FastAPI:
    env = _env()
    cfg = get_settings()
    console = FastAPI(
        title="mdm stewards' console", docs_url=None, redoc_url=None, openapi_url=None
    )
    console.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def render(
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
        html = env.get_template(template).render(
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

    @contextmanager
    def page(
        request: Request, *, role: str | None = None, csrf: str | None = None
    ) -> Iterator[Ctx]:
        """Authenticate (and for POSTs check CSRF) inside one unit of work."""
        with unit_of_work(write=True) as db:
            info = accounts.load_session(db, request.cookies.get(COOKIE), cfg)
            if info is None:
                raise LoginRequired(expired=bool(request.cookies.get(COOKIE)))
            if request.method == "POST":
                sent = csrf or request.headers.get("X-CSRF-Token") or ""
                if not sent or not hmac.compare_digest(sent, info.csrf_token):
                    raise CsrfFailed()
            if role is not None and not info.steward.can(role):
                raise Forbidden(f"this needs the {role} role")
            yield Ctx(request, db, info, _lang(request))

    def error_page(request: Request, status: int, message: str) -> HTMLResponse:
        return render(
            request,
            "error.html",
            _lang(request),
            status=status,
            message=message,
            status_code=status,
        )

    @console.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
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

    @console.exception_handler(CsrfFailed)
    async def _csrf_failed(request: Request, _exc: CsrfFailed) -> Response:
        return error_page(request, 403, translate("error.csrf", _lang(request)))

    @console.exception_handler(BadParameter)
    async def _bad_parameter(request: Request, exc: BadParameter) -> Response:
        return error_page(request, 400, _bad_parameter_message([exc.name], exc.allowed, request))

    @console.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's default is a JSON 422; the console answers with its own page.
        names = [str(e["loc"][-1]) for e in exc.errors() if e.get("loc")]
        return error_page(request, 400, _bad_parameter_message(names, (), request))

    def _bad_parameter_message(names: list[str], allowed: tuple[str, ...], request: Request) -> str:
        lang = _lang(request)
        parts = [translate("error.bad_request", lang)]
        parts += [
            translate("error.bad_parameter", lang).format(name=n) for n in dict.fromkeys(names)
        ]
        if allowed:
            parts.append(translate("error.allowed", lang).format(allowed=", ".join(allowed)))
        return " ".join(parts)

    @console.exception_handler(MDMError)
    async def _mdm_error(request: Request, exc: MDMError) -> Response:
        lang = _lang(request)
        message = translate("error.forbidden", lang) if exc.status_code == 403 else ""
        if exc.status_code == 400:
            message = translate("error.bad_request", lang)
        response = error_page(request, exc.status_code, f"{message} {exc.detail}".strip())
        if exc.status_code == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    async def _db_unavailable(request: Request, exc: Exception) -> Response:
        # A mounted app's errors never reach the API's handlers: without this, a
        # database outage is a 500 (and a reset connection) on every console page.
        if not is_unavailable(exc):
            raise exc
        response = error_page(request, 503, translate("error.database_unavailable", _lang(request)))
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    for cls in (*UNAVAILABLE_ERRORS, DBAPIError):
        console.add_exception_handler(cls, _db_unavailable)

    # --- login -------------------------------------------------------------------

    @console.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "", expired: str = "") -> Response:
        token = secrets.token_urlsafe(24)
        lang = _lang(request)
        response = render(
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

    @console.post("/login", response_class=HTMLResponse)
    def login(
        request: Request,
        username: str = Form(""),
        password: str = Form(""),
        csrf_token: str = Form(""),
        next: str = Form(""),
    ) -> Response:
        lang = _lang(request)
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
        if not cookie or not hmac.compare_digest(cookie, csrf_token):
            return error_page(request, 403, translate("error.csrf", lang))
        address = request.client.host if request.client else "?"
        with unit_of_work(write=True) as db:
            try:
                steward = accounts.authenticate(
                    db, username, password, address=address, settings=cfg
                )
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
                response: Response = render(
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

    @console.post("/logout")
    def logout(request: Request, csrf_token: str = Form("")) -> Response:
        with page(request, csrf=csrf_token) as c:
            accounts.end_session(c.db, c.user.token_hash)
            _audit(c, "console.logout")
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    # --- review queue ------------------------------------------------------------

    def _filter(
        entity_type: str = "", source: str = "", band: str = ""
    ) -> tuple[review.QueueFilter, dict[str, str]]:
        """The queue's filter; an entity type or score band outside the lists is a
        400 page (a source system is any name: an unknown one filters everything out)."""
        _one_of("entity_type", entity_type, ("", *ENTITY_TYPES))
        lo, hi = BANDS[_one_of("band", band, tuple(BANDS))]
        params = {"entity_type": entity_type, "source": source, "band": band}
        return (
            review.QueueFilter(entity_type or None, source or None, lo, hi),
            {k: v for k, v in params.items() if v},
        )

    @console.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        with page(request):
            pass
        return RedirectResponse(f"{PREFIX}/review", status_code=303)

    @console.get("/review", response_class=HTMLResponse)
    def queue(
        request: Request, entity_type: str = "", source: str = "", band: str = ""
    ) -> Response:
        with page(request) as c:
            flt, params = _filter(entity_type, source, band)
            total, rows = review.pending_queue(c.db, flt)
            facets = review.queue_facets(c.db)
            last = review.last_action(c.db, c.user.steward.actor)
            return render(
                request,
                "queue.html",
                c.lang,
                user=c.user,
                total=total,
                rows=rows,
                facets=facets,
                params=params,
                bands=list(BANDS),
                can_undo=last is not None,
            )

    @console.post("/review/next")
    def take_next(
        request: Request,
        csrf_token: str = Form(""),
        entity_type: str = Form(""),
        source: str = Form(""),
        band: str = Form(""),
    ) -> Response:
        with page(request, csrf=csrf_token) as c:
            flt, params = _filter(entity_type, source, band)
            taken = review.take_next(
                c.db, c.user.steward.actor, flt, reserve_minutes=cfg.steward_reservation_minutes
            )
        return _to_candidate(taken, params)

    def _to_candidate(candidate_id: int | None, params: dict[str, str]) -> Response:
        query = f"?{urlencode(params)}" if params else ""
        if candidate_id is None:
            return RedirectResponse(f"{PREFIX}/review{query}", status_code=303)
        return RedirectResponse(f"{PREFIX}/review/{candidate_id}{query}", status_code=303)

    @console.get("/review/{candidate_id}", response_class=HTMLResponse)
    def candidate(
        request: Request,
        candidate_id: RowId,
        entity_type: str = "",
        source: str = "",
        band: str = "",
    ) -> Response:
        with page(request) as c:
            _flt, params = _filter(entity_type, source, band)
            view = review.candidate_view(c.db, candidate_id)
            # Stewards read personal data here: who looked at which pair is kept.
            _audit(
                c,
                "console.view_candidate",
                [i for i in (view.left.canonical_id, view.right.canonical_id) if i],
                candidate_id=candidate_id,
            )
            steps = sorted(view.weights.items(), key=lambda kv: -abs(kv[1]))
            chart = charts.waterfall(
                view.prior_weight,
                steps,
                prior_label=translate("cand.prior", c.lang),
                total_label=translate("cand.total", c.lang),
            )
            last = review.last_action(c.db, c.user.steward.actor)
            reserved_other = (
                view.reserved_by not in (None, c.user.steward.actor)
                and view.reserved_until is not None
                and view.reserved_until > utcnow()
            )
            return render(
                request,
                "candidate.html",
                c.lang,
                user=c.user,
                view=view,
                chart=Markup(chart),
                params=params,
                can_undo=last is not None,
                reserved_other=reserved_other,
            )

    @console.post("/review/{candidate_id}/decide")
    def decide(
        request: Request,
        candidate_id: RowId,
        decision: str = Form(...),
        csrf_token: str = Form(""),
        reason: str = Form(""),
        entity_type: str = Form(""),
        source: str = Form(""),
        band: str = Form(""),
    ) -> Response:
        with page(request, csrf=csrf_token) as c:
            flt, params = _filter(entity_type, source, band)
            review.decide(
                c.db, candidate_id, decision, actor=c.user.steward.actor, reason=reason or None
            )
            taken = review.take_next(
                c.db, c.user.steward.actor, flt, reserve_minutes=cfg.steward_reservation_minutes
            )
        return _to_candidate(taken, params)

    @console.post("/review/undo")
    def undo(
        request: Request,
        csrf_token: str = Form(""),
        entity_type: str = Form(""),
        source: str = Form(""),
        band: str = Form(""),
    ) -> Response:
        with page(request, csrf=csrf_token) as c:
            _flt, params = _filter(entity_type, source, band)
            candidate_id = review.undo_last(
                c.db, c.user.steward.actor, reserve_minutes=cfg.steward_reservation_minutes
            )
            # Keep one reservation per steward: the undone candidate is theirs now.
            review.take_next(
                c.db,
                c.user.steward.actor,
                review.QueueFilter(),
                reserve_minutes=cfg.steward_reservation_minutes,
            )
        return _to_candidate(candidate_id, params)

    # --- entities ----------------------------------------------------------------

    def _entity_data(c: Ctx, canonical_id: str) -> dict[str, Any]:
        view = get_entity(c.db, canonical_id)
        conn = c.db.connection()
        state = repo.entity_by_canonical_id(conn, view.canonical_id)
        assert state is not None
        member_ids = repo.members(conn, [state.id])[state.id]
        rows = repo.record_rows(conn, member_ids, view.entity_type)
        order = list(STANDARDS[view.entity_type].model_fields)
        attrs = [a for a in order if a in view.attributes or a in view.provenance]
        attrs += sorted(set(view.attributes) - set(attrs))
        return {
            "view": view,
            "attrs": attrs,
            "records": sorted(rows, key=lambda r: (r.system, r.key)),
            "history": list(reversed(history(c.db, view.canonical_id))),
            "redirects": repo.redirected_from(conn, state.id),
            "overrides": repo.active_overrides(conn, [state.id]).get(state.id, {}),
            "fields": order,
        }

    @console.get("/entity/{canonical_id}", response_class=HTMLResponse)
    def entity(request: Request, canonical_id: str) -> Response:
        with page(request) as c:
            data = _entity_data(c, canonical_id)
            _audit(c, "console.view_entity", [data["view"].canonical_id])
            return render(request, "entity.html", c.lang, user=c.user, **data)

    @console.get("/entity/{canonical_id}/merge", response_class=HTMLResponse)
    def merge_preview(request: Request, canonical_id: str, other: str = "") -> Response:
        with page(request, role="senior") as c:
            other = other.strip()
            if not other:
                raise BadRequest("give the canonical ID of the other golden record")
            preview = preview_merge(c.db, canonical_id, other)
            survivor = get_entity(c.db, canonical_id)
            loser = get_entity(c.db, other)
            order = list(STANDARDS[survivor.entity_type].model_fields)
            names = set(preview.attributes) | set(survivor.attributes) | set(loser.attributes)
            attrs = [a for a in order if a in names]
            return render(
                request,
                "merge_preview.html",
                c.lang,
                user=c.user,
                survivor=survivor,
                loser=loser,
                preview=preview,
                attrs=attrs,
            )

    @console.post("/entity/{canonical_id}/merge")
    def merge(
        request: Request,
        canonical_id: str,
        other: str = Form(...),
        reason: str = Form(""),
        csrf_token: str = Form(""),
    ) -> Response:
        with page(request, role="senior", csrf=csrf_token) as c:
            result = review.steward_merge(
                c.db, canonical_id, other.strip(), actor=c.user.steward.actor, reason=reason
            )
        return RedirectResponse(f"{PREFIX}/entity/{result.survivor_id}", status_code=303)

    @console.post("/entity/{canonical_id}/split")
    async def split(request: Request, canonical_id: str) -> Response:
        form = await request.form()
        record_ids = [str(v) for v in form.getlist("record_id")]
        reason = str(form.get("reason") or "")
        csrf = str(form.get("csrf_token") or "")
        return await _run_sync(_split, request, canonical_id, record_ids, reason, csrf)

    def _split(
        request: Request, canonical_id: str, values: list[str], reason: str, csrf: str
    ) -> Response:
        with page(request, role="senior", csrf=csrf) as c:
            record_ids = [_row_id("record_id", v) for v in values]
            into = review.steward_split(
                c.db, canonical_id, record_ids, actor=c.user.steward.actor, reason=reason
            )
        return RedirectResponse(f"{PREFIX}/entity/{into}", status_code=303)

    @console.post("/entity/{canonical_id}/override")
    def override(
        request: Request,
        canonical_id: str,
        attribute: str = Form(...),
        value: str = Form(""),
        reason: str = Form(""),
        csrf_token: str = Form(""),
    ) -> Response:
        with page(request, role="senior", csrf=csrf_token) as c:
            review.steward_override(
                c.db,
                canonical_id,
                attribute,
                _parse_value(value),
                actor=c.user.steward.actor,
                reason=reason,
            )
        return RedirectResponse(f"{PREFIX}/entity/{canonical_id}", status_code=303)

    # --- search, quality, stewards -----------------------------------------------

    @console.get("/search", response_class=HTMLResponse)
    def search(
        request: Request,
        q: str = "",
        system: str = "",
        key: str = "",
        entity_type: str = "citizen",
        name: str = "",
        birth_year: str = "",
        identifier: str = "",
    ) -> Response:
        with page(request) as c:
            _one_of("entity_type", entity_type, ENTITY_TYPES)
            result: console_search.SearchResult | None = None
            found: str | None = None
            asked = False
            if q.strip():
                asked = True
                try:
                    parse_canonical_id(q.strip())
                    found = q.strip()
                except MDMError:
                    found = None
            elif system.strip() and key.strip():
                asked = True
                found = console_search.by_source_key(c.db, system, key)
            elif name.strip() or identifier.strip():
                asked = True
                attrs = _search_attributes(entity_type, name, birth_year, identifier)
                result = console_search.by_attributes(c.db, entity_type, attrs)
            if asked:
                audit.append(
                    c.db.connection(),
                    [
                        audit.AuditEntry(
                            "steward",
                            c.user.steward.actor,
                            "console.search",
                            entity_ids=[found] if found else [],
                            details={
                                "by": "canonical_id"
                                if q.strip()
                                else "source_key"
                                if system.strip()
                                else "attributes",
                                "entity_type": entity_type,
                            },
                        )
                    ],
                )
            if found:
                return RedirectResponse(f"{PREFIX}/entity/{found}", status_code=303)
            return render(
                request,
                "search.html",
                c.lang,
                user=c.user,
                asked=asked,
                result=result,
                form={
                    "q": q,
                    "system": system,
                    "key": key,
                    "entity_type": entity_type,
                    "name": name,
                    "birth_year": birth_year,
                    "identifier": identifier,
                },
            )

    @console.get("/quality", response_class=HTMLResponse)
    def quality_page(request: Request) -> Response:
        with page(request) as c:
            report = quality.source_quality(c.db)
            srcs = report.sources

            def chart(values: list[tuple[str, float]], color: str = "#1565c0") -> Markup:
                return Markup(charts.bars(values, color=color))

            reasons: dict[str, int] = {}
            for s in srcs:
                for code, n in s.rejects_by_reason.items():
                    reasons[code] = reasons.get(code, 0) + n
            figures = {
                "records": chart([(s.source_system, s.total_records) for s in srcs]),
                "reject_rate": chart([(s.source_system, s.reject_rate) for s in srcs], "#c62828"),
                "dup_within": chart(
                    [(s.source_system, s.duplicates_within) for s in srcs], "#6a1b9a"
                ),
                "dup_across": chart(
                    [(s.source_system, s.duplicates_across) for s in srcs], "#00838f"
                ),
                "conflicts": chart(
                    [(s.source_system, s.conflicted_entities) for s in srcs], "#ef6c00"
                ),
                "ambiguous": chart(
                    [(s.source_system, s.ambiguous_addresses) for s in srcs], "#5d4037"
                ),
                "pending": chart([(s.source_system, s.pending_review) for s in srcs], "#455a64"),
                "by_reason": chart(sorted(reasons.items(), key=lambda kv: -kv[1]), "#c62828"),
                "conflicts_by_attr": chart(
                    sorted(report.conflicts_by_attribute.items(), key=lambda kv: -kv[1]),
                    "#ef6c00",
                ),
            }
            return render(
                request, "quality.html", c.lang, user=c.user, report=report, figures=figures
            )

    @console.get("/stewards", response_class=HTMLResponse)
    def stewards_page(request: Request) -> Response:
        with page(request, role="admin") as c:
            return render(
                request,
                "stewards.html",
                c.lang,
                user=c.user,
                stewards=accounts.list_stewards(c.db),
                created=None,
            )

    @console.post("/stewards", response_class=HTMLResponse)
    def create_steward(
        request: Request,
        username: str = Form(...),
        display_name: str = Form(""),
        role: str = Form("reviewer"),
        csrf_token: str = Form(""),
    ) -> Response:
        with page(request, role="admin", csrf=csrf_token) as c:
            password = accounts.generate_password()
            accounts.create_steward(
                c.db,
                username,
                role,
                password,
                display_name=display_name or None,
                actor=c.user.steward.actor,
            )
            return render(
                request,
                "stewards.html",
                c.lang,
                user=c.user,
                stewards=accounts.list_stewards(c.db),
                created=(username, password),
            )

    return console


def _audit(c: Ctx, action: str, ids: list[str] | None = None, **details: Any) -> None:
    audit.append(
        c.db.connection(),
        [
            audit.AuditEntry(
                "steward", c.user.steward.actor, action, entity_ids=ids or [], details=details
            )
        ],
    )


async def _run_sync(fn: Any, *args: Any) -> Response:
    from starlette.concurrency import run_in_threadpool

    result: Response = await run_in_threadpool(fn, *args)
    return result


def _row_id(name: str, text: str) -> int:
    """A row ID from a form: ASCII digits, 1 to :data:`MAX_ID`, else a 400 page."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_ID:
        raise BadParameter(name)
    return int(text)


def _parse_value(text: str) -> Any:
    """An override's value: JSON for structured values (an address), else the text;
    empty means "no value"."""
    text = text.strip()
    if not text:
        return None
    if text[0] in "{[":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"the value is not valid JSON: {exc}") from None
    return text


def _search_attributes(
    entity_type: str, name: str, birth_year: str, identifier: str
) -> dict[str, str]:
    name, identifier = name.strip(), identifier.strip()
    if entity_type == "citizen":
        out = {"full_name": name, "birth_year": birth_year.strip()}
        if identifier:
            out["personal_id" if len(identifier) == 12 else "old_id_number"] = identifier
        return out
    if entity_type == "organization":
        return {"name": name, "tax_code": identifier}
    return {"dossier_code": identifier or name}
