"""History: every version of an entity, and the golden record as of any moment.

Versions are never rewritten: ``entity_versions`` holds each state with the time it
became valid, so ``get_entity(..., as_of=t)`` is the latest version with
``valid_from <= t``. Reads follow redirects: asked for a merged ID, they answer with
the entity that absorbed it (and say so). Read as of a moment, a merged ID follows the
merge that was in force then (the ``merged_into`` of its merge event), not today's.
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


@dataclass
class EntityView:
    requested_id: str
    canonical_id: str
    entity_type: str
    status: str
    version: int
    attributes: dict[str, Any]
    provenance: dict[str, Any]
    valid_from: datetime | None
    redirected_from: list[str] = field(default_factory=list)  # the chain followed

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested_id": self.requested_id,
            "canonical_id": self.canonical_id,
            "entity_type": self.entity_type,
            "status": self.status,
            "version": self.version,
            "attributes": self.attributes,
            "provenance": self.provenance,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "redirected_from": self.redirected_from,
        }


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
    chain: list[str] = []
    cid = requested
    for _hop in range(8):  # redirects are flat; more hops only through history
        state = repo.entity_by_canonical_id(session.connection(), cid)
        if state is None:
            raise EntityNotFound(f"no entity has the canonical ID {cid}")
        row = _version_at(session, state.id, as_of)
        if row is None:
            raise EntityNotFound(f"{cid} did not exist at {as_of.isoformat() if as_of else '?'}")
        if row.status == "merged":
            target: str | None
            if as_of is None:
                to = repo.redirect_target(session.connection(), state.id)
                target = (
                    repo.entity_states(session.connection(), [to])[to].canonical_id if to else None
                )
            else:
                target = _merged_into_at(session, state.id, row.version)
            if target is not None:
                chain.append(cid)
                cid = target
                continue
        return EntityView(
            requested,
            cid,
            state.entity_type,
            row.status,
            int(row.version),
            row.attributes,
            row.provenance,
            row.valid_from,
            chain,
        )
    raise EntityNotFound(f"{requested}: redirect chain too long")


def history(session: Session, canonical_id: str) -> list[dict[str, Any]]:
    """Every version of the entity (not following redirects), oldest first."""
    session.flush()
    _type, cid = parse_canonical_id(canonical_id)
    state = repo.entity_by_canonical_id(session.connection(), cid)
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
    state = repo.entity_by_canonical_id(conn, view.canonical_id)
    assert state is not None
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
