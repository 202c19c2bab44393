"""Test fixtures: real databases, built by the migrations, one transaction per test.

Every test that asks for ``backend`` (directly or through ``engine``, ``session``,
``db_url`` or ``fresh_db_url``) runs once per database backend: SQLite and the
Postgres on 127.0.0.1:5432. The suite creates its own databases and drops them at
the end; it never touches another database.

With ``CI=true`` an unreachable Postgres fails the run loudly instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from mdm.store import migrate
from mdm.store.db import make_engine

PG_ADMIN_URL = os.environ.get(
    "MDM_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backends",
        default=os.environ.get("MDM_TEST_BACKENDS", "sqlite,postgres"),
        help="comma-separated database backends to run database tests on",
    )


def _backends(config: pytest.Config) -> list[str]:
    return [b.strip() for b in str(config.getoption("--backends")).split(",") if b.strip()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", _backends(metafunc.config), scope="session")


def _pg_admin() -> Engine:
    return create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )


def _pg_url(name: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


class Databases:
    """Creates, migrates and finally drops the suite's own databases."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.tag = uuid.uuid4().hex[:8]
        self.templates: dict[str, str] = {}
        self.shared_urls: dict[str, str] = {}
        self.pg_created: list[str] = []
        self.pg_error: str | None = None

    def template(self, backend: str) -> str:
        if backend not in self.templates:
            if backend == "sqlite":
                url = f"sqlite:///{self.tmp / 'template.db'}"
            elif backend == "postgres":
                url = self._create_pg(f"mdm_test_{self.tag}_tpl")
            else:
                raise ValueError(f"unknown backend {backend}")
            migrate.upgrade(url)
            self.templates[backend] = url
        return self.templates[backend]

    def _create_pg(self, name: str, template: str | None = None) -> str:
        if self.pg_error is not None:
            self._unavailable()
        try:
            admin = _pg_admin()
            with admin.connect() as conn:
                clause = f' TEMPLATE "{template}"' if template else ""
                conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
            admin.dispose()
        except Exception as exc:  # unreachable server, auth, ...
            self.pg_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            self._unavailable()
        self.pg_created.append(name)
        return _pg_url(name)

    def _unavailable(self) -> None:
        message = f"Postgres at {PG_ADMIN_URL} is unavailable: {self.pg_error}"
        if IN_CI:
            pytest.exit(f"CI=true and {message}", returncode=3)
        pytest.skip(f"!!! SKIPPED: {message} (set CI=true to make this fatal)")

    def shared(self, backend: str) -> str:
        """One migrated database per backend for the transactional ``session`` tests
        (never the template: Postgres copies a template only while nobody is connected)."""
        if backend not in self.shared_urls:
            self.shared_urls[backend] = self.fresh(backend)
        return self.shared_urls[backend]

    def fresh(self, backend: str) -> str:
        """A new, migrated database of its own (for tests that commit)."""
        tpl = self.template(backend)
        if backend == "sqlite":
            path = self.tmp / f"fresh-{uuid.uuid4().hex[:8]}.db"
            shutil.copyfile(tpl.removeprefix("sqlite:///"), path)
            return f"sqlite:///{path}"
        return self._create_pg(f"mdm_test_{self.tag}_{uuid.uuid4().hex[:8]}", tpl.rsplit("/", 1)[1])

    def drop_all(self) -> None:
        if not self.pg_created:
            return
        admin = _pg_admin()
        with admin.connect() as conn:
            for name in reversed(self.pg_created):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory.mktemp("db"))
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def db_url(backend: str, databases: Databases) -> str:
    """URL of the shared, migrated test database of this backend."""
    return databases.shared(backend)


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test.

    Code under test may commit: with ``create_savepoint`` its commits only release
    savepoints, and the outer transaction still rolls everything back.
    """
    with engine.connect() as conn:
        outer = conn.begin()
        sess = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield sess
        finally:
            sess.close()
            outer.rollback()


@pytest.fixture
def fresh_db_url(backend: str, databases: Databases) -> str:
    """A migrated database of the test's own, for work that must really commit."""
    return databases.fresh(backend)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local SparkSession for the whole run (the ``spark`` extra and Java).

    Small and quiet: two cores, four shuffle partitions, no web UI, 1 GB of driver
    memory. Skipped without pyspark or Java, except under ``CI=true``, where that
    fails (CI installs the extra). Stopped at the end: no JVM outlives the suite.
    """
    from mdm.matching.spark import SparkOptions, SparkUnavailable, require_spark, start_session

    try:
        require_spark()
    except SparkUnavailable as exc:
        if IN_CI:
            pytest.fail(f"CI=true but {exc.detail}")
        pytest.skip(str(exc.detail))
    session = start_session(
        SparkOptions(
            master="local[2]",
            conf={
                "spark.sql.shuffle.partitions": "4",
                "spark.default.parallelism": "4",
                "spark.ui.enabled": "false",
                "spark.driver.memory": "1g",
                # a short-lived JVM: the C1 compiler alone and the serial collector
                # spend about 40% less CPU than the defaults on this workload
                "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
            },
        )
    )
    try:
        yield session
    finally:
        session.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            if getattr(report, "when", "call") != "call" and outcome != "skipped":
                continue
            for backend in ("sqlite", "postgres"):
                if f"[{backend}" in nodeid or f"-{backend}]" in nodeid or f"-{backend}-" in nodeid:
                    counts.setdefault(backend, {}).setdefault(outcome, 0)
                    counts[backend][outcome] += 1
    if counts:
        terminalreporter.section("database backends")
        for backend, by_outcome in sorted(counts.items()):
            parts = ", ".join(f"{n} {o}" for o, n in sorted(by_outcome.items()))
            terminalreporter.write_line(f"{backend}: {parts}")
