"""API keys, steward passwords and console session tokens are stored only hashed:
created through the real commands and a real console login, then every column of
every table (both databases) is searched for them in plain text."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from typing import Any

from sqlalchemy import inspect, text

from mdm.steward.app import COOKIE
from mdm.store.db import make_engine
from tests.servers import running_server
from tests.steward.http import login

PASSWORD = "Tr4m-b0ng-hong-nhan-2026!"


def _mdm(url: str, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mdm", *args],
        env={**os.environ, "MDM_DATABASE_URL": url},
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _cells(url: str) -> list[tuple[str, str, str]]:
    """(table, column, value as text) of every non-null cell of the database."""
    engine = make_engine(url)
    out: list[tuple[str, str, str]] = []
    try:
        names = inspect(engine).get_table_names()
        with engine.connect() as conn:
            for table in names:
                result = conn.execute(text(f'SELECT * FROM "{table}"'))
                columns = list(result.keys())
                for row in result:
                    for column, value in zip(columns, row, strict=True):
                        if value is None:
                            continue
                        shown: Any = value
                        if isinstance(value, dict | list):
                            shown = json.dumps(value, ensure_ascii=False)
                        elif isinstance(value, bytes | memoryview):
                            shown = bytes(value).decode("latin-1")
                        out.append((table, column, str(shown)))
    finally:
        engine.dispose()
    return out


def test_keys_passwords_and_sessions_are_stored_hashed(fresh_db_url: str) -> None:
    printed = _mdm(fresh_db_url, "clients", "create", "--name", "agency-x", "--scopes", "*:read")
    key = re.search(r"mdm_[0-9a-f]{8}_\S+", printed)
    assert key, printed
    api_key = key.group(0)
    _mdm(
        fresh_db_url,
        "stewards", "create", "--username", "chi.lan", "--role", "admin", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    shown = _mdm(fresh_db_url, "stewards", "create", "--username", "van.ba", "--role", "reviewer")
    generated = re.search(r"password \(shown once\): (\S+)", shown)
    assert generated, shown

    with running_server(fresh_db_url) as base:
        client, csrf = login(base, "chi.lan", PASSWORD)
        session_token = client.cookies.get(COOKIE)
        assert session_token
        # the key works, so it is the real one
        r = client.get(f"{base}/v1/entities/P-0000000000000", headers={"X-API-Key": api_key})
        assert r.status_code in (400, 404), r.text
        client.close()

    secrets = {
        "api key": api_key,
        # the secret may itself hold "_" (URL-safe base64): split after the prefix
        "api key secret": api_key.split("_", 2)[2],
        "password": PASSWORD,
        "generated password": generated.group(1),
        "session token": session_token,
    }
    # The CSRF token is kept in the session's row as is (synchronizer token): it is no
    # credential, a forged form still needs the session cookie, which is hashed.
    assert csrf
    cells = _cells(fresh_db_url)
    leaks = [
        (what, table, column)
        for table, column, value in cells
        for what, secret in secrets.items()
        if secret in value
    ]
    assert leaks == [], leaks
    # and the scan did see where they live: the key's hash, argon2id hashes
    everything = "\n".join(value for _t, _c, value in cells)
    assert hashlib.sha256(api_key.encode()).hexdigest() in everything
    assert everything.count("$argon2id$") >= 2
