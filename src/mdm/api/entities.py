"""Golden-record lookup, history, cross-references and batch lookup.

The current golden record is the entity read model
(:func:`mdm.store.repositories.lookup.resolve_canonical_ids`, set-based): a single
lookup costs one indexed query, a batch of 1,000 a handful. Reads as of a moment
(``as_of``) go through :func:`mdm.services.history.get_entity`, which follows the
redirects in force then.
A merged ID answers 200 with the surviving entity and ``redirected_from`` set, so a
client need not follow anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query

from mdm.api.auth import Caller, Principal
from mdm.api.errors import JsonResponse, responses
from mdm.api.masking import mask_entity, mask_id
from mdm.api.schemas import BatchGetIn, BatchGetOut, EntityOut, HistoryOut, XrefOut
from mdm.domain.canonical_id import PREFIX_TYPE, parse_canonical_id
from mdm.exceptions import EntityNotFound, MalformedId, NotFound
from mdm.services import history as history_svc
from mdm.services.clients import ENTITY_TYPES
from mdm.store.db import Connection, Session
from mdm.store.repositories import lookup
from mdm.store.repositories.entities import decode_json

router = APIRouter(tags=["entities"])

IdPath = Annotated[str, Path(description="Canonical ID, e.g. P-7K2M9QX4D1RB5", max_length=64)]
AsOf = Annotated[
    datetime | None, Query(description="Read the golden record as of this moment (ISO 8601)")
]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def entity_body(
    principal: Principal,
    requested_id: str,
    ent: lookup.CurrentEntity,
    *,
    redirected_from: str | None,
    pii: bool | None = None,
) -> dict[str, Any]:
    """The response body of one entity (:class:`~mdm.api.schemas.EntityOut`), from
    the entity read model. Attributes / provenance held as JSON text straight from
    the database are embedded without decoding by an unmasked read
    (``orjson.Fragment``); a masked read decodes, masks and re-encodes.

    ``valid_from`` stays a datetime: :class:`JsonResponse` (orjson) writes it in ISO
    8601 as ``datetime.isoformat`` would, without a Python call per entity (a batch
    of 1,000 spent about 1 ms on those calls). ``pii``: whether this read is
    unmasked, when the caller already asked ``principal.pii`` for the type."""
    masked: list[str] = []
    attrs: Any = ent.stored_attributes
    prov: Any = ent.stored_provenance
    if principal.pii(ent.entity_type) if pii is None else pii:
        attrs = orjson.Fragment(attrs) if isinstance(attrs, str) else attrs
        prov = orjson.Fragment(prov) if isinstance(prov, str) else prov
    else:
        view = mask_entity(
            ent.entity_type,
            (decode_json(attrs) or {}) if isinstance(attrs, str) else attrs,
            (decode_json(prov) or {}) if isinstance(prov, str) else prov,
        )
        attrs, prov, masked = view.attributes, view.provenance, view.masked
    return {
        "requested_id": requested_id,
        "canonical_id": ent.canonical_id,
        "entity_type": ent.entity_type,
        "status": ent.status,
        "version": ent.version,
        "attributes": attrs,
        "provenance": prov,
        "valid_from": ent.valid_from,
        "redirected_from": redirected_from,
        "masked": masked,
    }


def _current(
    principal: Principal, conn: Connection, requested: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """requested canonical ID -> entity body, for the IDs that exist (set-based),
    merged IDs answered by the entity they redirect to."""
    found = lookup.resolve_canonical_ids(conn, requested)
    out: dict[str, dict[str, Any]] = {}
    pii: dict[str, bool] = {}  # entity type -> unmasked (asked once per type)
    for cid in requested:
        ent = found.get(cid)
        if ent is None:
            continue
        unmasked = pii.get(ent.entity_type)
        if unmasked is None:
            unmasked = pii[ent.entity_type] = principal.pii(ent.entity_type)
        redirected = cid if ent.canonical_id != cid else None
        out[cid] = entity_body(principal, cid, ent, redirected_from=redirected, pii=unmasked)
    return out


def _as_of(principal: Principal, conn: Connection, cid: str, as_of: datetime) -> dict[str, Any]:
    with Session(bind=conn) as session:
        view = history_svc.get_entity(session, cid, as_of)
    redirected = view.requested_id if view.redirected_from else None
    return entity_body(principal, view.requested_id, view.state, redirected_from=redirected)


def _served_ids(body: dict[str, Any]) -> list[str]:
    ids = [body["canonical_id"]]
    if body["redirected_from"]:
        ids.append(body["redirected_from"])
    return ids


@router.get(
    "/entities/{id}",
    summary="The golden record of a canonical ID",
    response_model=EntityOut,
    responses=responses(
        400, 404, r400="Malformed ID or missing purpose", r404="No entity has this ID"
    ),
)
def get_entity(principal: Caller, id: IdPath, as_of: AsOf = None) -> JsonResponse:
    entity_type, cid = parse_canonical_id(id)
    principal.require(entity_type, "read")
    principal.pii(entity_type)  # a pii client without purpose fails before any read
    with principal.engine.connect() as conn:
        if as_of is not None:
            body = _as_of(principal, conn, cid, as_of)
        else:
            found = _current(principal, conn, [cid])
            if cid not in found:
                raise EntityNotFound(f"no entity has the canonical ID {cid}")
            body = found[cid]
    principal.audit(
        "entity.read",
        _served_ids(body),
        as_of=_iso(as_of),
        pii=not body["masked"] and principal.can(entity_type, "pii"),
    )
    return JsonResponse(body)


@router.get(
    "/entities/{id}/history",
    summary="Every version of an entity (not following redirects), oldest first",
    response_model=HistoryOut,
    responses=responses(400, 404),
)
def get_history(principal: Caller, id: IdPath) -> JsonResponse:
    entity_type, cid = parse_canonical_id(id)
    principal.require(entity_type, "read")
    pii = principal.pii(entity_type)
    with principal.engine.connect() as conn, Session(bind=conn) as session:
        versions = history_svc.history(session, cid)
    out = []
    for v in versions:
        if pii:
            attributes, provenance, masked = v["attributes"], v["provenance"], []
        else:
            view = mask_entity(entity_type, v["attributes"] or {}, v["provenance"] or {})
            attributes, provenance, masked = view.attributes, view.provenance, view.masked
        out.append(
            {
                "version": v["version"],
                "status": v["status"],
                "change": v["change"],
                "changed_by": v["changed_by"],
                "valid_from": _iso(v["valid_from"]),
                "attributes": attributes,
                "provenance": provenance,
                "masked": masked,
            }
        )
    principal.audit("entity.history", [cid], pii=pii)
    return JsonResponse({"canonical_id": cid, "entity_type": entity_type, "versions": out})


@router.get(
    "/xrefs/{source_system}/{source_key}",
    summary="The canonical ID for a source system's own key",
    response_model=XrefOut,
    responses=responses(404, r404="The source system has no such key (or it is not linked)"),
)
def get_xref(
    principal: Caller,
    source_system: Annotated[str, Path(max_length=100, pattern=r"^[^\x00]*$")],
    source_key: Annotated[str, Path(max_length=200, pattern=r"^[^\x00]*$")],
) -> JsonResponse:
    with principal.engine.connect() as conn:
        found = lookup.xrefs(conn, [(source_system, source_key)]).get((source_system, source_key))
    # A record of a type this key may not read answers exactly like a missing one:
    # a 403 would tell the key that the record exists.
    if found is None or not principal.can(found.entity_type, "read"):
        raise NotFound(
            f"{source_system} has no record with this key linked to an entity that this "
            "key may read",
            code="xref_not_found",
        )
    principal.audit("xref.read", [found.canonical_id], source_system=source_system)
    unmasked = bool(principal.purpose) and principal.can(found.entity_type, "pii")
    return JsonResponse(
        {
            "source_system": found.source_system,
            # the key is the caller's own, but a source key can be a personal ID: it is
            # masked like one for a key that reads masked data (one rule everywhere)
            "source_key": found.source_key if unmasked else mask_id(found.source_key),
            "canonical_id": found.canonical_id,
            "entity_type": found.entity_type,
            "status": found.status,
        }
    )


def _error(code: str, detail: str) -> dict[str, Any]:
    return {"ok": False, "error": code, "detail": detail}


@router.post(
    "/entities:batchGet",
    summary="Up to 1,000 canonical IDs or cross-references in one call, results in order",
    response_model=BatchGetOut,
    responses=responses(400),
)
def batch_get(principal: Caller, body: BatchGetIn) -> JsonResponse:
    # A key holding any pii scope states a purpose for every batch (the types of
    # cross-referenced items are only known after the lookup).
    for entity_type in ENTITY_TYPES:
        principal.pii(entity_type)
    results: list[dict[str, Any] | None] = [None] * len(body.items)
    wanted: dict[int, str] = {}  # item index -> canonical ID to read
    refs: dict[int, tuple[str, str]] = {}
    for i, item in enumerate(body.items):
        if item.id is not None:
            try:
                _t, wanted[i] = parse_canonical_id(item.id)
            except MalformedId as exc:
                results[i] = _error(exc.code, str(exc.detail))
        else:
            assert item.source_system is not None and item.source_key is not None
            refs[i] = (item.source_system, item.source_key)
    with principal.engine.connect() as conn:
        found_refs = lookup.xrefs(conn, list(refs.values())) if refs else {}
        readable = {t: principal.can(t, "read") for t in ENTITY_TYPES}
        for i, ref in refs.items():
            x = found_refs.get(ref)
            # unreadable answers like missing (no existence oracle across types)
            if x is None or not readable[x.entity_type]:
                results[i] = _error(
                    "xref_not_found",
                    f"{ref[0]} has no record with this key linked to an entity that this "
                    "key may read",
                )
            else:
                wanted[i] = x.canonical_id
        allowed: dict[int, str] = {}
        for i, cid in wanted.items():
            entity_type = PREFIX_TYPE[cid[0]]
            if readable[entity_type]:
                allowed[i] = cid
            else:
                results[i] = _error("forbidden", f"this key lacks the scope {entity_type}:read")
        bodies: dict[str, dict[str, Any]] = {}
        if body.as_of is None:
            bodies = _current(principal, conn, list(dict.fromkeys(allowed.values())))
        else:
            for cid in dict.fromkeys(allowed.values()):
                try:
                    bodies[cid] = _as_of(principal, conn, cid, body.as_of)
                except EntityNotFound:
                    continue
    served: list[str] = []
    for i, cid in allowed.items():
        found = bodies.get(cid)
        if found is None:
            results[i] = _error("entity_not_found", f"no entity has the canonical ID {cid}")
        else:
            results[i] = {"ok": True, "entity": found}
            served.extend(_served_ids(found))
    principal.audit(
        "entity.batch_get",
        list(dict.fromkeys(served)),
        items=len(body.items),
        as_of=_iso(body.as_of),
    )
    return JsonResponse({"results": results})
