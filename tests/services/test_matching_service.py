"""Matching wired to the store, on SQLite and Postgres.

One registry per backend (module scope, ~2,500 generated citizens with known truth,
twins and same-name parent/child pairs): train → batch run, then the properties
the registry promises: one active link per record, reruns change nothing, steward
decisions constrain clustering (also through chains), the incremental path
decides linked / review / created, hard negatives are never linked automatically.
Tests run in file order: the steward tests come last because they change the store.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, and_, func, insert, select, text
from sqlalchemy.orm import Session

from mdm.exceptions import BadRequest
from mdm.ingest.mapping import load_mapping
from mdm.matching import blocking_keys, build_features, load_rules
from mdm.services import matching as svc
from mdm.services.ingest import ingest_file
from mdm.services.matching import features as feature_pass
from mdm.store.db import make_engine
from mdm.store.models import (
    BlockingKey,
    Entity,
    EntityVersion,
    Link,
    MatchCandidate,
    MatchFeatures,
    OutboxEvent,
    SourceRecord,
    SourceRecordVersion,
    SourceSystem,
    StewardDecision,
    TermFrequency,
)
from mdm.store.models.match import blocking_key_hashes
from mdm.synth import SynthParams
from mdm.synth import generate as generate_synth
from tests.conftest import Databases

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@dataclass
class Registry:
    engine: Engine
    rules_dir: Path
    truth: dict[int, str]  # source record id → true entity
    hard: list[tuple[str, int, int]]  # (kind, record, record): never one entity
    std: dict[int, dict[str, Any]]


def _rules_dir(tmp: Path) -> Path:
    """The shipped rules with smaller training samples (the recipe is the same)."""
    repo_rules = Path(__file__).resolve().parents[2] / "matching_rules"
    for entity in ("citizen", "organization", "dossier"):
        doc = yaml.safe_load((repo_rules / f"{entity}.yaml").read_text(encoding="utf-8"))
        doc["training"] = {**doc.get("training", {}), "u_max_pairs": 3e5, "em_max_pairs": 2e5}
        (tmp / f"{entity}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return tmp


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mdm synth`` citizens (about 3,000 records with twins, same-name parent/child
    pairs and namesakes), shared by both backends."""
    out = tmp_path_factory.mktemp("synth")
    generate_synth(
        out, SynthParams(provinces=2, citizens=1300, organizations=10, dossiers=10, seed=7)
    )
    return out


