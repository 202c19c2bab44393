"""apply_partition at (small) scale: chunked writes, the single-record fast path and
the bulk statements must give what the one-entity-at-a-time rules give (both backends)."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdm.domain.canonical_id import new_canonical_id
from mdm.services import bulk, identity, resolve
from mdm.services.identity import apply_partition
from mdm.services.resolve import rebuild
from mdm.store.db import make_engine
from mdm.store.models import Entity, EntityConflict, EntityVersion, Link, OutboxEvent
from tests.services.conftest import MakeRecord, count, record_maker


def _load(make_record: MakeRecord, n: int, seed: int = 3) -> list[list[int]]:
    rng = random.Random(seed)
    groups: list[list[int]] = []
    i = 0
    while i < n:
        size = 1 if rng.random() < 0.6 else rng.choice((2, 3))
        base = {
            "full_name": f"Nguyễn Văn {i}",
            "date_of_birth": f"19{50 + i % 40}-0{1 + i % 9}-1{i % 10}",
            "sex": rng.choice(("male", "female")),
            "personal_id": f"0010{i:08d}",
            "permanent_address": {"province_code": "01", "commune_code": f"{i % 97:05d}"},
            "phone": "" if i % 7 == 0 else f"+8490{i:07d}",
        }
        group = []
        for k in range(size):
            std = dict(base)
            if k and rng.random() < 0.5:
                std["date_of_birth"] = std["date_of_birth"][:4] if k == 1 else "1901-01-01"
            if k and rng.random() < 0.3:
                std["phone"] = f"+8498{i:07d}"
            issues = ("personal_id_inconsistent",) if rng.random() < 0.1 else ()
            group.append(
                make_record(
                    f"sys{(i + k) % 4}",
                    f"k{i + k}",
                    trust=0.3 + 0.1 * ((i + k) % 4),
                    day=(i * 7 + k) % 50,
                    issues=issues,
                    **std,
                )
            )
        groups.append(group)
        i += size
    return groups


def _sequences_ok(session: Session) -> None:
    rows = session.execute(
        select(OutboxEvent.entity_id, func.count(), func.max(OutboxEvent.sequence)).group_by(
            OutboxEvent.entity_id
        )
    ).all()
    assert rows and all(n == top for _e, n, top in rows)  # 1..n per entity, no gap


@pytest.mark.parametrize("chunk", [7, 100_000])
def test_chunked_first_run_and_reruns_keep_every_invariant(
    session: Session, make_record: MakeRecord, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(identity, "_CHUNK_GROUPS", chunk)
    monkeypatch.setattr(resolve, "_CHUNK_ENTITIES", max(5, chunk // 2))
    groups = _load(make_record, 120)
    first = apply_partition(session, "citizen", groups)
    assert first.entities_created == len(groups) == count(session, Entity)
    assert first.versions == first.events == len(groups)
    assert count(session, Link, Link.active.is_(True)) == sum(len(g) for g in groups)
    # IDs are seeded by the founding record whatever the chunking
    founder_cid = session.execute(
        select(Entity.canonical_id)
        .join(Link, Link.entity_id == Entity.id)
        .where(Link.source_record_id == groups[0][0])
    ).scalar_one()
    assert founder_cid == new_canonical_id("citizen", seed=b"citizen:sys0/k0")
    report = rebuild(session, "citizen")
    assert report.ok and report.identical == len(groups)
    assert count(session, EntityConflict) > 0  # conflicts of new entities are written
    _sequences_ok(session)

    again = apply_partition(session, "citizen", list(reversed(groups)))
    assert again.versions == again.events == again.entities_created == 0

    # regroup: split every multi-record group, pair up the first singletons
    singles = [g for g in groups if len(g) == 1]
    multis = [g for g in groups if len(g) > 1]
    regrouped = [[*singles[0], *singles[1]], *singles[2:]]
    regrouped += [part for g in multis for part in (g[:-1], g[-1:])]
    third = apply_partition(session, "citizen", regrouped)
    assert third.entities_merged == 1 and third.entities_created == len(multis)
    assert third.entities_updated == len(multis) + 1
    assert count(session, Entity, Entity.status == "active") == len(regrouped)
    assert rebuild(session, "citizen").ok
    _sequences_ok(session)
    versions = session.execute(
        select(EntityVersion.entity_id, func.max(EntityVersion.version)).group_by(
            EntityVersion.entity_id
        )
    ).all()
    stored = dict(session.execute(select(Entity.id, Entity.version)).all())
    assert all(stored[e] == v for e, v in versions)


def _store_digest(session: Session) -> dict[str, list[tuple[object, ...]]]:
    """What a partition wrote, by canonical ID (internal ids differ between runs)."""
    cid = dict(session.execute(select(Entity.id, Entity.canonical_id)).all())
    return {
        "entities": sorted(
            (e.canonical_id, e.status, e.version, repr(e.attributes), repr(e.provenance))
            for e in session.scalars(select(Entity))
        ),
        "links": sorted(
            (ln.source_record_id, cid[ln.entity_id], ln.method, ln.score, ln.active)
            for ln in session.scalars(select(Link))
        ),
        "versions": sorted(
            (cid[v.entity_id], v.version, v.change, repr(v.attributes), repr(v.provenance))
            for v in session.scalars(select(EntityVersion))
        ),
        "events": sorted(
            (
                ev.canonical_id,
                ev.event_type,
                ev.sequence,
                ev.payload["type"],
                ev.payload["canonical_id"],
                ev.payload["version"],
                repr(ev.payload["data"]),
            )
            for ev in session.scalars(select(OutboxEvent))
        ),
        "conflicts": sorted(
            (cid[c.entity_id], c.attribute, repr(c.candidates))
            for c in session.scalars(select(EntityConflict))
        ),
    }


@pytest.mark.parametrize("workers", [False, True], ids=["in-process", "workers"])
def test_reads_beside_writes_give_the_store_of_the_plain_run(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch, workers: bool
) -> None:
    """The batch run's identity step reads through a second connection while a
    background thread writes (Postgres): the store must be exactly the plain run's,
    with chunks small enough that canonical-ID collisions cross chunk boundaries.
    With ``workers`` (a large first load), worker processes build the golden records
    and the rows' COPY data."""

    monkeypatch.setattr(identity, "_CHUNK_GROUPS", 7)
    monkeypatch.setattr(identity, "_WORKER_CHUNK_GROUPS", 6)
    monkeypatch.setattr(identity, "_WORKERS_AFTER", 1 if workers else 10**9)
    monkeypatch.setattr(resolve, "_CHUNK_ENTITIES", 5)
    submitted: list[int] = []
    real_submit = bulk.OrderedProcessPool.submit

    def count_chunks(self: bulk.OrderedProcessPool, fn: Any, task: Any, tag: Any = None) -> Any:
        assert isinstance(task, identity._NewEntitiesTask)
        submitted.append(len(task.specs))
        return real_submit(self, fn, task, tag)

    monkeypatch.setattr(bulk.OrderedProcessPool, "submit", count_chunks)
    real = identity.new_canonical_id

    def crowded(entity_type: str, *, seed: bytes) -> str:
        # every founder of a system gets the same first choice: IDs collide, across
        # chunks too, and resolve by the counter
        system, _, rest = seed.partition(b"/")
        counter = rest.partition(b"#")[2]
        return real(entity_type, seed=system + b"#" + counter)

    monkeypatch.setattr(identity, "new_canonical_id", crowded)
    engine = make_engine(fresh_db_url)
    try:
        with Session(engine) as setup:
            groups = _load(record_maker(setup), 60)
            setup.commit()
        # link scores as a matching run gives them (one not a number: stored as null)
        methods = {
            g[-1]: ("rule", 0.97 if i % 5 else float("nan"))
            for i, g in enumerate(groups)
            if len(g) > 1
        }
        with Session(engine) as plain:
            summary = apply_partition(plain, "citizen", groups, methods=methods)
            expected = _store_digest(plain)
            plain.rollback()
        assert not submitted
        with Session(engine) as piped:
            piped_summary = apply_partition(
                piped, "citizen", groups, methods=methods, reader=engine
            )
            assert _store_digest(piped) == expected
            piped.commit()
        # the worker path ran (Postgres only: SQLite has no reads beside writes)
        large = workers and engine.dialect.name == "postgresql"
        assert (sum(submitted), len(submitted) > 3) == (
            (len(groups), True) if large else (0, False)
        )
        assert piped_summary.as_dict() == summary.as_dict()
        assert summary.entities_created == len(groups)
        assert len({row[0] for row in expected["entities"]}) == len(groups)  # IDs unique
        with Session(engine) as check:
            assert rebuild(check, "citizen").ok
            _sequences_ok(check)
    finally:
        engine.dispose()


