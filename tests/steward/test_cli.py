"""``mdm stewards create`` and ``mdm demo`` as real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdm.config import Settings
from mdm.services.accounts import authenticate
from mdm.services.clients import list_clients
from mdm.store.db import make_engine
from mdm.store.models import ApiClient, Entity, MatchCandidate, Steward


def _mdm(*args: str, url: str, stdin: str = "", cwd: Path | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mdm", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "MDM_DATABASE_URL": url},
        cwd=cwd,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_stewards_create(fresh_db_url: str) -> None:
    out = _mdm(
        "stewards",
        "create",
        "--username",
        "lan",
        "--role",
        "senior",
        "--password-stdin",
        url=fresh_db_url,
        stdin="a long enough password\n",
    )
    assert "lan (senior) created" in out and "password" not in out
    out = _mdm("stewards", "create", "--username", "minh", url=fresh_db_url)
    generated = re.search(r"password \(shown once\): (\S+)", out)
    assert generated, out
    engine = make_engine(fresh_db_url)
    cfg = Settings(steward_login_per_ip_per_minute=100)
    with Session(engine) as s:
        lan = authenticate(s, "lan", "a long enough password", address="cli", settings=cfg)
        minh = authenticate(s, "minh", generated.group(1), address="cli", settings=cfg)
        assert lan is not None and lan.role == "senior"
        assert minh is not None and minh.role == "reviewer"
    engine.dispose()
    assert "minh" in _mdm("stewards", "list", url=fresh_db_url)


@pytest.mark.slow
def test_demo_builds_everything(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    out = _mdm(
        "demo",
        "--no-serve",
        "--provinces",
        "2",
        "--citizens",
        "300",
        "--dir",
        str(tmp_path),
        url=url,
        cwd=tmp_path,
    )
    assert "/steward/" in out and "steward: demo" in out and "key: mdm_" in out
    engine = make_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(Entity)).scalar_one() > 500
        assert (
            s.execute(select(Steward.role).where(Steward.username == "demo")).scalar() == "senior"
        )
        assert s.execute(select(func.count()).select_from(ApiClient)).scalar_one() == 1
        # its key writes a source system of its own, not the synthetic sources'
        assert [c.source_systems for c in list_clients(s)] == [{"demo-agency"}]
        assert s.execute(select(func.count()).select_from(MatchCandidate)).scalar_one() >= 0
    engine.dispose()
    # the demo trained its own models, beside its own copy of the rules
    assert (tmp_path / "matching_rules" / "models" / "citizen.json").exists()
