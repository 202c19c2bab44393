"""History: every version of an entity, and the golden record as of any moment.

Versions are never rewritten: ``entity_versions`` holds each state with the time it
became valid, so ``get_entity(..., as_of=t)`` is the latest version with
``valid_from <= t``. Reads follow redirects: asked for a merged ID, they answer with
the entity that absorbed it (and say so), through the entity read model
(:func:`mdm.store.repositories.lookup.resolve_canonical_id`). Read as of a moment, a
merged ID follows the merge that was in force then (the ``merged_into`` of its merge
event), not today's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mdm.domain.canonical_id import parse_canonical_id
from mdm.exceptions import EntityNotFound
from mdm.store.db import Session
from mdm.store.repositories import entities as repo
from mdm.store.repositories import history as past
from mdm.store.repositories import lookup


@dataclass(slots=True)
class EntityView:
    """The answer to a read by canonical ID: the state of the entity that answers
    for it (the entity read model; as of a moment when asked) and the IDs whose
    redirects led there."""

    requested_id: str
    state: lookup.CurrentEntity
    redirected_from: list[str] = field(default_factory=list)  # the chain followed

    @property
    def canonical_id(self) -> str:
        return self.state.canonical_id

    @property
    def entity_type(self) -> str:
        return self.state.entity_type

    @property
    def status(self) -> str:
        return self.state.status

    @property
    def version(self) -> int:
        return self.state.version

    @property
    def attributes(self) -> dict[str, Any]:
        return self.state.attributes

    @property
    def provenance(self) -> dict[str, Any]:
        return self.state.provenance

    @property
    def valid_from(self) -> datetime | None:
        return self.state.valid_from


def _version_at(session: Session, entity_id: int, as_of: datetime | None) -> Any:
    return past.version_at(session.connection(), entity_id, as_of)


def _merged_into_at(session: Session, entity_id: int, version: int) -> str | None:
    for payload in past.merge_payloads(session.connection(), entity_id):
        if payload.get("version") == version and "merged_into" in payload.get("data", {}):
            return str(payload["data"]["merged_into"])
    return None


def get_entity(session: Session, canonical_id: str, as_of: datetime | None = None) -> EntityView:
    """The entity (or its golden record as of ``as_of``), following redirects."""
    session.flush()
    _type, requested = parse_canonical_id(canonical_id)
    if as_of is None:
        return _current(session, requested)
    chain: list[str] = []
    cid = requested
    for _hop in range(8):  # redirects are flat; more hops only through history
        state = lookup.entity_by_canonical_id(session.connection(), cid)
        if state is None:
            raise EntityNotFound(f"no entity has the canonical ID {cid}")
        row = _version_at(session, state.id, as_of)
        if row is None:
            raise EntityNotFound(f"{cid} did not exist at {as_of.isoformat()}")
        if row.status == "merged":
            target = _merged_into_at(session, state.id, row.version)
            if target is not None:
                chain.append(cid)
                cid = target
                continue
        return _view(requested, state, row, chain)
    raise EntityNotFound(f"{requested}: redirect chain too long")


def _current(session: Session, requested: str) -> EntityView:
    """The entity answering for ``requested`` now (the read model's redirects), with
    its latest version."""
    ent = lookup.resolve_canonical_id(session.connection(), requested)
    if ent is None:
        raise EntityNotFound(f"no entity has the canonical ID {requested}")
    row = _version_at(session, ent.id, None)
    if row is None:
        raise EntityNotFound(f"{ent.canonical_id} did not exist at ?")
    chain = [requested] if ent.canonical_id != requested else []
    return _view(requested, ent, row, chain)


def _view(requested: str, entity: lookup.CurrentEntity, row: Any, chain: list[str]) -> EntityView:
    """The view of ``entity`` in its version ``row``."""
    state = lookup.CurrentEntity(
        entity.id,
        entity.canonical_id,
        entity.entity_type,
        row.status,
        int(row.version),
        row.attributes,
        row.provenance,
        row.valid_from,
    )
    return EntityView(requested, state, chain)


def history(session: Session, canonical_id: str) -> list[dict[str, Any]]:
    """Every version of the entity (not following redirects), oldest first."""
    session.flush()
    _type, cid = parse_canonical_id(canonical_id)
    state = lookup.entity_by_canonical_id(session.connection(), cid)
    if state is None:
        raise EntityNotFound(f"no entity has the canonical ID {cid}")
    rows = past.versions(session.connection(), state.id)
    return [
        {
            "version": r.version,
            "status": r.status,
            "change": r.change,
            "changed_by": r.changed_by,
            "valid_from": r.valid_from,
            "attributes": r.attributes,
            "provenance": r.provenance,
        }
        for r in rows
    ]


@dataclass
class EntityLinks:
    """What surrounds a golden record: its linked source records (their current
    standardized versions), the canonical IDs redirected to it and its active
    attribute overrides."""

    records: list[repo.RecordRow]
    redirects: list[str]
    overrides: dict[str, Any]


def entity_links(session: Session, view: EntityView) -> EntityLinks:
    """The :class:`EntityLinks` of the golden record ``view`` (from :func:`get_entity`)."""
    conn = session.connection()
    state = view.state
    member_ids = repo.members(conn, [state.id])[state.id]
    return EntityLinks(
        records=repo.record_rows(conn, member_ids, view.entity_type),
        redirects=repo.redirected_from(conn, state.id),
        overrides=repo.active_overrides(conn, [state.id]).get(state.id, {}),
    )


def most_linked(session: Session, entity_type: str) -> str | None:
    """The canonical ID of the entity of ``entity_type`` with the most active links
    (the smallest ID among equals), if there is any."""
    return repo.most_linked(session.connection(), entity_type)
