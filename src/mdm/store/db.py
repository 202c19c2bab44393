"""Engines and sessions.

SQLite is configured so that it behaves like the production store where it matters:
foreign keys on, real transactions (pysqlite's implicit BEGIN handling is disabled so
SAVEPOINTs and transactional DDL work), WAL for concurrent readers, and a busy
timeout instead of instant "database is locked" errors. Postgres engines ping a pooled
connection that sat idle before handing it out (:func:`_ping_when_idle`), so that a
restarted database is reconnected without restarting the process: a connection that
died with the server is noticed at checkout and replaced, and SQLAlchemy invalidates
the pool on a disconnect error.

:data:`UNAVAILABLE_ERRORS` are the errors that mean "the database cannot be used right
now" rather than "this request is wrong" or "the code is wrong": the edges answer them
with 503 and ``Retry-After`` (never 500) and never echo the driver's message.

Only :mod:`mdm.store` imports SQLAlchemy and the drivers (the import contracts in
pyproject.toml): the type names and error classes the other layers need are
re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Connection as Connection
from sqlalchemy import Engine as Engine
from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError as DBAPIError
from sqlalchemy.exc import IntegrityError as IntegrityError
from sqlalchemy.exc import OperationalError as OperationalError
from sqlalchemy.orm import Session as Session
from sqlalchemy.orm import sessionmaker as sessionmaker
from sqlalchemy.pool import NullPool

from mdm.config import Settings, get_settings, normalize_database_url


def _sqlite_connect_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes fails at once (busy
        # snapshot, not covered by busy_timeout) when another connection committed in
        # between; units of work that will write ask for the write lock up front.
        immediate = conn.get_execution_options().get("sqlite_begin") == "IMMEDIATE"
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


#: Unreachable, restarting or shut-down server, a connection lost mid-request, a
#: connection pool exhausted for ``pool_timeout``, a busy SQLite past its timeout.
#: The raw driver classes are listed too: hot paths that use the driver connection
#: directly (the audit append on Postgres) raise them unwrapped.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


#: Seconds the edges tell a client to wait (``Retry-After``) when the database is
#: unavailable: about the time a restarted server needs to accept connections again.
RETRY_AFTER_SECONDS = 5


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be used right now (see
    :data:`UNAVAILABLE_ERRORS`); also any driver error SQLAlchemy recognized as a
    disconnect (``connection_invalidated``)."""
    if isinstance(exc, UNAVAILABLE_ERRORS):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def make_engine(url: str | None = None, settings: Settings | None = None, **kwargs: Any) -> Engine:
    settings = settings or get_settings()
    url = normalize_database_url(url or settings.database_url)
    # Never put statement parameters (personal data) into exception messages, which
    # end up in logs.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        _sqlite_connect_hooks(engine)
        return engine
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": 10,
        "connect_args": {"connect_timeout": settings.db_connect_timeout},
    }
    if "poolclass" in kwargs:  # e.g. NullPool for one-shot jobs: no pool sizing
        for key in ("pool_size", "max_overflow", "pool_timeout"):
            options.pop(key)
    options.update(kwargs)
    engine = create_engine(url, **options)
    if "pool_pre_ping" not in kwargs:
        _ping_when_idle(engine)
    return engine


def make_unpooled_engine(url: str) -> Engine:
    """An engine without a pool (a new connection per checkout), for worker processes
    and one-shot jobs: no pool sizing."""
    return make_engine(url, poolclass=NullPool)


def hide_password(url: str) -> str:
    """``url`` without its password, for printing."""
    return make_url(url).render_as_string(hide_password=True)


#: A pooled connection idle longer than this is pinged before it is handed out.
IDLE_PING_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping``, but only for connections that sat idle in the pool.

    A ping is a round trip per checkout: on the API's point lookups it cost as much as
    the lookup itself. A connection returned less than :data:`IDLE_PING_SECONDS` ago
    is handed out as is; if the server died in that second, the statement fails with
    a disconnect error, SQLAlchemy invalidates the whole pool, and the request answers
    503 (``UNAVAILABLE_ERRORS``) like any request during an outage. A connection that
    fails its ping is replaced at once (``DisconnectionError``: the pool retries).
    """

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        record.info["mdm_returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned = record.info.get("mdm_returned_at")
        if returned is not None and time.monotonic() - returned < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa_exc.DisconnectionError("the pooled connection failed its ping") from exc


_engine: Engine | None = None
_sessionmaker: sessionmaker[Session] | None = None


def get_engine() -> Engine:
    """The process-wide engine for the configured database (created on first use)."""
    global _engine, _sessionmaker
    if _engine is None:
        _engine = make_engine()
        _sessionmaker = sessionmaker(_engine, expire_on_commit=False)
    return _engine


def get_sessionmaker() -> sessionmaker[Session]:
    get_engine()
    assert _sessionmaker is not None
    return _sessionmaker


def reset_engine() -> None:
    """Forget the process-wide engine (tests and settings changes)."""
    global _engine, _sessionmaker
    if _engine is not None:
        _engine.dispose()
    _engine = None
    _sessionmaker = None


@contextmanager
def unit_of_work(
    factory: sessionmaker[Session] | None = None, *, write: bool = False
) -> Iterator[Session]:
    """The edge's transaction: commit on success, roll back on any error.

    Services only flush; the caller that opened the unit of work decides the
    transaction's fate (STYLE.md habit 1). ``write=True`` takes SQLite's write lock
    when the transaction begins (``BEGIN IMMEDIATE``), so a read-then-write unit of
    work cannot fail because another connection committed in between; on Postgres
    it changes nothing.
    """
    session = (factory or get_sessionmaker())()
    if write:
        session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
