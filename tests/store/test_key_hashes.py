"""Blocking keys are stored as 64-bit hashes; Postgres computes the same value with
the formula migration 0011 used, so the two can never drift apart."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from mdm.store.db import make_engine
from mdm.store.models.match import blocking_key_hash, blocking_key_hashes
from tests.conftest import IN_CI, Databases

_KEYS = ["name_dob:nguyen van an|1990-05-01", "pid:001090012345", "Đặng|Thuỷ", "x", "x"]


def test_the_batch_form_is_the_single_form_without_repeats() -> None:
    assert blocking_key_hashes("citizen", _KEYS) == list(
        dict.fromkeys(blocking_key_hash("citizen", k) for k in _KEYS)
    )
    assert len(blocking_key_hashes("citizen", _KEYS)) == 4
    # the entity type is part of the hash
    assert blocking_key_hashes("citizen", ["x"]) != blocking_key_hashes("organization", ["x"])


def test_postgres_computes_the_same_hashes(
    request: pytest.FixtureRequest, databases: Databases
) -> None:
    """On the Postgres test database only (SQLite has no ``md5()``): not a test per
    backend."""
    backends = str(request.config.getoption("--backends"))
    if "postgres" not in backends and not IN_CI:
        pytest.skip(f"!!! SKIPPED: postgres is not among --backends ({backends})")
    engine = make_engine(databases.shared("postgres"))
    try:
        with engine.connect() as conn:
            for key in dict.fromkeys(_KEYS):
                stored = conn.execute(
                    text(
                        "SELECT ('x' || substr(md5(:et || chr(31) || :key), 1, 16))"
                        "::bit(64)::bigint"
                    ),
                    {"et": "citizen", "key": key},
                ).scalar_one()
                assert stored == blocking_key_hashes("citizen", [key])[0], key
    finally:
        engine.dispose()
