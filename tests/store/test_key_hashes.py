"""Blocking keys are stored as 64-bit hashes; Postgres computes the same value with
the formula migration 0011 used, so the two can never drift apart."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from mdm.store.models.match import blocking_key_hash, blocking_key_hashes

_KEYS = ["name_dob:nguyen van an|1990-05-01", "pid:001090012345", "Đặng|Thuỷ", "x", "x"]


def test_the_batch_form_is_the_single_form_without_repeats() -> None:
    assert blocking_key_hashes("citizen", _KEYS) == list(
        dict.fromkeys(blocking_key_hash("citizen", k) for k in _KEYS)
    )
    assert len(blocking_key_hashes("citizen", _KEYS)) == 4
    # the entity type is part of the hash
    assert blocking_key_hashes("citizen", ["x"]) != blocking_key_hashes("organization", ["x"])


def test_postgres_computes_the_same_hashes(session: Session) -> None:
    if session.connection().dialect.name != "postgresql":
        pytest.skip("SQLite has no md5(); the formula is Postgres's")
    for key in dict.fromkeys(_KEYS):
        stored = session.execute(
            text("SELECT ('x' || substr(md5(:et || chr(31) || :key), 1, 16))::bit(64)::bigint"),
            {"et": "citizen", "key": key},
        ).scalar_one()
        assert stored == blocking_key_hashes("citizen", [key])[0], key
