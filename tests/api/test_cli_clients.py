"""``mdm clients create / list / bind / revoke``: the key is printed once, stored hashed;
write keys are bound to source systems."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mdm.services.clients import authenticate
from mdm.store.db import make_engine
from mdm.store.models import ApiClient, SourceSystem


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


def _listed(url: str) -> dict[str, dict[str, Any]]:
    """``mdm clients list``, by name."""
    listed = _mdm(url, "clients", "list")
    assert listed.returncode == 0, listed.stderr
    return {c["name"]: c for c in map(json.loads, listed.stdout.splitlines())}


def test_write_keys_are_bound_to_the_source_systems_they_may_write(fresh_db_url: str) -> None:
    unbound = _mdm(fresh_db_url, "clients", "create", "--name", "w", "--scopes", "citizen:write")
    assert unbound.returncode == 2 and "--source-systems" in unbound.stderr, unbound.stderr
    pointless = _mdm(
        fresh_db_url,
        "clients", "create", "--name", "r", "--scopes", "*:read", "--source-systems", "hn-legacy",
    )  # fmt: skip
    assert pointless.returncode == 2 and "no write scope" in pointless.stderr, pointless.stderr
    made = _mdm(
        fresh_db_url,
        "clients", "create", "--name", "hn", "--scopes", "citizen:read,citizen:write",
        "--source-systems", "hn-legacy, national-portal,,hn-legacy",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "['hn-legacy', 'national-portal']" in made.stderr
    key = made.stdout.strip()
    reader = _mdm(fresh_db_url, "clients", "create", "--name", "rd", "--scopes", "*:read")
    assert reader.returncode == 0, reader.stderr
    engine = make_engine(fresh_db_url)
    with Session(engine) as session:
        client = authenticate(session, key)
        assert client is not None
        assert client.source_systems == {"hn-legacy", "national-portal"}
        # named before their first record: the source systems exist now
        names = set(session.execute(select(SourceSystem.name)).scalars())
        assert {"hn-legacy", "national-portal"} <= names
    listed = _listed(fresh_db_url)
    assert listed["hn"]["source_systems"] == ["hn-legacy", "national-portal"]
    assert listed["rd"]["source_systems"] == []

    rebound = _mdm(fresh_db_url, "clients", "bind", "hn", "--source-systems", "hcm-legacy")
    assert rebound.returncode == 0 and "['hcm-legacy']" in rebound.stdout, rebound.stderr
    with Session(engine) as session:
        client = authenticate(session, key)
        assert client is not None and client.source_systems == {"hcm-legacy"}
    for args, says in (
        (("rd", "--source-systems", "hn-legacy"), "no write scope"),
        (("nobody", "--source-systems", "hn-legacy"), "no client named"),
        (("hn", "--source-systems", ""), "--source-systems"),
    ):
        refused = _mdm(fresh_db_url, "clients", "bind", *args)
        assert refused.returncode == 2 and says in refused.stderr, (args, refused.stderr)
    listed = _listed(fresh_db_url)
    assert listed["hn"]["source_systems"] == ["hcm-legacy"]
    engine.dispose()
