"""Fixtures for the console: seeded sessions (rolled back) and seeded, committed
databases served by a real ``mdm serve``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from mdm.matching.rules import default_rules_dir
from mdm.store.db import make_engine
from tests.servers import running_server
from tests.steward.seed import Seeded, seed


@pytest.fixture
def seeded(session: Session) -> Seeded:
    return seed(session)


@pytest.fixture
def served(fresh_db_url: str, tmp_path: Path) -> Iterator[tuple[str, str, Seeded]]:
    """(base URL, database URL, seed) of a real server on a seeded database.

    The server reads a copy of the matching rules without trained models, so what it
    does never depends on models someone trained in the working tree."""
    engine = make_engine(fresh_db_url)
    with Session(engine) as session:
        data = seed(session)
        session.commit()
    engine.dispose()
    rules = tmp_path / "matching_rules"
    rules.mkdir()
    for f in default_rules_dir().glob("*.yaml"):
        shutil.copy(f, rules / f.name)
    with running_server(fresh_db_url, env={"MDM_MATCHING_RULES_DIR": str(rules)}) as base:
        yield base, fresh_db_url, data
