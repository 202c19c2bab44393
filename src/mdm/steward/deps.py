"""Request dependencies of the console: its state (settings, templates, database),
the request's language, and the guard of every page behind the login.

A page's guard (:class:`Page`) is resolved by FastAPI from the route's signature:
the session cookie, for a POST the CSRF token its form or ``X-CSRF-Token`` header
sent, and the role the route needs (:data:`SeniorPage`, :data:`AdminForm`, ...).
The checks themselves run when the handler opens the page (:meth:`Page.open`), in
the unit of work the handler then uses, so that

* checking the session, the token and the role, the handler's work and the commit
  are one transaction on one connection, held by one worker thread: a request never
  waits for a thread while it holds a connection or SQLite's write lock;
* a path, query or form value FastAPI refuses is a 400 page before any of them.

These dependencies do no I/O, so they run on the event loop. (No postponed
annotations here: :func:`requires` builds dependencies whose annotations name a local.)
"""

import hmac
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse

from mdm.config import Settings
from mdm.exceptions import Forbidden
from mdm.services import accounts, audit
from mdm.steward.rendering import Templates, request_language
from mdm.store.db import Engine, Session, get_sessionmaker, sessionmaker, unit_of_work

COOKIE = "mdm_steward"
LOGIN_CSRF_COOKIE = "mdm_login_csrf"


class LoginRequired(Exception):
    def __init__(self, expired: bool = False) -> None:
        self.expired = expired


class CsrfFailed(Exception):
    pass


@dataclass(frozen=True)
class ConsoleState:
    """What every request of one console application shares (``app.state.console``)."""

    settings: Settings
    templates: Templates
    #: Sessions on the console's own engine; ``None``: the process-wide engine,
    #: looked up on each request (:func:`mdm.store.db.get_sessionmaker`).
    sessions: sessionmaker[Session] | None = None

    @classmethod
    def build(cls, settings: Settings, engine: Engine | None = None) -> "ConsoleState":
        sessions = sessionmaker(engine, expire_on_commit=False) if engine is not None else None
        return cls(settings, Templates(), sessions)

    def session_factory(self) -> sessionmaker[Session]:
        return self.sessions if self.sessions is not None else get_sessionmaker()


async def console_state(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


State = Annotated[ConsoleState, Depends(console_state)]


async def language(request: Request) -> str:
    return request_language(request)


Lang = Annotated[str, Depends(language)]


@dataclass
class Ctx:
    """An open page: its unit of work and the steward whose session it is."""

    request: Request
    db: Session
    user: accounts.SessionInfo
    lang: str
    templates: Templates

    def render(self, template: str, **data: Any) -> HTMLResponse:
        """The template as this steward reads it (their language, their CSRF token)."""
        return self.templates.render(self.request, template, self.lang, user=self.user, **data)

    def audit(self, action: str, ids: list[str] | None = None, **details: Any) -> None:
        audit.append(
            self.db.connection(),
            [
                audit.AuditEntry(
                    "steward",
                    self.user.steward.actor,
                    action,
                    entity_ids=ids or [],
                    details=details,
                )
            ],
        )


@dataclass(frozen=True)
class Page:
    """What a page needs before it may run; :meth:`open` checks it."""

    request: Request
    state: ConsoleState
    lang: str
    #: The role the page needs, if any (:meth:`accounts.StewardInfo.can`).
    role: str | None = None
    #: The CSRF token the form sent (a POST also accepts the ``X-CSRF-Token`` header).
    csrf: str | None = None

    @contextmanager
    def open(self) -> Iterator[Ctx]:
        """Authenticate (and for a POST check the CSRF token, then the role) inside one
        unit of work, which commits when the block ends and rolls back on any error.

        No session (or one that expired) → :class:`LoginRequired`; a missing or wrong
        token → :class:`CsrfFailed`; a role the steward lacks → :class:`Forbidden`."""
        request = self.request
        with unit_of_work(self.state.session_factory(), write=True) as db:
            info = accounts.load_session(db, request.cookies.get(COOKIE), self.state.settings)
            if info is None:
                raise LoginRequired(expired=bool(request.cookies.get(COOKIE)))
            if request.method == "POST":
                sent = self.csrf or request.headers.get("X-CSRF-Token") or ""
                if not sent or not hmac.compare_digest(sent, info.csrf_token):
                    raise CsrfFailed()
            if self.role is not None and not info.steward.can(self.role):
                raise Forbidden(f"this needs the {self.role} role")
            yield Ctx(request, db, info, self.lang, self.state.templates)


async def page(request: Request, state: State, lang: Lang) -> Page:
    """A page any logged-in steward may see."""
    return Page(request, state, lang)


async def form_page(
    request: Request, state: State, lang: Lang, csrf_token: Annotated[str, Form()] = ""
) -> Page:
    """A form any logged-in steward may post, with the session's CSRF token."""
    return Page(request, state, lang, csrf=csrf_token)


def requires(
    role: str, base: Callable[..., Awaitable[Page]] = page
) -> Callable[..., Awaitable[Page]]:
    """``base`` (a page or a form), for stewards holding ``role`` only."""

    async def dependency(p: Annotated[Page, Depends(base)]) -> Page:
        return replace(p, role=role)

    dependency.__name__ = f"{base.__name__}_for_{role}"
    return dependency


ViewerPage = Annotated[Page, Depends(page)]
ViewerForm = Annotated[Page, Depends(form_page)]
SeniorPage = Annotated[Page, Depends(requires("senior"))]
SeniorForm = Annotated[Page, Depends(requires("senior", form_page))]
AdminPage = Annotated[Page, Depends(requires("admin"))]
AdminForm = Annotated[Page, Depends(requires("admin", form_page))]


async def sessions(state: State) -> sessionmaker[Session]:
    """The session factory of the units of work outside a page (the login)."""
    return state.session_factory()


async def settings(state: State) -> Settings:
    return state.settings


async def templates(state: State) -> Templates:
    return state.templates


Sessions = Annotated[sessionmaker[Session], Depends(sessions)]
ConsoleSettings = Annotated[Settings, Depends(settings)]
ConsoleTemplates = Annotated[Templates, Depends(templates)]
