"""The feature pass of a large first load, on Postgres: batches computed in worker
processes, blocking keys loaded without their indexes and indexed afterwards. Both
must store exactly what the small, in-process, indexed pass stores.

The thresholds that switch these paths on (50,000 active records) are lowered here
so that ~1,500 generated citizens take them, in several batches.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, text

from mdm.ingest.mapping import load_mapping
from mdm.matching import load_rules
from mdm.services.ingest import ingest_file
from mdm.services.matching import features as feature_pass
from mdm.store.db import make_engine
from mdm.store.repositories import feature_index
from mdm.synth import SynthParams
from mdm.synth import generate as generate_synth
from tests.conftest import Databases

KEY_INDEXES = ("pk_blocking_keys", "ix_blocking_keys_source_record_id")


@pytest.fixture(scope="module")
def engine(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    out = tmp_path_factory.mktemp("synth-pass")
    generate_synth(
        out, SynthParams(provinces=2, citizens=700, organizations=5, dossiers=5, seed=11)
    )
    eng = make_engine(databases.fresh("postgres"))
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["files"]:
        if entry["entity_type"] == "citizen":
            ingest_file(
                eng,
                load_mapping(out / entry["mapping"]),
                out / entry["path"],
                source_name=entry["source_system"],
                workers=1,
            )
    yield eng
    eng.dispose()


def _stored(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            "features": conn.execute(
                text(
                    "SELECT source_record_id, entity_type, record_version, content_hash,"
                    " signature, features::text FROM match_features ORDER BY 1"
                )
            ).all(),
            "keys": conn.execute(
                text(
                    "SELECT entity_type, key_hash, source_record_id"
                    " FROM blocking_keys ORDER BY 2, 3"
                )
            ).all(),
        }


def _indexes(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {
            name
            for name in KEY_INDEXES
            if conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None
        }


def _clear(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM blocking_keys"))
        conn.execute(text("DELETE FROM match_features"))


def _large(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ~1,500 records a large pass, in batches of 200."""
    monkeypatch.setattr(feature_pass, "_PARALLEL_AFTER", 1)
    monkeypatch.setattr(feature_index, "_BULK_KEYS_AFTER", 1)
    monkeypatch.setattr(feature_index, "READ_BATCH", 200)


def test_workers_and_bulk_keys_store_what_the_plain_pass_stores(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = load_rules("citizen")
    _clear(engine)
    plain = feature_pass.write_features(
        engine, "citizen", rules, tmp_path / "a.parquet", persist=True
    )
    expected = _stored(engine)
    assert plain.written == len(expected["features"]) > 1000
    assert len(expected["keys"]) > 3 * plain.written

    _clear(engine)
    _large(monkeypatch)
    dropped: list[set[str]] = []
    real_store = feature_index.store_write

    def store_and_look(*args: Any) -> None:
        dropped.append(_indexes(engine))
        real_store(*args)

    monkeypatch.setattr(feature_index, "store_write", store_and_look)
    large = feature_pass.write_features(
        engine, "citizen", rules, tmp_path / "b.parquet", persist=True, workers=2
    )
    assert dropped and all(found == set() for found in dropped)  # bulk mode was on
    assert len(dropped) > 5  # several batches
    assert _indexes(engine) == set(KEY_INDEXES)  # and the indexes are back
    assert (large.written, large.reused) == (plain.written, 0)
    assert large.record_ids == plain.record_ids
    assert _stored(engine) == expected
    assert pq.read_table(tmp_path / "b.parquet").equals(pq.read_table(tmp_path / "a.parquet"))

    # a second large pass reuses every stored row (in the workers too): same parquet
    again = feature_pass.write_features(
        engine, "citizen", rules, tmp_path / "c.parquet", persist=True, workers=2
    )
    assert (again.written, again.reused) == (0, plain.written)
    assert pq.read_table(tmp_path / "c.parquet").equals(pq.read_table(tmp_path / "a.parquet"))
    assert _stored(engine) == expected


def test_a_failed_bulk_pass_leaves_the_indexes_built(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = load_rules("citizen")
    _clear(engine)
    _large(monkeypatch)
    real = feature_pass._feature_batch
    calls = []

    def fail_third(spec: Any, part: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return real(spec, part)

    monkeypatch.setattr(feature_pass, "_feature_batch", fail_third)
    with pytest.raises(RuntimeError, match="boom"):
        feature_pass.write_features(
            engine, "citizen", rules, tmp_path / "x.parquet", persist=True, workers=1
        )
    assert _indexes(engine) == set(KEY_INDEXES)


def test_indexes_a_killed_pass_dropped_are_rebuilt_without_duplicates(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass killed in bulk mode (kill -9: no ``finally``) leaves the indexes
    dropped, and a registration meanwhile may have stored a key twice. The next pass
    removes the duplicate and rebuilds them before anything else."""
    rules = load_rules("citizen")
    _clear(engine)
    feature_pass.write_features(engine, "citizen", rules, tmp_path / "a.parquet", persist=True)
    expected = _stored(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE blocking_keys DROP CONSTRAINT pk_blocking_keys")
        conn.exec_driver_sql("DROP INDEX ix_blocking_keys_source_record_id")
        conn.exec_driver_sql(
            "INSERT INTO blocking_keys SELECT * FROM blocking_keys"
            " WHERE source_record_id = (SELECT min(source_record_id) FROM blocking_keys)"
        )
    assert _indexes(engine) == set()
    # a small pass (no bulk mode) still repairs the index first
    again = feature_pass.write_features(
        engine, "citizen", rules, tmp_path / "b.parquet", persist=True
    )
    assert again.written == 0
    assert _indexes(engine) == set(KEY_INDEXES)
    assert _stored(engine) == expected


def test_bulk_mode_only_on_an_empty_table(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _large(monkeypatch)
    _clear(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO blocking_keys (entity_type, key_hash, source_record_id)"
            " SELECT 'citizen', 1, min(id) FROM source_records"
        )
    assert feature_index.begin_bulk_keys(engine, 2) is False
    assert _indexes(engine) == set(KEY_INDEXES)
    _clear(engine)
    assert feature_index.begin_bulk_keys(engine, 2) is True
    assert _indexes(engine) == set()
    feature_index.restore_key_indexes(engine)
    assert _indexes(engine) == set(KEY_INDEXES)


def test_match_workers_setting_keeps_a_large_pass_in_process(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``MDM_MATCH_WORKERS=1`` (e.g. a host shared with the API): no worker process,
    the same rows."""
    from mdm.config import get_settings
    from mdm.services.bulk import bulk_workers

    rules = load_rules("citizen")
    _clear(engine)
    feature_pass.write_features(engine, "citizen", rules, tmp_path / "a.parquet", persist=True)
    expected = _stored(engine)
    _clear(engine)
    _large(monkeypatch)

    def no_workers(*args: Any) -> Any:
        raise AssertionError("worker processes started")

    monkeypatch.setattr(feature_pass, "_batches_in_workers", no_workers)
    monkeypatch.setenv("MDM_MATCH_WORKERS", "1")
    get_settings.cache_clear()
    try:
        assert bulk_workers() == 1
        feature_pass.write_features(engine, "citizen", rules, tmp_path / "b.parquet", persist=True)
    finally:
        monkeypatch.delenv("MDM_MATCH_WORKERS")
        get_settings.cache_clear()
    assert _stored(engine) == expected
    assert bulk_workers() >= 1
