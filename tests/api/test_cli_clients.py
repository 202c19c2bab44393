"""``mdm clients create / list / revoke``: the key is printed once, stored hashed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import select
from sqlalchemy.orm import Session

from mdm.services.clients import authenticate
from mdm.store.db import make_engine
from mdm.store.models import ApiClient


def _mdm(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MDM_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "mdm", *args], env=env, capture_output=True, text=True
    )


def test_clients_create_list_revoke(fresh_db_url: str) -> None:
    made = _mdm(
        fresh_db_url,
        "clients", "create", "--name", "bhxh", "--scopes", "citizen:read,citizen:search",
        "--rate-limit", "120",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("mdm_") and len(key) > 50
    assert "shown only once" in made.stderr
    engine = make_engine(fresh_db_url)
    with Session(engine) as session:
        row = session.execute(select(ApiClient).where(ApiClient.name == "bhxh")).scalar_one()
        assert key not in row.key_hash and row.key_hash.startswith("sha256:")
        assert key.split("_")[1] == row.key_prefix
        client = authenticate(session, key)
        assert client is not None and client.scopes == {"citizen:read", "citizen:search"}
        assert client.rate_limit_per_minute == 120
    listed = _mdm(fresh_db_url, "clients", "list")
    assert listed.returncode == 0 and key not in listed.stdout
    assert json.loads(listed.stdout.splitlines()[0])["revoked_at"] is None
    dup = _mdm(fresh_db_url, "clients", "create", "--name", "bhxh", "--scopes", "*:read")
    assert dup.returncode == 2 and "already exists" in dup.stderr
    bad = _mdm(fresh_db_url, "clients", "create", "--name", "x", "--scopes", "citizen:delete")
    assert bad.returncode == 2 and "unknown scope" in bad.stderr
    revoked = _mdm(fresh_db_url, "clients", "revoke", "bhxh")
    assert revoked.returncode == 0, revoked.stderr
    with Session(engine) as session:
        assert authenticate(session, key) is None
    assert json.loads(_mdm(fresh_db_url, "clients", "list").stdout)["revoked_at"] is not None
    engine.dispose()
