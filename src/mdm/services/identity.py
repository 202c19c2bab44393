"""Identity: turn a partition of source records into stable entities.

:func:`apply_partition` takes the clusters of a matching run and makes the store
agree with them while keeping canonical IDs stable. Which group keeps which
existing entity, which entities are absorbed or retired and how steward decisions
reshape the groups is decided, without the store, by
:func:`mdm.domain.identity.plan_partition` (its module states the rules); this
module reads its inputs and writes the plan:

* **New IDs are reproducible.** A new entity's ID is seeded with its founding record,
  the group's smallest ``(source system, source key)``:
  ``new_canonical_id(type, seed=b"<type>:<system>/<key>")``, with ``#1``, ``#2``...
  appended to the seed on collision. The same data from scratch gives the same IDs.
* **Merges leave redirects.** An absorbed entity becomes ``merged`` and redirects to
  the entity that now holds most of its records. Redirects stay flat: redirects
  into the loser are re-pointed to the survivor first.
* **Retirement.** An entity none of whose records is in the partition any more (all
  withdrawn) becomes ``retired``; its links are deactivated. Its ID still resolves.
* **Invariant 1.** Links are moved, never duplicated: the old link is deactivated
  before the new one is written (a partial unique index backs this up).

Everything is written in the caller's transaction (services flush, never commit),
set-based: bulk reads in chunks, COPY on Postgres, no ORM object per record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from mdm.domain.canonical_id import new_canonical_id
from mdm.domain.identity import PartitionPlan, plan_partition
from mdm.exceptions import BadRequest
from mdm.services.bulk import BackgroundWriter, OrderedProcessPool, bulk_workers, gc_paused
from mdm.services.resolve import (
    NewEntity,
    Plan,
    apply_plans,
    new_entity_copies,
    new_entity_rows,
    write_new_entity_rows,
)
from mdm.store.db import Connection, Engine, Session
from mdm.store.models import utcnow
from mdm.store.repositories import entities as repo
from mdm.store.repositories import lookup
from mdm.survivorship import SurvivorshipRules, load_survivorship

LINK_METHODS = ("rule", "model", "steward", "new")
_CHUNK_GROUPS = 20_000


@dataclass
class PartitionSummary:
    entity_type: str
    groups: int = 0
    entities_created: int = 0
    entities_updated: int = 0
    entities_merged: int = 0
    entities_retired: int = 0
    entities_unchanged: int = 0
    links_created: int = 0
    links_moved: int = 0
    links_deactivated: int = 0
    groups_split: int = 0
    versions: int = 0
    events: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _seed(entity_type: str, system: str, key: str, n: int) -> bytes:
    base = f"{entity_type}:{system}/{key}"
    return (base if n == 0 else f"{base}#{n}").encode()


def issue_canonical_ids(
    conn: Any,
    entity_type: str,
    founders: Sequence[tuple[str, str]],
    issued: set[str] | None = None,
) -> list[str]:
    """Reproducible new IDs, one per founding (system, key); a counter on collision.

    ``issued``: IDs this transaction issued already but ``conn`` may not see (it
    reads through another connection); the new IDs are added to it.
    """
    ids = [new_canonical_id(entity_type, seed=_seed(entity_type, s, k, 0)) for s, k in founders]
    taken = repo.existing_canonical_ids(conn, ids)
    seen: set[str] = issued if issued is not None else set()
    for i, (system, key) in enumerate(founders):
        n = 0
        while ids[i] in taken or ids[i] in seen:
            n += 1
            ids[i] = new_canonical_id(entity_type, seed=_seed(entity_type, system, key, n))
            taken |= repo.existing_canonical_ids(conn, [ids[i]])
        seen.add(ids[i])
    return ids


def apply_partition(
    session: Session,
    entity_type: str,
    groups: Iterable[Sequence[int]],
    *,
    methods: Mapping[int, tuple[str, float | None]] | None = None,
    actor: str = "system:match",
    cannot_link: Iterable[tuple[int, int]] = (),
    reader: Engine | None = None,
) -> PartitionSummary:
    """Make entities, links and redirects of ``entity_type`` follow ``groups``.

    ``groups`` partitions the active source records of the type (singletons
    included; withdrawn records absent). ``methods`` says how each record's link was
    made (``rule``/``model``/``steward``/``new`` and a score); default ``new`` for a
    singleton, ``model`` otherwise. ``cannot_link`` adds pairs to the stewards'
    (e.g. the matcher's rule conflicts). See the module docstring for the rules.

    ``reader`` (Postgres, a batch run whose transaction has written no entities
    before this call): new entities are prepared from reads through a second
    connection of this engine while their rows are written, in the caller's
    transaction, on a background thread; the store ends the same as without it.
    """
    with gc_paused():
        return _apply_partition(session, entity_type, groups, methods, actor, cannot_link, reader)


def _apply_partition(
    session: Session,
    entity_type: str,
    groups: Iterable[Sequence[int]],
    methods: Mapping[int, tuple[str, float | None]] | None,
    actor: str,
    cannot_link: Iterable[tuple[int, int]],
    reader: Engine | None,
) -> PartitionSummary:
    session.flush()
    conn = session.connection()
    now = utcnow()
    methods = methods or {}
    rules = load_survivorship(entity_type)
    summary = PartitionSummary(entity_type)

    current = repo.active_links(conn, entity_type)
    must, cannot = repo.steward_pairs(conn, entity_type)
    plan = plan_partition(groups, current, must, [*cannot, *cannot_link])
    del current
    summary.groups = len(plan.groups)
    summary.groups_split = plan.groups_split

    _write_links(conn, plan, methods, actor, now)
    summary.links_deactivated = len(plan.unlinked)
    summary.links_moved = len(plan.moved)
    summary.links_created = plan.fresh_links

    # entities whose records changed since their last version (read before the new
    # entities are created: a new entity is never stale)
    stale = repo.entities_with_newer_inputs(conn, entity_type)
    _create_entities(conn, entity_type, plan, methods, actor, now, rules, reader, summary)
    summary.entities_created = len(plan.new_groups)

    result = apply_plans(
        conn,
        entity_type,
        _entity_plans(conn, plan, stale, actor, now),
        actor=actor,
        now=now,
        rules=rules,
    )
    summary.versions += result.versions
    summary.events += result.events
    summary.entities_merged = sum(len(ls) for ls in plan.absorbed.values())
    summary.entities_retired = len(plan.retired)
    summary.entities_updated = (
        summary.versions - summary.entities_created - summary.entities_merged - len(plan.retired)
    )
    summary.entities_unchanged = len(plan.inherited) - summary.entities_updated
    return summary


def _write_links(
    conn: Connection,
    plan: PartitionPlan,
    methods: Mapping[int, tuple[str, float | None]],
    actor: str,
    now: datetime,
) -> None:
    """Deactivate the links that change, then link records to the entities they keep
    or join (links to new entities are written with those entities)."""
    groups = plan.groups
    new_links = [_link_row(r, e, groups[gi], methods, actor, now) for r, e, gi in plan.relinks]
    repo.deactivate_links(conn, sorted([*plan.moved, *plan.unlinked]), now)
    repo.bulk_insert(conn, repo.links, new_links)


def _create_entities(
    conn: Connection,
    entity_type: str,
    plan: PartitionPlan,
    methods: Mapping[int, tuple[str, float | None]],
    actor: str,
    now: datetime,
    rules: SurvivorshipRules,
    reader: Engine | None,
    summary: PartitionSummary,
) -> None:
    """The entities of the plan's new groups, with reproducible IDs, written chunk by
    chunk (memory stays bounded: a first run creates an entity per group). IDs issued
    by earlier chunks count as taken, so collisions resolve as if issued all at once."""
    parts, new_groups = plan.groups, plan.new_groups
    with (
        _reads_beside_writes(conn, reader) as (read, write),
        _golden_workers(reader, entity_type, rules, len(new_groups)) as workers,
    ):
        issued: set[str] = set()

        def write_done(done: list[tuple[Any, _Copies]]) -> None:
            for _tag, (copies, versions, events) in done:
                summary.versions += versions
                summary.events += events
                write(_write_copies, conn, copies)

        chunk_size = _CHUNK_GROUPS if workers is None else _WORKER_CHUNK_GROUPS
        for start in range(0, len(new_groups), chunk_size):
            chunk = new_groups[start : start + chunk_size]
            founders_of = repo.record_refs(read, sorted(r for gi in chunk for r in parts[gi]))
            founders = [min(founders_of[r] for r in parts[gi]) for gi in chunk]
            del founders_of
            canonical = issue_canonical_ids(read, entity_type, founders, issued)
            ids = repo.allocate_ids(read, repo.entities, len(chunk))
            if workers is not None:
                specs: list[_NewSpec] = []
                for gi, eid, cid in zip(chunk, ids, canonical, strict=True):
                    g = parts[gi]
                    specs.append((eid, cid, g, [_link_method(r, g, methods) for r in g]))
                write_done(
                    workers.submit(_golden_chunk, _NewEntitiesTask(entity_type, actor, now, specs))
                )
                continue
            new_entities = []
            for gi, eid, cid in zip(chunk, ids, canonical, strict=True):
                g = parts[gi]
                rows = [_link_row(r, eid, g, methods, actor, now) for r in g]
                new_entities.append(NewEntity(eid, cid, g, rows))
            prepared = new_entity_rows(
                read, entity_type, new_entities, actor=actor, now=now, rules=rules
            )
            del new_entities
            summary.versions += len(prepared.versions)
            summary.events += len(prepared.events)
            write(write_new_entity_rows, conn, prepared, now)
        if workers is not None:
            write_done(workers.finish())


def _entity_plans(
    conn: Connection, plan: PartitionPlan, stale: set[int], actor: str, now: datetime
) -> dict[int, Plan]:
    """Write the redirects of absorbed entities; what each existing entity that
    changes gets: merged, absorbed, retired, new members, or newer inputs."""
    absorbed = plan.absorbed
    states = lookup.entity_states(conn, [*absorbed, *(e for ls in absorbed.values() for e in ls)])
    plans: dict[int, Plan] = {}
    for survivor, losers in sorted(absorbed.items()):
        for loser in sorted(losers):
            repo.add_redirect(conn, loser, survivor, "matching", actor, now)
            plans[loser] = Plan(
                change="merged",
                status="merged",
                recompute=False,
                events=[("entity.merged", {"merged_into": states[survivor].canonical_id})],
            )
        plans[survivor] = Plan(
            change="absorbed",
            force=True,
            events=[
                ("entity.merged", {"absorbed": states[lo].canonical_id}) for lo in sorted(losers)
            ],
        )
    for e in plan.retired:
        plans[e] = Plan(
            change="retired", status="retired", recompute=False, events=[("entity.retired", {})]
        )
    for e in sorted(plan.membership_changed - set(plans)):
        plans[e] = Plan(change="membership", force=True)
    for e in sorted(stale - set(plans)):
        plans[e] = Plan(change="updated")
    return plans


@contextmanager
def _reads_beside_writes(
    conn: Connection, reader: Engine | None
) -> Iterator[tuple[Connection, Callable[..., Any]]]:
    """(connection to read through, how to run a write on ``conn``).

    Without a reader, or off Postgres: read and write on ``conn``, one after the
    other. With one: reads go through a second connection (they only see committed
    data: the source records, committed entities' IDs, the id sequence) and each
    write runs on a background thread on ``conn``, one at a time and in order, while
    the next chunk is prepared; Postgres works on one chunk's COPYs while Python
    builds the next chunk's golden records. All writes are done when this exits.
    """
    if reader is None or conn.dialect.name != "postgresql":
        yield conn, lambda fn, *args: fn(*args)
        return
    writer = BackgroundWriter("mdm-identity")
    read = reader.connect()
    try:
        yield read, writer.submit
        writer.drain()
    finally:
        writer.close()
        read.close()


def _link_row(
    record_id: int,
    entity_id: int,
    group: Sequence[int],
    methods: Mapping[int, tuple[str, float | None]],
    actor: str,
    now: Any,
) -> dict[str, Any]:
    return _link_dict(record_id, entity_id, _link_method(record_id, group, methods), actor, now)


def _link_method(
    record_id: int, group: Sequence[int], methods: Mapping[int, tuple[str, float | None]]
) -> tuple[str, float | None]:
    method, score = methods.get(record_id, ("new" if len(group) == 1 else "model", None))
    if method not in LINK_METHODS:
        raise BadRequest(f"unknown link method {method!r}; expected one of {LINK_METHODS}")
    if score is not None and (score != score or abs(score) == float("inf")):
        score = None
    return method, score


def _link_dict(
    record_id: int, entity_id: int, how: tuple[str, float | None], actor: str, now: Any
) -> dict[str, Any]:
    return {
        "source_record_id": record_id,
        "entity_id": entity_id,
        "method": how[0],
        "score": how[1],
        "created_by": actor,
        "created_at": now,
        "active": True,
        "deactivated_at": None,
    }


# ------------------------------------------------ golden records in worker processes

#: (entity id, canonical ID, member records, each member's link method and score)
_NewSpec = tuple[int, str, list[int], list[tuple[str, float | None]]]

# A first national load creates an entity per group. Past this many new entities
# their golden records, and the COPY text of every row that creates them, are built
# by worker processes (``bulk_workers``: one per core, at most 4): in one process this held one core
# (about 80 µs an entity) while Postgres used less than one.
_WORKERS_AFTER = 50_000
_WORKER_CHUNK_GROUPS = 10_000


@dataclass(frozen=True, slots=True)
class _NewEntitiesTask:
    entity_type: str
    actor: str
    now: datetime
    specs: list[_NewSpec]


_Copies = tuple[list[repo.CopyData], int, int]
_worker_state: tuple[Engine, SurvivorshipRules] | None = None


def _init_golden_worker(url: str, rules: SurvivorshipRules) -> None:
    global _worker_state
    import gc

    from mdm.store.db import make_unpooled_engine

    _worker_state = (make_unpooled_engine(url), rules)
    gc.freeze()  # what the worker holds from now on is never garbage


def _golden_chunk(task: _NewEntitiesTask) -> _Copies:
    """A worker's part: read the members (committed source records), build the golden
    records and render the rows of the chunk's new entities as COPY data."""
    assert _worker_state is not None
    engine, rules = _worker_state
    with gc_paused(), engine.connect() as read:
        batch = [
            NewEntity(
                eid,
                cid,
                records,
                [
                    _link_dict(r, eid, how, task.actor, task.now)
                    for r, how in zip(records, hows, strict=True)
                ],
            )
            for eid, cid, records, hows in task.specs
        ]
        return new_entity_copies(
            read, task.entity_type, batch, actor=task.actor, now=task.now, rules=rules
        )


def _write_copies(conn: Connection, copies: list[repo.CopyData]) -> None:
    for data in copies:
        repo.write_copy(conn, data)


@contextmanager
def _golden_workers(
    reader: Engine | None, entity_type: str, rules: SurvivorshipRules, new: int
) -> Iterator[OrderedProcessPool | None]:
    """Worker processes for a large number of new entities (reads beside writes on
    Postgres only: the workers read committed data, as the reader does)."""
    if reader is None or reader.dialect.name != "postgresql" or new < _WORKERS_AFTER:
        yield None
        return
    workers = bulk_workers()
    if workers < 2:
        yield None
        return
    url = reader.url.render_as_string(hide_password=False)
    with OrderedProcessPool(workers, _init_golden_worker, (url, rules)) as pool:
        yield pool
