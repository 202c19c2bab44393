"""The console's dependencies and page routers on their own: a bare FastAPI app with
the console's state, error pages and one router (one of the console's, or a probe
written here with the same dependencies), served over real HTTP on a seeded
database of each backend. The session cookie comes from the accounts service."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from mdm.config import get_settings
from mdm.exceptions import BadRequest
from mdm.services import accounts
from mdm.steward import errors
from mdm.steward.deps import (
    COOKIE,
    AdminPage,
    ConsoleState,
    SeniorForm,
    ViewerForm,
    ViewerPage,
)
from mdm.steward.i18n import translate
from mdm.steward.params import BadParameter, RowId, queue_filter
from mdm.steward.routes import review, stewards
from mdm.store.db import make_engine
from mdm.store.models import AuditLog
from tests.api.conftest import serving
from tests.steward.seed import seed

probe = APIRouter()


@probe.get("/admin-only")
def admin_only(page: AdminPage) -> Response:
    with page.open() as c:
        return PlainTextResponse(c.user.steward.username)


@probe.post("/form")
def form(page: ViewerForm) -> Response:
    with page.open() as c:
        return PlainTextResponse(c.user.steward.username)


@probe.post("/senior-form")
def senior_form(page: SeniorForm) -> Response:
    with page.open() as c:
        return PlainTextResponse(c.user.steward.username)


@probe.get("/audited/{n}")
def audited(page: ViewerPage, n: RowId, fail: str = "") -> Response:
    with page.open() as c:
        c.audit("probe.audited", n=n)
        if fail:
            raise BadRequest("asked to fail")
        return PlainTextResponse("ok")


@dataclass
class Console:
    base: str
    engine: Engine
    #: username -> (session cookie, CSRF token)
    sessions: dict[str, tuple[str, str]]

    def client(self, username: str | None = None) -> httpx.Client:
        cookies = {COOKIE: self.sessions[username][0]} if username else {}
        return httpx.Client(base_url=self.base, cookies=cookies, timeout=30)

    def audited(self) -> int:
        with Session(self.engine) as s:
            return s.execute(
                select(func.count()).where(AuditLog.action == "probe.audited")
            ).scalar_one()


def _app(engine: Engine, *routers: APIRouter) -> FastAPI:
    app = FastAPI()
    app.state.console = ConsoleState.build(get_settings(), engine)
    errors.install(app)
    for router in routers:
        app.include_router(router)
    return app


@pytest.fixture
def console(fresh_db_url: str) -> Iterator[Console]:
    """A seeded database with a live session for each steward; a test serves the
    routers it needs on it (:func:`_serve`)."""
    engine = make_engine(fresh_db_url)
    with Session(engine) as session:
        seed(session)
        out = {
            steward.username: accounts.start_session(session, steward)
            for steward, _active in accounts.list_stewards(session)
        }
        session.commit()
    yield Console("", engine, out)
    engine.dispose()


def _serve(console: Console, *routers: APIRouter) -> Iterator[Console]:
    with serving(_app(console.engine, *routers)) as base:
        console.base = base
        yield console


@pytest.fixture
def probed(console: Console) -> Iterator[Console]:
    yield from _serve(console, probe)


def _message(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("text/html"), response.text[:200]
    return response.text


def test_the_role_dependency_refuses_a_reviewer(probed: Console) -> None:
    for username in ("minh", "lan"):
        with probed.client(username) as c:
            r = c.get("/admin-only")
        assert r.status_code == 403, (username, r.status_code)
        assert "this needs the admin role" in _message(r)
        assert translate("error.forbidden", "vi") in r.text
    with probed.client("root") as c:
        r = c.get("/admin-only")
    assert r.status_code == 200 and r.text == "root"


def test_the_csrf_dependency_refuses_a_missing_or_wrong_token(probed: Console) -> None:
    _cookie, token = probed.sessions["minh"]
    with probed.client("minh") as c:
        for data in ({}, {"csrf_token": ""}, {"csrf_token": "forged"}):
            r = c.post("/form", data=data)
            assert r.status_code == 403, (data, r.status_code)
            assert translate("error.csrf", "vi") in _message(r)
        # another steward's token is no better
        r = c.post("/form", data={"csrf_token": probed.sessions["lan"][1]})
        assert r.status_code == 403
        assert c.post("/form", data={"csrf_token": token}).text == "minh"
        assert c.post("/form", headers={"X-CSRF-Token": token}).text == "minh"


def test_the_token_is_checked_before_the_role(probed: Console) -> None:
    with probed.client("minh") as c:
        r = c.post("/senior-form", data={})
        assert r.status_code == 403 and translate("error.csrf", "vi") in r.text
        r = c.post("/senior-form", data={"csrf_token": probed.sessions["minh"][1]})
        assert r.status_code == 403 and "this needs the senior role" in r.text
    with probed.client("lan") as c:
        r = c.post("/senior-form", data={"csrf_token": probed.sessions["lan"][1]})
        assert r.status_code == 200 and r.text == "lan"


def test_without_a_session_every_page_goes_to_the_login(probed: Console) -> None:
    with probed.client() as c:
        r = c.get("/admin-only?lang=en")
        assert r.status_code == 303
        assert r.headers["location"] == "/steward/login?next=%2Fadmin-only%3Flang%3Den"
        r = c.post("/form", data={"csrf_token": "x"})
        assert r.status_code == 303 and r.headers["location"] == "/steward/login?next=%2Fsteward%2F"
    with httpx.Client(base_url=probed.base, cookies={COOKIE: "revoked-or-unknown"}) as c:
        r = c.get("/admin-only")
        assert r.status_code == 303 and r.headers["location"].endswith("&expired=1")


def test_a_value_fastapi_refuses_answers_before_the_login(probed: Console) -> None:
    with probed.client() as c:
        r = c.get("/audited/0")
    assert r.status_code == 400 and "“n”" in r.text


def test_the_page_commits_its_work_or_rolls_it_back(probed: Console) -> None:
    with probed.client("minh") as c:
        assert c.get("/audited/1", params={"fail": "1"}).status_code == 400
        assert probed.audited() == 0
        assert c.get("/audited/2").text == "ok"
        assert probed.audited() == 1


@pytest.fixture
def accounts_page(console: Console) -> Iterator[Console]:
    yield from _serve(console, stewards.router)


def test_the_accounts_router_alone(accounts_page: Console) -> None:
    with accounts_page.client("lan") as c:
        assert c.get("/stewards").status_code == 403
        r = c.post(
            "/stewards", data={"username": "x", "csrf_token": accounts_page.sessions["lan"][1]}
        )
        assert r.status_code == 403
    with accounts_page.client("root") as c:
        r = c.get("/stewards")
        assert r.status_code == 200 and "minh" in r.text
        r = c.post(
            "/stewards",
            data={"username": "new.one", "csrf_token": accounts_page.sessions["root"][1]},
        )
        assert r.status_code == 200 and "new.one" in r.text
    with Session(accounts_page.engine) as s:
        assert "new.one" in {info.username for info, _active in accounts.list_stewards(s)}


@pytest.fixture
def queue_page(console: Console) -> Iterator[Console]:
    yield from _serve(console, review.router)


def test_the_review_router_alone(queue_page: Console) -> None:
    with queue_page.client("minh") as c:
        r = c.get("/review", params={"lang": "en"})
        assert r.status_code == 200 and "Match review queue" in r.text
        r = c.get("/review", params={"band": "0.5-1"})
        assert r.status_code == 400 and "“band”" in r.text
        r = c.post("/review/next", data={"csrf_token": queue_page.sessions["minh"][1]})
        assert r.status_code == 303 and r.headers["location"].startswith("/steward/review/")


def test_queue_filter() -> None:
    flt, params = queue_filter("citizen", "", "0.9-0.95")
    assert (flt.entity_type, flt.min_score, flt.max_score) == ("citizen", 0.9, 0.95)
    assert params == {"entity_type": "citizen", "band": "0.9-0.95"}
    with pytest.raises(BadParameter) as refused:
        queue_filter(band="0.5-1")
    assert refused.value.name == "band"