def _ingest(engine: Engine, synth: Path) -> None:
    manifest = json.loads((synth / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["files"]:
        if entry["entity_type"] != "citizen":
            continue
        ingest_file(
            engine,
            load_mapping(synth / entry["mapping"]),
            synth / entry["path"],
            source_name=entry["source_system"],
            workers=1,
        )


def _refs(engine: Engine) -> dict[tuple[str, str], int]:
    with engine.connect() as conn:
        return {
            (system, key): int(rid)
            for system, key, rid in conn.execute(
                select(SourceSystem.name, SourceRecord.source_key, SourceRecord.id).join(
                    SourceSystem, SourceSystem.id == SourceRecord.source_system_id
                )
            )
        }


@pytest.fixture(scope="module")
def registry(
    backend: str,
    databases: Databases,
    synth_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Registry]:
    engine = make_engine(databases.fresh(backend))
    rules_dir = _rules_dir(tmp_path_factory.mktemp(f"rules-{backend}"))
    _ingest(engine, synth_dir)
    refs = _refs(engine)
    truth: dict[int, str] = {}
    with (synth_dir / "truth.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            rid = refs.get((row["source_system"], row["source_key"]))
            if rid is not None and row["entity_type"] == "citizen":
                truth[rid] = row["true_entity"]
    hard: list[tuple[str, int, int]] = []
    with (synth_dir / "hard_negatives.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            a = refs.get((row["source_system"], row["source_key_a"]))
            b = refs.get((row["source_system"], row["source_key_b"]))
            if a is not None and b is not None:
                hard.append((row["kind"], a, b))
    report = svc.train_from_store(engine, "citizen", rules_dir=rules_dir, threads=2)
    assert report.records == len(truth)
    assert svc.model_path("citizen", rules_dir).exists()
    first = svc.run_batch(engine, "citizen", rules_dir=rules_dir, threads=2)
    # training stored the feature rows: the run reuses every one of them
    assert (first.features_reused, first.features_written) == (len(truth), 0)
    with engine.connect() as conn:
        std = {
            int(rid): dict(value)
            for rid, value in conn.execute(
                select(SourceRecordVersion.source_record_id, SourceRecordVersion.standardized)
            )
        }
    yield Registry(engine, rules_dir, truth, hard, std)
    svc.clear_cache()
    engine.dispose()


def _entity_of(engine: Engine) -> dict[int, int]:
    with engine.connect() as conn:
        return {
            int(r): int(e)
            for r, e in conn.execute(
                select(Link.source_record_id, Link.entity_id).where(Link.active.is_(True))
            )
        }


def _snapshot(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        out: dict[str, Any] = {}
        for model in (
            Entity,
            EntityVersion,
            Link,
            OutboxEvent,
            MatchCandidate,
            BlockingKey,
            MatchFeatures,
            TermFrequency,
        ):
            out[model.__tablename__] = conn.execute(
                select(func.count()).select_from(model)
            ).scalar_one()
        out["links"] = sorted(
            tuple(r)
            for r in conn.execute(
                select(Link.id, Link.source_record_id, Link.entity_id, Link.active)
            )
        )
        out["candidates"] = sorted(
            (r[0], r[1], r[2], round(r[3], 9))
            for r in conn.execute(
                select(
                    MatchCandidate.left_record_id,
                    MatchCandidate.right_record_id,
                    MatchCandidate.status,
                    MatchCandidate.score,
                )
            )
        )
        out["entities"] = sorted(
            tuple(r) for r in conn.execute(select(Entity.id, Entity.version, Entity.status))
        )
    return out


def test_every_active_record_has_exactly_one_active_link(registry: Registry) -> None:
    with registry.engine.connect() as conn:
        per_record = dict(
            conn.execute(
                select(Link.source_record_id, func.count())
                .where(Link.active.is_(True))
                .group_by(Link.source_record_id)
            ).all()
        )
        active = conn.execute(
            select(func.count()).select_from(SourceRecord).where(SourceRecord.status == "active")
        ).scalar_one()
    assert len(per_record) == active == len(registry.truth)
    assert set(per_record.values()) == {1}


def test_links_follow_the_truth(registry: Registry) -> None:
    entity_of = _entity_of(registry.engine)
    truth = registry.truth
    records = list(entity_of)
    tp = predicted = actual = 0
    by_entity: dict[int, list[int]] = {}
    for r in records:
        by_entity.setdefault(entity_of[r], []).append(r)
    for members in by_entity.values():
        n = len(members)
        predicted += n * (n - 1) // 2
        for i, a in enumerate(members):
            tp += sum(1 for b in members[i + 1 :] if truth[a] == truth[b])
    by_truth: dict[int, int] = {}
    for r in records:
        by_truth[truth[r]] = by_truth.get(truth[r], 0) + 1
    actual = sum(n * (n - 1) // 2 for n in by_truth.values())
    assert tp / predicted >= 0.98
    assert tp / actual >= 0.8


def test_candidates_are_ordered_and_explained(registry: Registry) -> None:
    names = {c.name for c in load_rules("citizen", registry.rules_dir).comparisons}
    with registry.engine.connect() as conn:
        rows = conn.execute(
            select(
                MatchCandidate.left_record_id,
                MatchCandidate.right_record_id,
                MatchCandidate.score,
                MatchCandidate.match_weight,
                MatchCandidate.weights,
                MatchCandidate.status,
            )
        ).all()
    assert rows, "the generated data has pairs in the review band"
    for left, right, score, weight, weights, status in rows:
        assert left < right
        assert 0 < score < 1
        assert set(weights) == names
        assert status == "pending"
        assert weight == pytest.approx(sum(weights.values()) + _prior_weight(registry), abs=1e-6)


def _prior_weight(registry: Registry) -> float:
    from mdm.matching import MatchModel

    rules = load_rules("citizen", registry.rules_dir)
    return MatchModel.load(svc.model_path("citizen", registry.rules_dir), rules).prior_weight


def test_twins_and_parent_child_are_never_auto_linked(registry: Registry) -> None:
    entity_of = _entity_of(registry.engine)
    kinds = {kind for kind, _a, _b in registry.hard}
    assert {"twins", "parent_child"} <= kinds
    for kind, a, b in registry.hard:
        if kind in ("twins", "parent_child"):
            assert entity_of[a] != entity_of[b], (kind, a, b)


def test_blocking_keys_and_features_cover_every_record(registry: Registry) -> None:
    with registry.engine.connect() as conn:
        features = conn.execute(select(func.count()).select_from(MatchFeatures)).scalar_one()
        keyed = conn.execute(
            select(func.count(func.distinct(BlockingKey.source_record_id)))
        ).scalar_one()
        tf = conn.execute(select(func.count()).select_from(TermFrequency)).scalar_one()
        # no foreign keys on the derived tables (migration 0010): every row must
        # belong to an active source record of its entity type
        orphans = {
            model.__tablename__: conn.execute(
                select(func.count())
                .select_from(model)
                .outerjoin(
                    SourceRecord,
                    and_(
                        SourceRecord.id == model.source_record_id,
                        SourceRecord.status == "active",
                        SourceRecord.entity_type == model.entity_type,
                    ),
                )
                .where(SourceRecord.id.is_(None))
            ).scalar_one()
            for model in (BlockingKey, MatchFeatures)
        }
    assert features == len(registry.truth)
    assert keyed >= 0.95 * features
    assert tf > 0
    assert orphans == {"blocking_keys": 0, "match_features": 0}


def _index_rows(conn: Any, record: int) -> tuple[tuple[str, int], list[int]]:
    """A record's stored feature row (content hash, record version) and its keys'
    hashes."""
    row = conn.execute(
        select(MatchFeatures.content_hash, MatchFeatures.record_version).where(
            MatchFeatures.source_record_id == record
        )
    ).one()
    keys = conn.execute(
        select(BlockingKey.key_hash).where(BlockingKey.source_record_id == record)
    ).scalars()
    return (row.content_hash, row.record_version), sorted(keys)


def test_features_written_by_the_api_during_a_run_are_replaced_not_fatal(
    registry: Registry,
) -> None:
    """A record the run read without features, whose features the API wrote before
    the run's write (a registration racing a long run): the run replaces them."""
    with registry.engine.connect() as conn:
        record = conn.execute(select(func.min(MatchFeatures.source_record_id))).scalar_one()
        (_hash, version), keys_before = _index_rows(conn, record)
        system = conn.execute(
            select(SourceSystem.name)
            .join(SourceRecord, SourceRecord.source_system_id == SourceSystem.id)
            .where(SourceRecord.id == record)
        ).scalar_one()
    rules = load_rules("citizen", registry.rules_dir)
    feats = build_features("citizen", str(record), system, registry.std[record])
    keys = blocking_keys(feats, rules)
    stale_read = feature_pass.StoredRecord(record, version, system, {}, None)
    feature_pass.store_features(
        registry.engine,
        "citizen",
        [(stale_read, feats, keys, feature_pass.features_hash(feats, keys))],
        feature_pass.feature_signature("citizen", rules),
    )
    with registry.engine.connect() as conn:
        after, keys_after = _index_rows(conn, record)
    assert after == (feature_pass.features_hash(feats, keys), version)
    assert keys_after == sorted(blocking_key_hashes("citizen", keys)) and keys_before


def test_rerun_changes_nothing(registry: Registry) -> None:
    before = _snapshot(registry.engine)
    summary = svc.run_batch(registry.engine, "citizen", rules_dir=registry.rules_dir, threads=2)
    assert summary.features_written == 0
    assert summary.features_reused == summary.records > 0
    assert not summary.tf_changed
    assert summary.candidates.get("new", 0) == 0
    assert summary.identity["entities_created"] == 0
    assert summary.identity["links_moved"] == 0
    assert _snapshot(registry.engine) == before


def test_changed_feature_code_recomputes_every_row_once(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored row is reused only under the signature of the code and rules that
    computed it: a new signature recomputes (and re-signs) every row, once."""
    before = _snapshot(registry.engine)
    real = feature_pass.feature_signature

    def changed_code(entity_type: str, rules: Any) -> str:
        return hashlib.sha256(real(entity_type, rules).encode()).hexdigest()[:32]

    monkeypatch.setattr(feature_pass, "feature_signature", changed_code)
    summary = svc.run_batch(registry.engine, "citizen", rules_dir=registry.rules_dir, threads=2)
    assert summary.features_reused == 0
    assert summary.features_written == summary.records > 0
    again = svc.run_batch(registry.engine, "citizen", rules_dir=registry.rules_dir, threads=2)
    assert (again.features_reused, again.features_written) == (again.records, 0)
    monkeypatch.setattr(feature_pass, "feature_signature", real)
    back = svc.run_batch(registry.engine, "citizen", rules_dir=registry.rules_dir, threads=2)
    assert back.features_written == back.records
    # the same features, keys and links throughout: only the signatures changed
    assert _snapshot(registry.engine) == before


def test_unknown_backend_is_refused_clearly(registry: Registry) -> None:
    with pytest.raises(BadRequest, match="unknown backend"):
        svc.run_batch(registry.engine, "citizen", "polars", rules_dir=registry.rules_dir)


def test_spark_backend_changes_nothing(
    registry: Registry, backend: str, request: pytest.FixtureRequest
) -> None:
    """Spark scores what DuckDB scored: on the store DuckDB has just matched, a
    ``--backend spark`` run writes nothing (links, candidates, entities, events).
    One database is enough: the engine that scores pairs does not touch the store."""
    if backend != "sqlite":
        pytest.skip("Spark replaces only the scoring engine; checked on SQLite")
    spark = request.getfixturevalue("spark")  # only now: no JVM for a skipped test
    before = _snapshot(registry.engine)
    summary = svc.run_batch(
        registry.engine,
        "citizen",
        "spark",
        rules_dir=registry.rules_dir,
        threads=2,
        spark_session=spark,
    )
    assert summary.scored_pairs > 0
    assert summary.features_written == 0
    assert not summary.tf_changed
    assert summary.candidates.get("new", 0) == 0
    assert summary.identity["entities_created"] == 0
    assert summary.identity["links_moved"] == 0
    assert _snapshot(registry.engine) == before


# ------------------------------------------------------------------ match_one


def _canonical(engine: Engine, entity_id: int) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(select(Entity.canonical_id).where(Entity.id == entity_id)).scalar_one()
        )


def test_match_one_links_a_duplicate_to_its_entity(registry: Registry) -> None:
    entity_of = _entity_of(registry.engine)
    sizes: dict[int, int] = {}
    for e in entity_of.values():
        sizes[e] = sizes.get(e, 0) + 1
    record = next(r for r, e in sorted(entity_of.items()) if sizes[e] >= 2)
    with Session(registry.engine) as session:
        decision = svc.match_one(
            session, "citizen", registry.std[record], rules_dir=registry.rules_dir
        )
    assert decision.outcome == "linked"
    assert decision.entity_id == entity_of[record]
    assert decision.canonical_id == _canonical(registry.engine, entity_of[record])
    assert decision.candidates and decision.candidates[0].weights


def test_match_one_creates_when_nothing_matches(registry: Registry) -> None:
    std = {
        "full_name": "Quách Zyxw Unseen",
        "date_of_birth": "1901-02-03",
        "sex": "female",
        "phone": "+84999999999",
    }
    with Session(registry.engine) as session:
        decision = svc.match_one(session, "citizen", std, rules_dir=registry.rules_dir)
    assert decision.outcome == "created"
    assert decision.canonical_id is None


def test_match_one_sends_the_review_band_to_review(registry: Registry) -> None:
    entity_of = _entity_of(registry.engine)
    sizes: dict[int, int] = {}
    for e in entity_of.values():
        sizes[e] = sizes.get(e, 0) + 1
    with registry.engine.connect() as conn:
        pending = conn.execute(
            select(MatchCandidate.left_record_id, MatchCandidate.right_record_id).where(
                MatchCandidate.status == "pending"
            )
        ).all()
    # a record alone in its entity, with a review-band partner
    chosen = [(a, b) for a, b in pending if sizes[entity_of[a]] == 1 or sizes[entity_of[b]] == 1]
    assert chosen
    a, b = chosen[0]
    alone, partner = (a, b) if sizes[entity_of[a]] == 1 else (b, a)
    with Session(registry.engine) as session:
        decision = svc.match_one(
            session,
            "citizen",
            registry.std[alone],
            source_record_id=alone,
            rules_dir=registry.rules_dir,
        )
    assert decision.outcome == "review"
    found = {c.source_record_id: c for c in decision.candidates}
    assert partner in found
    assert found[partner].weights and found[partner].entity_id == entity_of[partner]


def test_add_record_features_makes_a_new_record_findable(registry: Registry) -> None:
    std = {
        "full_name": "Trịnh Văn Mới",
        "date_of_birth": "1977-07-07",
        "sex": "male",
        "personal_id": "001077123456",
    }
    with registry.engine.begin() as conn:
        system = conn.execute(select(SourceSystem.id).limit(1)).scalar_one()
        rid = conn.execute(
            insert(SourceRecord)
            .values(
                source_system_id=system,
                source_key="api-new-1",
                entity_type="citizen",
                first_seen_at=NOW,
                updated_at=NOW,
            )
            .returning(SourceRecord.id)
        ).scalar_one()
    with Session(registry.engine) as session, session.begin():
        keys = svc.add_record_features(
            session, "citizen", rid, std, source_system="api", rules_dir=registry.rules_dir
        )
        assert keys
        found = svc.SqlCandidateSource(session, "citizen").candidates(keys)
        assert str(rid) in {str(row["unique_id"]) for row in found}
        # the same person again: review (the candidate has no entity yet), not created
        decision = svc.match_one(session, "citizen", std, rules_dir=registry.rules_dir)
        assert decision.outcome == "review"
        svc.remove_record_features(session, rid)
        session.rollback()


# ------------------------------------------------------------ steward decisions


def _decide(engine: Engine, kind: str, a: int, b: int) -> None:
    left, right = min(a, b), max(a, b)
    with engine.begin() as conn:
        conn.execute(
            insert(StewardDecision).values(
                kind=kind,
                left_record_id=left,
                right_record_id=right,
                decided_by="steward:test",
                decided_at=NOW,
                active=True,
            )
        )


def _chain_cluster(registry: Registry) -> list[int]:
    """Members of an entity of three or more records (so some two of them may be
    joined only through a third: the transitive case), untouched by stewards."""
    entity_of = _entity_of(registry.engine)
    with registry.engine.connect() as conn:
        decided = {
            int(r)
            for pair in conn.execute(
                select(StewardDecision.left_record_id, StewardDecision.right_record_id)
            )
            for r in pair
        }
    by_entity: dict[int, list[int]] = {}
    for r, e in entity_of.items():
        by_entity.setdefault(e, []).append(r)
    big = [sorted(m) for m in by_entity.values() if len(m) >= 3 and not decided.intersection(m)]
    assert big, "the generated data has entities of three or more records"
    return big[0]


def test_cannot_link_splits_even_a_chained_cluster(registry: Registry) -> None:
    members = _chain_cluster(registry)
    a, c = members[0], members[-1]
    _decide(registry.engine, "cannot_link", a, c)
    svc.run_batch(registry.engine, "citizen", rules_dir=registry.rules_dir, threads=2)
    entity_of = _entity_of(registry.engine)
    assert entity_of[a] != entity_of[c]
    # and it holds on the next run too (invariant 4)
    svc.run_batch(registry.engine, "citizen", rules_dir=registry.rules_dir, threads=2)
    entity_of = _entity_of(registry.engine)
    assert entity_of[a] != entity_of[c]
    # the pair is a steward's decision now: not queued for review
    with registry.engine.connect() as conn:
        queued = conn.execute(
            select(func.count())
            .select_from(MatchCandidate)
            .where(
                MatchCandidate.left_record_id == min(a, c),
                MatchCandidate.right_record_id == max(a, c),
                MatchCandidate.status == "pending",
            )
        ).scalar_one()
    assert queued == 0


def test_must_link_joins_and_holds_transitively(registry: Registry) -> None:
    entity_of = _entity_of(registry.engine)
    sizes: dict[int, int] = {}
    for e in entity_of.values():
        sizes[e] = sizes.get(e, 0) + 1
    # three records from three different entities (one of them a multi-record entity)
    multi = next(r for r, e in sorted(entity_of.items()) if sizes[e] >= 2)
    singles = [r for r, e in sorted(entity_of.items()) if sizes[e] == 1][-2:]
    chain = [multi, *singles]
    assert len({entity_of[r] for r in chain}) == 3
    for x, y in pairwise(chain):
        _decide(registry.engine, "must_link", x, y)
    summary = svc.run_batch(registry.engine, "citizen", rules_dir=registry.rules_dir, threads=2)
    assert summary.links_by_method.get("steward", 0) >= 2
    entity_of_after = _entity_of(registry.engine)
    joined = {entity_of_after[r] for r in chain}
    assert len(joined) == 1
    # the multi-record entity came along whole
    old_mates = [r for r, e in entity_of.items() if e == entity_of[multi]]
    assert {entity_of_after[r] for r in old_mates} == joined


def test_match_one_respects_cannot_link_and_must_link(registry: Registry) -> None:
    members = _chain_cluster(registry)
    entity_of = _entity_of(registry.engine)
    record, mate = members[0], members[1]
    assert entity_of[record] == entity_of[mate]
    _decide(registry.engine, "cannot_link", record, mate)
    with Session(registry.engine) as session:
        decision = svc.match_one(
            session,
            "citizen",
            registry.std[record],
            source_record_id=record,
            rules_dir=registry.rules_dir,
        )
    assert decision.outcome != "linked" or decision.entity_id != entity_of[mate]
    # a must-link to a record of another entity: linked there, by the steward
    other = next(r for r, e in sorted(entity_of.items()) if e != entity_of[record])
    _decide(registry.engine, "must_link", record, other)
    with Session(registry.engine) as session:
        decision = svc.match_one(
            session,
            "citizen",
            registry.std[record],
            source_record_id=record,
            rules_dir=registry.rules_dir,
        )
    assert decision.outcome == "linked"
    assert decision.entity_id == entity_of[other]
    assert decision.method == "steward"


def test_withdrawn_records_leave_the_candidate_index(registry: Registry) -> None:
    entity_of = _entity_of(registry.engine)
    victim = max(entity_of)
    with registry.engine.begin() as conn:
        conn.execute(
            text("UPDATE source_records SET status = 'withdrawn' WHERE id = :i"), {"i": victim}
        )
    summary = svc.run_batch(registry.engine, "citizen", rules_dir=registry.rules_dir, threads=2)
    assert summary.features_removed == 1
    with registry.engine.connect() as conn:
        left = conn.execute(
            select(func.count())
            .select_from(BlockingKey)
            .where(BlockingKey.source_record_id == victim)
        ).scalar_one()
        active_links = conn.execute(
            select(func.count())
            .select_from(Link)
            .where(Link.source_record_id == victim, Link.active.is_(True))
        ).scalar_one()
    assert left == 0
    assert active_links == 0
