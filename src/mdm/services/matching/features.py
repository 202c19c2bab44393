"""The feature pass: the active records of a type turned into feature rows (a
parquet file the batch run and training read), and with ``persist`` the stored
candidate index brought up to date, writing only what changed. Large passes on
Postgres compute in worker processes; the SQL is
:mod:`mdm.store.repositories.feature_index`."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson

from mdm.matching import (
    MatchingRules,
    arrow_schema,
    blocking_keys,
    build_features,
    rows_to_arrow,
)
from mdm.matching.features import FeatureRow
from mdm.services.bulk import BackgroundWriter, OrderedProcessPool, bulk_workers, gc_paused
from mdm.store.db import Engine
from mdm.store.repositories import feature_index
from mdm.store.repositories.feature_index import ActiveRow, FeatureWrite, IndexRow


@dataclass(slots=True)
class StoredRecord:
    record_id: int
    version: int
    source_system: str
    #: the payload as JSON text until :attr:`standardized` parses it (a record whose
    #: stored features are reused never needs it)
    payload: str | bytes | dict[str, Any]
    stored_hash: str | None
    stored_version: int | None = None
    stored_signature: str | None = None
    stored_features: str | None = None

    @property
    def standardized(self) -> dict[str, Any]:
        if not isinstance(self.payload, dict):
            self.payload = _loads(self.payload)
        return cast(dict[str, Any], self.payload)


def _loads(text_: str | bytes) -> Any:
    try:
        return orjson.loads(text_)
    except orjson.JSONDecodeError:  # e.g. an integer past 64 bits: the slow, exact parser
        return json.loads(text_)


def features_hash(features: FeatureRow, keys: list[str]) -> str:
    """Covers the feature row (its keys in ``FEATURE_COLUMNS`` order, always the same)
    and the blocking keys. Hashes written by an earlier encoding differ once: that
    run rewrites every feature row, later runs only what changed."""
    return hashlib.sha256(orjson.dumps([features, keys])).hexdigest()


def feature_signature(entity_type: str, rules: MatchingRules) -> str:
    """What a stored feature row was computed with: the feature code (and the text
    folding, syllable and identifier code it uses, the syllable data's and the unit
    data's versions), the blocking-key code and the rules' blocking columns.

    A row whose record version and signature are current is reused as stored (the
    pass spends most of its time computing features); any change to that code or
    to the blocking rules changes the signature and every row is recomputed once.
    """
    spec = orjson.dumps([entity_type, rules.blocking.prediction]).decode()
    found = _SIGNATURES.get(spec)
    if found is None:
        import inspect

        from mdm.matching import features as features_module
        from mdm.matching import incremental
        from mdm.standardize import ids as ids_module
        from mdm.standardize import syllables as syllables_module
        from mdm.standardize import text as text_module
        from mdm.standardize.units import dataset_version

        digest = hashlib.sha256(spec.encode())
        for part in (
            features_module,
            text_module,
            ids_module,  # the CMND regions and personal-ID provinces
            syllables_module,  # run-together name syllables split, split ones joined
            syllables_module.data_version(),  # the syllable inventory and name prior
            dataset_version(),  # which 2025 province a pre-2025 one became
            incremental.blocking_keys,
            incremental._render,
            incremental._key_rules,
            incremental.KEY_SEPARATOR,
        ):
            source = part if isinstance(part, str) else inspect.getsource(part)
            digest.update(source.encode())
        found = _SIGNATURES[spec] = digest.hexdigest()[:32]
    return found


_SIGNATURES: dict[str, str] = {}


@dataclass
class FeaturePass:
    record_ids: list[int] = field(default_factory=list)
    written: int = 0
    reused: int = 0
    removed: int = 0
    seconds: float = 0.0


Changed = list[tuple[StoredRecord, FeatureRow, list[str], str]]


@dataclass(slots=True)
class _BatchResult:
    table: Any  # pyarrow.Table: the batch's feature rows, in record order
    reused: int
    write: FeatureWrite | None


@dataclass(frozen=True, slots=True)
class _PassSpec:
    """What a feature pass's batches are computed with (sent once to each worker)."""

    entity_type: str
    rules: MatchingRules
    signature: str
    persist: bool
    copy: bool  # write COPY text (Postgres) rather than rows


def _feature_batch(spec: _PassSpec, part: list[ActiveRow]) -> _BatchResult:
    """One batch of a feature pass, pure (no database): each record's stored feature
    row is reused when its version and :func:`feature_signature` are current, the
    others are computed, and those whose features or keys changed are written."""
    entity_type, rules, signature = spec.entity_type, spec.rules, spec.signature
    rows: list[FeatureRow] = []
    changed: Changed = []
    reused = 0
    for rid, version, system, payload, stored_hash, stored_version, stored_sig, stored in part:
        if stored is not None and stored_sig == signature and stored_version == version:
            rows.append(_loads(stored))
            reused += 1
            continue
        rec = StoredRecord(rid, version, system, payload, stored_hash, stored_version, stored_sig)
        feats = build_features(entity_type, str(rid), system, rec.standardized)
        rows.append(feats)
        if spec.persist:
            keys = blocking_keys(feats, rules)
            digest = features_hash(feats, keys)
            if digest != stored_hash or stored_sig != signature:
                changed.append((rec, feats, keys, digest))
    write = _prepare_write(entity_type, signature, spec.copy, changed) if changed else None
    return _BatchResult(rows_to_arrow(entity_type, rows), reused, write)


def _prepare_write(
    entity_type: str, signature: str | None, copy: bool, changed: Changed
) -> FeatureWrite:
    rows: list[IndexRow] = [
        (rec.record_id, rec.version, feats, keys, digest) for rec, feats, keys, digest in changed
    ]
    replace = [rec.record_id for rec, *_ in changed if rec.stored_hash is not None]
    return feature_index.prepare_write(entity_type, signature, copy, rows, replace)


# ----------------------------------------------------- feature worker processes

# A first pass computes every record's features: past this many active records the
# batches go to worker processes (the pass is pure Python and held one core; the
# database's share is small once the keys are bulk-loaded, see
# feature_index.begin_bulk_keys)
_PARALLEL_AFTER = 50_000
_worker_spec: _PassSpec | None = None


def _init_feature_worker(spec: _PassSpec) -> None:
    global _worker_spec
    import gc

    _worker_spec = spec
    gc.freeze()  # what the worker holds from now on is never garbage


def _worker_batch(part: list[ActiveRow]) -> _BatchResult:
    assert _worker_spec is not None
    with gc_paused():
        return _feature_batch(_worker_spec, part)


def _batches_in_workers(
    spec: _PassSpec, parts: Iterator[list[ActiveRow]], workers: int
) -> Iterator[tuple[list[ActiveRow], _BatchResult]]:
    """``(batch, result)`` in batch order, computed by ``workers`` processes."""
    with OrderedProcessPool(workers, _init_feature_worker, (spec,)) as pool:
        for part in parts:
            yield from pool.submit(_worker_batch, part, tag=part)
        yield from pool.finish()


def write_features(
    engine: Engine,
    entity_type: str,
    rules: MatchingRules,
    parquet_path: Path,
    *,
    persist: bool,
    workers: int | None = None,
) -> FeaturePass:
    """Stream the active records into a parquet file of feature rows; with
    ``persist``, also bring ``match_features`` / ``blocking_keys`` up to date,
    writing only records whose features or keys changed (one transaction a batch),
    and reuse the stored row of a record whose version and
    :func:`feature_signature` are current instead of computing it again.

    On Postgres, batches of a large pass are computed by worker processes
    (``workers``, default :func:`~mdm.services.bulk.bulk_workers`) while this
    process reads the next batches and a background thread writes the results;
    smaller passes and SQLite compute in this process."""
    import pyarrow.parquet as pq

    started = time.perf_counter()
    out = FeaturePass()
    postgres = engine.dialect.name == "postgresql"
    spec = _PassSpec(entity_type, rules, feature_signature(entity_type, rules), persist, postgres)
    writer = pq.ParquetWriter(str(parquet_path), arrow_schema(entity_type))
    # On Postgres one thread writes batch N while the next ones are computed; at most
    # one batch waits for it. SQLite has one writer: written in line.
    store = _BackgroundStore(engine, entity_type, spec.signature) if postgres else None
    # how many records the pass reads decides its bulk paths (Postgres only)
    active = 0
    if postgres:
        with engine.connect() as conn:
            active = feature_index.active_count(conn, entity_type)
    bulk_keys = persist and postgres and feature_index.begin_bulk_keys(engine, active)
    if workers is None:
        workers = bulk_workers() if postgres else 1
    try:
        with gc_paused(), engine.connect() as conn:
            parts = feature_index.iter_active(conn, entity_type, persist, signature=spec.signature)
            if workers > 1 and active >= _PARALLEL_AFTER:
                results = _batches_in_workers(spec, parts, workers)
            else:
                results = ((part, _feature_batch(spec, part)) for part in parts)
            for part, result in results:
                out.record_ids.extend(r[0] for r in part)
                out.reused += result.reused
                writer.write_table(result.table)
                if result.write is not None:
                    if store is not None:
                        store.submit(result.write)
                    else:
                        feature_index.store_write(engine, entity_type, result.write, spec.signature)
                    out.written += len(result.write.ids)
        if store is not None:
            store.drain()
    finally:
        if store is not None:
            store.close()
        writer.close()
        if bulk_keys:
            # also after an error: the candidate index is whole again (or, if even
            # this fails, the next pass's begin_bulk_keys rebuilds it)
            feature_index.restore_key_indexes(engine)
    if persist:
        out.removed = feature_index.drop_inactive_features(engine, entity_type)
        feature_index.analyze_after_pass(engine, out.written)
    out.seconds = time.perf_counter() - started
    return out


class _BackgroundStore:
    """:func:`~mdm.store.repositories.feature_index.store_write` on one background
    thread, one batch in flight."""

    def __init__(self, engine: Engine, entity_type: str, signature: str) -> None:
        self._engine = engine
        self._entity_type = entity_type
        self._signature = signature
        self._writer = BackgroundWriter("mdm-features")

    def submit(self, write: FeatureWrite) -> None:
        self._writer.submit(
            feature_index.store_write, self._engine, self._entity_type, write, self._signature
        )

    def drain(self) -> None:
        self._writer.drain()

    def close(self) -> None:
        # after an error elsewhere: let the batch in flight finish (its transaction
        # commits or rolls back whole), never leave a thread writing behind us
        self._writer.close()


def store_features(engine: Engine, entity_type: str, changed: Changed, signature: str) -> None:
    """Write the feature rows and keys of ``changed`` (one transaction)."""
    copy = engine.dialect.name == "postgresql"
    feature_index.store_write(
        engine, entity_type, _prepare_write(entity_type, signature, copy, changed), signature
    )
