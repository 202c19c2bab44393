"""Identity: turn a partition of source records into stable entities.

:func:`apply_partition` takes the clusters of a matching run and makes the store
agree with them while keeping canonical IDs stable:

* **Inheritance.** Every group inherits the ID of the existing entity it overlaps
  most, counted in currently linked source records. Assignment is global and greedy
  over (group, entity, overlap) triples sorted by: larger overlap first; then the
  *older* entity (smaller internal ``entities.id``, i.e. issued first); then the group
  whose smallest source-record id is smaller. Each entity goes to at most one group,
  each group takes at most one entity. Only a group that overlaps no untaken entity
  gets a new ID.
* **New IDs are reproducible.** A new entity's ID is seeded with its founding record,
  the group's smallest ``(source system, source key)``:
  ``new_canonical_id(type, seed=b"<type>:<system>/<key>")``, with ``#1``, ``#2``...
  appended to the seed on collision. The same data from scratch gives the same IDs.
* **Merges leave redirects.** An entity that no group inherited but whose records
  are still active was absorbed: it becomes ``merged`` and redirects to the entity
  that now holds most of its records (ties: the smaller entity id). Redirects stay
  flat: redirects into the loser are re-pointed to the survivor first.
* **Retirement.** An entity none of whose records is in the partition any more (all
  withdrawn) becomes ``retired``; its links are deactivated. Its ID still resolves.
* **Steward decisions win** (DESIGN.md invariant 4). Groups joined by a must-link
  are united; a group holding a cannot-link pair is split (see
  :func:`enforce_decisions`); a must-link that contradicts a cannot-link raises.
* **Invariant 1.** Links are moved, never duplicated: the old link is deactivated
  before the new one is written (a partial unique index backs this up).

Everything is written in the caller's transaction (services flush, never commit),
set-based: bulk reads in chunks, COPY on Postgres, no ORM object per record.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from mdm.domain.canonical_id import new_canonical_id
from mdm.exceptions import BadRequest, Conflict
from mdm.services.bulk import BackgroundWriter, OrderedProcessPool, bulk_workers, gc_paused
from mdm.services.resolve import (
    NewEntity,
    Plan,
    apply_plans,
    new_entity_copies,
    new_entity_rows,
    write_new_entity_rows,
)
from mdm.store.models import utcnow
from mdm.store.repositories import entities as repo
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


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def enforce_decisions(
    groups: list[list[int]],
    must: Iterable[tuple[int, int]],
    cannot: Iterable[tuple[int, int]],
    current: Mapping[int, int],
) -> tuple[list[list[int]], int]:
    """Make the partition obey steward decisions; returns (groups, how many were split).

    Groups holding the two records of a must-link are united. A group holding both
    records of a cannot-link is split: its must-link components are placed, in order
    of (current entity id, smallest record id), into the first part where they
    conflict with nothing, else into a new part, so that records that are already
    together tend to stay together. A must-link component that itself contains a
    cannot-link pair is a contradiction only a steward can settle: ``Conflict``.
    """
    must, cannot = list(must), list(cannot)
    if not must and not cannot:
        return groups, 0
    where = {r: gi for gi, g in enumerate(groups) for r in g}
    must = [(a, b) for a, b in must if a in where and b in where]
    cannot_set = {(min(a, b), max(a, b)) for a, b in cannot if a in where and b in where}
    if not must and not cannot_set:
        return groups, 0
    uf = _UnionFind()
    for a, b in must:
        uf.union(where[a], where[b])
    merged: dict[int, list[int]] = defaultdict(list)
    for gi, g in enumerate(groups):
        merged[uf.find(gi)].extend(g)
    groups = [sorted(g) for _root, g in sorted(merged.items())]
    if not cannot_set:
        return groups, 0
    where = {r: gi for gi, g in enumerate(groups) for r in g}
    bad = {where[a] for a, b in cannot_set if where[a] == where[b]}
    if not bad:
        return groups, 0
    partners: dict[int, set[int]] = defaultdict(set)
    for a, b in cannot_set:
        partners[a].add(b)
        partners[b].add(a)
    out = [g for gi, g in enumerate(groups) if gi not in bad]
    for gi in sorted(bad):
        members = set(groups[gi])
        comp = _UnionFind()
        for a, b in must:
            if a in members and b in members:
                comp.union(a, b)
        units: dict[int, list[int]] = defaultdict(list)
        for r in groups[gi]:
            units[comp.find(r)].append(r)
        ordered = sorted(
            units.values(), key=lambda u: (min(current.get(r, 1 << 62) for r in u), min(u))
        )
        parts: list[set[int]] = []
        for unit in ordered:
            unit_set = set(unit)
            forbidden = set().union(*(partners[r] for r in unit))
            if forbidden & unit_set:
                raise Conflict(
                    f"steward decisions contradict each other: records {sorted(unit)} are "
                    "must-linked together but some of them are cannot-linked"
                )
            for part in parts:
                if not (forbidden & part):
                    part.update(unit_set)
                    break
            else:
                parts.append(unit_set)
        out.extend(sorted(p) for p in parts)
    return out, len(bad)


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

    parts: list[list[int]] = []
    seen: set[int] = set()
    for g in groups:
        members = sorted({int(r) for r in g})
        if not members:
            continue
        if seen.intersection(members):
            raise BadRequest("groups must be disjoint: a source record appears in two groups")
        seen.update(members)
        parts.append(members)

    current = repo.active_links(conn, entity_type)
    must, cannot = repo.steward_pairs(conn, entity_type)
    parts, summary.groups_split = enforce_decisions(parts, must, [*cannot, *cannot_link], current)
    parts.sort(key=lambda g: g[0])
    summary.groups = len(parts)

    # 1. who inherits what
    triples: list[tuple[int, int, int, int]] = []  # (-overlap, entity, first record, group)
    for gi, g in enumerate(parts):
        counts = Counter(current[r] for r in g if r in current)
        triples.extend((-n, e, g[0], gi) for e, n in counts.items())
    triples.sort()
    group_entity: dict[int, int] = {}
    taken: set[int] = set()
    for _n, e, _first, gi in triples:
        if gi not in group_entity and e not in taken:
            group_entity[gi] = e
            taken.add(e)

    # 2. entities nobody inherited: merged into where their records went, or retired
    previous = set(current.values())
    # only needed to follow existing links (a first run has none)
    record_group = {r: gi for gi, g in enumerate(parts) for r in g} if current else {}
    former: dict[int, list[int]] = defaultdict(list)
    for r, e in current.items():
        former[e].append(r)
    plans: dict[int, Plan] = {}
    absorbed: dict[int, list[int]] = defaultdict(list)  # survivor -> losers
    retired: list[int] = []
    for e in sorted(previous - taken):
        destinations = Counter(
            group_entity[record_group[r]] for r in former[e] if r in record_group
        )
        if not destinations:
            retired.append(e)
            continue
        survivor = min(destinations, key=lambda s: (-destinations[s], s))
        absorbed[survivor].append(e)

    # 3. links: deactivate the ones that change, then write the new ones
    unlinked = [r for r, e in current.items() if r not in record_group]
    moving: list[int] = []
    new_links: list[dict[str, Any]] = []
    membership_changed: set[int] = set()
    for r in unlinked:
        membership_changed.add(current[r])
    new_groups: list[int] = []
    for gi, g in enumerate(parts):
        target = group_entity.get(gi)
        if target is None:
            new_groups.append(gi)
            moving.extend(r for r in g if r in current)
            for r in g:
                if r in current:
                    membership_changed.add(current[r])
            continue
        for r in g:
            old = current.get(r)
            if old == target:
                continue
            if old is not None:
                moving.append(r)
                membership_changed.add(old)
            membership_changed.add(target)
            new_links.append(_link_row(r, target, g, methods, actor, now))
    repo.deactivate_links(conn, sorted([*moving, *unlinked]), now)
    summary.links_deactivated = len(unlinked)
    summary.links_moved = len(moving)
    repo.bulk_insert(conn, repo.links, new_links)
    summary.links_created = len(new_links) - sum(
        1 for row in new_links if row["source_record_id"] in current
    )

    # entities whose records changed since their last version (read before step 4
    # creates entities: a new entity is never stale)
    stale = repo.entities_with_newer_inputs(conn, entity_type)

    # 4. new entities, with reproducible IDs, written chunk by chunk (memory stays
    # bounded: a first run creates an entity per group). IDs issued by earlier chunks
    # count as taken, so collisions resolve as if issued all at once.
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
                    summary.links_created += sum(1 for r in g if r not in current)
                write_done(
                    workers.submit(_golden_chunk, _NewEntitiesTask(entity_type, actor, now, specs))
                )
                continue
            new_entities = []
            for gi, eid, cid in zip(chunk, ids, canonical, strict=True):
                g = parts[gi]
                rows = [_link_row(r, eid, g, methods, actor, now) for r in g]
                new_entities.append(NewEntity(eid, cid, g, rows))
                summary.links_created += sum(1 for r in g if r not in current)
            prepared = new_entity_rows(
                read, entity_type, new_entities, actor=actor, now=now, rules=rules
            )
            del new_entities
            summary.versions += len(prepared.versions)
            summary.events += len(prepared.events)
            write(write_new_entity_rows, conn, prepared, now)
        if workers is not None:
            write_done(workers.finish())
    summary.entities_created = len(new_groups)

    # 5. redirects, statuses, golden records, versions, events
    states = repo.entity_states(conn, [*absorbed, *(e for ls in absorbed.values() for e in ls)])
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
    for e in retired:
        plans[e] = Plan(
            change="retired", status="retired", recompute=False, events=[("entity.retired", {})]
        )
    for e in sorted(membership_changed - set(plans)):
        plans[e] = Plan(change="membership", force=True)
    for e in sorted(stale - set(plans)):
        plans[e] = Plan(change="updated")
    result = apply_plans(conn, entity_type, plans, actor=actor, now=now, rules=rules)
    summary.versions += result.versions
    summary.events += result.events
    summary.entities_merged = sum(len(ls) for ls in absorbed.values())
    summary.entities_retired = len(retired)
    summary.entities_updated = (
        summary.versions - summary.entities_created - summary.entities_merged - len(retired)
    )
    summary.entities_unchanged = len(taken) - summary.entities_updated
    return summary


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

    from sqlalchemy.pool import NullPool

    from mdm.store.db import make_engine

    _worker_state = (make_engine(url, poolclass=NullPool), rules)
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
