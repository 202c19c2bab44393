"""Resolve: golden records from links, survivorship rules and steward overrides.

The golden record of an entity is a pure function of its actively linked records'
current standardized versions, the rules in ``matching_rules/E.yaml`` and the
entity's active overrides (DESIGN.md invariant 6): :func:`rebuild` recomputes every
one and reports any difference from what is stored.

Every change to an entity goes through :func:`apply_plans`, which writes, in the
caller's transaction, the entity's new state, an ``entity_versions`` row and its
outbox events together (invariant 5). A recomputation that changes nothing writes
nothing (unless the plan forces a version, e.g. because its links changed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mdm.events.outbox import PendingEvent, event_rows, write_events
from mdm.store.db import Connection, Session
from mdm.store.models import utcnow
from mdm.store.repositories import entities as repo
from mdm.store.repositories import lookup
from mdm.survivorship import (
    GoldenRecord,
    RecordInput,
    SurvivorshipRules,
    build_golden,
    canonical_json,
    changed_attributes,
    load_survivorship,
)

_CHUNK_ENTITIES = 20_000
_NO_ISSUES: frozenset[str] = frozenset()


@dataclass(slots=True)
class Plan:
    """What happens to one existing entity in a transaction."""

    change: str = "updated"  # entity_versions.change
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: str = "active"
    recompute: bool = True  # recompute the golden record from its links
    force: bool = False  # write a version even if the golden record is unchanged


@dataclass(slots=True)
class NewEntity:
    """An entity created in this transaction (id allocated, links to be written)."""

    id: int
    canonical_id: str
    records: list[int]
    link_rows: list[dict[str, Any]]
    change: str = "created"
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class ApplySummary:
    versions: int = 0
    events: int = 0
    unchanged: int = 0


def record_input(
    row: repo.RecordRow, trust_cache: dict[int, dict[str, float]] | None = None
) -> RecordInput:
    """What survivorship sees of a record. ``trust_cache`` shares the trust mapping of
    a source system among its records (``record_rows`` returns one object per system)."""
    trust = None if trust_cache is None else trust_cache.get(id(row.trust))
    if trust is None:
        trust = {k: float(v) for k, v in row.trust.items() if isinstance(v, int | float)}
        if trust_cache is not None:
            trust_cache[id(row.trust)] = trust
    return RecordInput(
        ref=f"{row.system}/{row.key}",
        values=row.standardized,
        trust=trust,
        observed_at=row.received_at,
        issue_codes=frozenset(str(i.get("code")) for i in row.issues if i.get("code"))
        if row.issues
        else _NO_ISSUES,
    )


def golden_for(
    conn: Connection,
    entity_type: str,
    membership: Mapping[int, Sequence[int]],
    rules: SurvivorshipRules,
    overrides: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[int, GoldenRecord]:
    """Golden records of entities given their member records (one chunk)."""
    all_records = sorted({r for rs in membership.values() for r in rs})
    rows = repo.record_rows(conn, all_records, entity_type)
    cache: dict[int, dict[str, float]] = {}
    inputs = {row.record_id: record_input(row, cache) for row in rows}
    del rows
    if overrides is None:
        overrides = repo.active_overrides(conn, list(membership))
    return {
        eid: build_golden([inputs[r] for r in rs if r in inputs], rules, overrides.get(eid))
        for eid, rs in membership.items()
    }


def _same(state: lookup.CurrentEntity, golden: GoldenRecord) -> bool:
    return canonical_json(state.attributes) == canonical_json(golden.attributes) and canonical_json(
        state.provenance
    ) == canonical_json(golden.provenance)


def _conflict_rows(eid: int, golden: GoldenRecord, now: datetime) -> list[dict[str, Any]]:
    return [
        {"entity_id": eid, "attribute": attr, "candidates": cands, "detected_at": now}
        for attr, cands in sorted(golden.conflicts.items())
    ]


@dataclass
class NewEntityRows:
    """The rows that create a batch of new entities, ready to be written."""

    entities: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    events: list[PendingEvent] = field(default_factory=list)


def new_entity_rows(
    conn: Connection,
    entity_type: str,
    batch: Sequence[NewEntity],
    *,
    actor: str,
    now: datetime,
    rules: SurvivorshipRules,
) -> NewEntityRows:
    """Golden records of new entities and the rows that create them; only reads.

    ``conn`` reads the members' source records (committed data: a batch run may read
    them through a second connection while its transaction writes, see
    :mod:`mdm.services.identity`)."""
    goldens = golden_for(conn, entity_type, {n.id: n.records for n in batch}, rules, overrides={})
    out = NewEntityRows()
    for n in batch:
        g = goldens[n.id]
        attributes, provenance = (
            repo.json_for(conn, g.attributes),
            repo.json_for(conn, g.provenance),
        )
        out.entities.append(
            {
                "id": n.id,
                "canonical_id": n.canonical_id,
                "entity_type": entity_type,
                "status": "active",
                "version": 1,
                "attributes": attributes,
                "provenance": provenance,
                "created_at": now,
                "updated_at": now,
            }
        )
        out.versions.append(
            _version_row(n.id, 1, "active", attributes, provenance, n.change, actor, now)
        )
        out.links.extend(n.link_rows)
        out.conflicts.extend(_conflict_rows(n.id, g, now))
        changed = sorted(g.attributes)
        for event_type, data in n.events or [("entity.created", {})]:
            out.events.append(
                PendingEvent(
                    n.id, n.canonical_id, entity_type, event_type, 1, {**data, "changed": changed}
                )
            )
    return out


def new_entity_copies(
    conn: Connection,
    entity_type: str,
    batch: Sequence[NewEntity],
    *,
    actor: str,
    now: datetime,
    rules: SurvivorshipRules,
) -> tuple[list[repo.CopyData], int, int]:
    """What :func:`write_new_entity_rows` writes for ``batch`` on Postgres, rendered
    as COPY data (e.g. in a worker process), in the same table order; with the
    numbers of versions and events. ``conn`` only reads."""
    rows = new_entity_rows(conn, entity_type, batch, actor=actor, now=now, rules=rules)
    tables = _new_entity_tables(rows, now)
    copies = [c for table, part in tables if (c := repo.copy_data(table, part)) is not None]
    return copies, len(rows.versions), len(tables[-1][1])


def write_new_entity_rows(conn: Connection, rows: NewEntityRows, now: datetime) -> tuple[int, int]:
    """Write what :func:`new_entity_rows` made; returns (versions, events) written."""
    tables = _new_entity_tables(rows, now)
    for table, part in tables:
        repo.bulk_insert(conn, table, part)
    return len(rows.versions), len(tables[-1][1])


def _new_entity_tables(rows: NewEntityRows, now: datetime) -> list[tuple[Any, list[Any]]]:
    """The rows that create new entities, table by table in the order they are
    written (referenced tables first), the outbox last. The entities are new: every
    event sequence starts at 1, nothing to look up."""
    return repo.new_entity_tables(
        rows.entities, rows.versions, rows.links, rows.conflicts, event_rows(rows.events, now)
    )


def apply_plans(
    conn: Connection,
    entity_type: str,
    plans: Mapping[int, Plan],
    new_entities: Sequence[NewEntity] = (),
    *,
    actor: str,
    now: datetime,
    rules: SurvivorshipRules | None = None,
) -> ApplySummary:
    """Write new entities and changes to existing ones, with versions and events.

    Processed in chunks so that memory stays bounded however many entities change.
    """
    rules = rules or load_survivorship(entity_type)
    summary = ApplySummary()

    for start in range(0, len(new_entities), _CHUNK_ENTITIES):
        rows = new_entity_rows(
            conn,
            entity_type,
            new_entities[start : start + _CHUNK_ENTITIES],
            actor=actor,
            now=now,
            rules=rules,
        )
        n_versions, n_events = write_new_entity_rows(conn, rows, now)
        summary.versions += n_versions
        summary.events += n_events

    ids = sorted(plans)
    for start in range(0, len(ids), _CHUNK_ENTITIES):
        batch_ids = ids[start : start + _CHUNK_ENTITIES]
        states = lookup.entity_states(conn, batch_ids)
        to_compute = [e for e in batch_ids if plans[e].recompute and plans[e].status == "active"]
        membership = repo.members(conn, to_compute) if to_compute else {}
        goldens = golden_for(conn, entity_type, membership, rules) if membership else {}
        updates, version_rows, conflict_rows = [], [], []
        touched: list[int] = []
        events = []
        for eid in batch_ids:
            plan, state = plans[eid], states[eid]
            g = goldens.get(eid) or GoldenRecord(dict(state.attributes), dict(state.provenance))
            status_changed = plan.status != state.status
            if not status_changed and not plan.force and _same(state, g):
                summary.unchanged += 1
                continue
            version = state.version + 1
            changed = changed_attributes(state.attributes, g.attributes)
            attributes, provenance = (
                repo.json_for(conn, g.attributes),
                repo.json_for(conn, g.provenance),
            )
            updates.append(
                {
                    "id": eid,
                    "status": plan.status,
                    "version": version,
                    "attributes": attributes,
                    "provenance": provenance,
                    "updated_at": now,
                }
            )
            version_rows.append(
                _version_row(
                    eid, version, plan.status, attributes, provenance, plan.change, actor, now
                )
            )
            touched.append(eid)
            if plan.status == "active":
                conflict_rows.extend(_conflict_rows(eid, g, now))
            for event_type, data in plan.events or [("entity.updated", {})]:
                payload = dict(data)
                if plan.status == "active":
                    payload["changed"] = changed
                events.append(
                    PendingEvent(eid, state.canonical_id, entity_type, event_type, version, payload)
                )
        repo.update_entities(conn, updates)
        repo.add_versions(conn, version_rows)
        repo.replace_conflicts(conn, touched, conflict_rows)
        summary.versions += len(version_rows)
        summary.events += write_events(conn, events, now)
    return summary


def _version_row(
    eid: int,
    version: int,
    status: str,
    attributes: Any,
    provenance: Any,
    change: str,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "entity_id": eid,
        "version": version,
        "status": status,
        "attributes": attributes,
        "provenance": provenance,
        "change": change,
        "changed_by": actor,
        "valid_from": now,
    }


def resolve_entities(
    session: Session,
    entity_ids: Iterable[int],
    *,
    actor: str = "system:resolve",
    change: str = "updated",
) -> ApplySummary:
    """Recompute the golden records of these (active) entities; write what changed."""
    session.flush()
    conn = session.connection()
    states = lookup.entity_states(conn, entity_ids)
    by_type: dict[str, list[int]] = {}
    for s in states.values():
        if s.status == "active":
            by_type.setdefault(s.entity_type, []).append(s.id)
    total = ApplySummary()
    now = utcnow()
    for entity_type, ids in sorted(by_type.items()):
        part = apply_plans(
            conn, entity_type, {e: Plan(change=change) for e in ids}, actor=actor, now=now
        )
        total.versions += part.versions
        total.events += part.events
        total.unchanged += part.unchanged
    return total


def resolve_pending(
    session: Session, entity_type: str, *, actor: str = "system:resolve"
) -> ApplySummary:
    """Recompute the entities whose linked records changed since their last version."""
    session.flush()
    dirty = repo.entities_with_newer_inputs(session.connection(), entity_type)
    return resolve_entities(session, sorted(dirty), actor=actor)


def resolve_all(
    session: Session, entity_type: str, *, actor: str = "system:resolve"
) -> ApplySummary:
    """Recompute every active entity (after a rules change); write what changed."""
    session.flush()
    ids = repo.entity_ids_of_type(session.connection(), entity_type)
    return resolve_entities(session, ids, actor=actor, change="rules")


@dataclass
class RebuildReport:
    entity_type: str
    entities: int = 0
    identical: int = 0
    differing: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differing

    def as_dict(self) -> dict[str, Any]:
        return {
            "entity_type": self.entity_type,
            "entities": self.entities,
            "identical": self.identical,
            "differing": len(self.differing),
            "examples": self.differing[:20],
        }


def rebuild(session: Session, entity_type: str) -> RebuildReport:
    """Recompute every active golden record and compare with the stored one.

    Read-only: invariant 6 says there is nothing to write. A difference (reported by
    canonical ID and attribute *names*) means the store was changed outside the
    services, or the rules changed without ``mdm resolve --all``.
    """
    session.flush()
    conn = session.connection()
    rules = load_survivorship(entity_type)
    report = RebuildReport(entity_type)
    ids = repo.entity_ids_of_type(conn, entity_type)
    for start in range(0, len(ids), _CHUNK_ENTITIES):
        batch = ids[start : start + _CHUNK_ENTITIES]
        states = lookup.entity_states(conn, batch)
        goldens = golden_for(conn, entity_type, repo.members(conn, batch), rules)
        for eid in batch:
            state, g = states[eid], goldens[eid]
            report.entities += 1
            if _same(state, g):
                report.identical += 1
                continue
            report.differing.append(
                {
                    "canonical_id": state.canonical_id,
                    "attributes": changed_attributes(state.attributes, g.attributes),
                    "provenance": changed_attributes(state.provenance, g.provenance),
                }
            )
    return report
