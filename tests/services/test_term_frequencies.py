"""The batch run's term frequencies are stored for the incremental scorer: replaced
when they changed, left alone when not, values kept exactly (text COPY on
Postgres, so values holding COPY's special characters are part of the check)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest
from sqlalchemy import Engine, text

from mdm.services.matching import batch as svc
from mdm.store.db import make_engine


@pytest.fixture
def engine(fresh_db_url: str) -> Iterator[Engine]:
    eng = make_engine(fresh_db_url)
    yield eng
    eng.dispose()


def _table(rows: list[tuple[str, str, float]]) -> pa.Table:
    return pa.table(
        {
            "column_name": [r[0] for r in rows],
            "value": [r[1] for r in rows],
            "tf": [r[2] for r in rows],
        }
    )


def _stored(engine: Engine, entity_type: str) -> dict[tuple[str, str], float]:
    with engine.connect() as conn:
        return {
            (c, v): tf
            for c, v, tf in conn.execute(
                text("SELECT column_name, value, tf FROM term_frequencies WHERE entity_type = :et"),
                {"et": entity_type},
            )
        }


ROWS = [
    ("full_name_fold", "nguyen van an", 0.0123),
    ("full_name_fold", "tab\there", 1 / 3),
    ("phone", "+84912345678", 1e-06),
    ("name_core", "back\\slash", 0.5),
    ("name_core", "new\nline", 2.5e-07),
    ("given_fold", "an", 0.1),
]


def test_stored_then_unchanged_then_replaced(engine: Engine) -> None:
    changed, digest = svc._persist_tf(engine, "citizen", _table(ROWS))
    assert changed
    assert _stored(engine, "citizen") == {(c, v): tf for c, v, tf in ROWS}

    again, digest_again = svc._persist_tf(engine, "citizen", _table(list(reversed(ROWS))))
    assert not again and digest_again == digest  # order of the table does not matter

    other = [*ROWS[:-1], ("given_fold", "an", 0.2)]
    replaced, digest_other = svc._persist_tf(engine, "citizen", _table(other))
    assert replaced and digest_other != digest
    assert _stored(engine, "citizen") == {(c, v): tf for c, v, tf in other}

    # another entity type's frequencies are its own
    svc._persist_tf(engine, "organization", _table([("name_fold", "cty an", 1.0)]))
    assert _stored(engine, "citizen") == {(c, v): tf for c, v, tf in other}
    assert _stored(engine, "organization") == {("name_fold", "cty an"): 1.0}


def test_first_store_of_nothing_changes_nothing(engine: Engine) -> None:
    changed, digest = svc._persist_tf(engine, "citizen", _table([]))
    assert not changed
    assert _stored(engine, "citizen") == {}
    assert digest == svc._tf_digest(_table([]))
    # a first store of one type while another's are stored
    svc._persist_tf(engine, "organization", _table([("name_fold", "cty an", 1.0)]))
    changed, _ = svc._persist_tf(engine, "citizen", _table(ROWS))
    assert changed
    assert _stored(engine, "citizen") == {(c, v): tf for c, v, tf in ROWS}