def test_record_rows_reads_each_records_current_version(
    session: Session, make_record: MakeRecord
) -> None:
    """What survivorship sees of records (``record_rows``: on Postgres one statement
    on the driver connection): the current version's values and issues, the
    source's name and trust, the received time in UTC; unknown IDs are left out."""
    from datetime import UTC

    from sqlalchemy import insert, update

    from mdm.store.models import SourceRecord, SourceRecordVersion
    from mdm.store.repositories import entities as repo

    a = make_record("sys-a", "k1", trust=0.9, day=1, full_name="Trần Thị Bình")
    b = make_record("sys-b", "k2", day=2, issues=("personal_id_inconsistent",), sex="female")
    c = make_record("sys-a", "k3", day=3, full_name="Lê Văn Cường")
    conn = session.connection()
    conn.execute(
        insert(SourceRecordVersion).values(
            source_record_id=c,
            version=2,
            raw={},
            standardized={"full_name": "Lê Văn Cường", "phone": "+84901234567"},
            issues=[],
            content_hash="sys-a/k3/2",
            received_at=datetime(2025, 9, 1, 7, 30, tzinfo=UTC),
        )
    )
    conn.execute(update(SourceRecord).where(SourceRecord.id == c).values(current_version=2))
    rows = {r.record_id: r for r in repo.record_rows(conn, [c, a, b, 10**12], "citizen")}
    assert sorted(rows) == sorted([a, b, c])
    assert (rows[a].system, rows[a].key, rows[a].standardized) == (
        "sys-a",
        "k1",
        {"full_name": "Trần Thị Bình"},
    )
    assert rows[a].trust == {"default": 0.9} and rows[a].issues == []
    assert [i["code"] for i in rows[b].issues] == ["personal_id_inconsistent"]
    assert rows[c].standardized == {"full_name": "Lê Văn Cường", "phone": "+84901234567"}
    assert rows[c].received_at == datetime(2025, 9, 1, 7, 30, tzinfo=UTC)
    for row in rows.values():
        assert row.received_at.utcoffset() is not None and row.received_at.tzinfo == UTC
