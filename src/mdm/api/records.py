"""Real-time registration: ``POST /v1/{entity_type}/records``.

The route runs :func:`mdm.services.registration.register_with_retry`: one
transaction per attempt (``register_record`` only flushes), races retried there, a
rejected record's ``rejects`` row kept. The audit row is written in the
registration's transaction (``on_result``), so a registration is never committed
without its audit row and vice versa.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request

from mdm.api.auth import Caller, Principal
from mdm.api.errors import JsonResponse, ValidationErrorBody, responses
from mdm.api.masking import explain, mask_id
from mdm.api.schemas import EntityType, RecordIn, RecordOut, RejectedBody
from mdm.services import audit
from mdm.services import registration as reg
from mdm.store.db import Session, sessionmaker

router = APIRouter(tags=["records"])


@router.post(
    "/{entity_type}/records",
    summary="Register or update one source record; answers its canonical ID and the decision",
    response_model=RecordOut,
    responses={
        **responses(
            400,
            404,
            409,
            r404="Unknown entity type",
            r409="Idempotency-Key reused for another request, or concurrent registrations collided",
        ),
        422: {
            "model": ValidationErrorBody | RejectedBody,
            "description": "Payload validation failed, or the record was rejected "
            "(record_rejected: its standardization found errors; kept in rejects)",
        },
    },
)
def register(
    request: Request,
    principal: Caller,
    entity_type: Annotated[EntityType, Path(description="citizen, organization or dossier")],
    body: RecordIn,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=200,
            description="Same key + same request within 24 h: the first answer again",
        ),
    ] = None,
) -> JsonResponse:
    principal.require(entity_type, "write")
    principal.require_source_system(body.source_system)
    factory = sessionmaker(principal.engine, expire_on_commit=False)
    result = reg.register_with_retry(
        factory,
        entity_type,
        body.source_system,
        body.source_key,
        body.attributes,
        on_result=lambda session, registered: _audit(session, principal, registered),
        idempotency_key=idempotency_key,
        client_id=principal.client.id,
        actor=f"client:{principal.name}",
        rules_dir=getattr(request.app.state, "mdm_rules_dir", None),
    )
    return JsonResponse(answer(principal, result))


def answer(principal: Principal, result: reg.RegistrationResult) -> dict[str, Any]:
    """The registration's answer under the masking rule: the source key masked like an
    identifier (it may be one: the portal keys citizens by CCCD), the candidates' explanations
    are coarsened like a search's (:func:`mdm.api.masking.explain`) unless the key
    holds the type's pii scope and states a purpose (a write needs none, but then it
    reads no weight of a masked attribute: they would confirm a guessed value of the
    record it matched)."""
    body = result.as_dict()
    pii = bool(principal.purpose) and principal.can(result.entity_type, "pii")
    if not pii:
        body["source_key"] = mask_id(body["source_key"])
        for cand in body["candidates"]:
            shown = explain(
                result.entity_type,
                cand.get("match_probability"),
                cand.get("match_weight"),
                cand.get("weights") or {},
                pii=False,
            )
            cand["match_probability"] = shown.match_probability
            cand["match_weight"] = shown.match_weight
            cand["weights"] = shown.weights
    return body


def _audit(session: Session, principal: Caller, result: reg.RegistrationResult) -> None:
    session.flush()
    audit.append(
        session.connection(),
        [
            principal.audit_entry(
                "record.register",
                [result.canonical_id],
                entity_type=result.entity_type,
                source_system=result.source_system,
                decision=result.decision,
                replayed=result.replayed,
                changed=result.changed,
            )
        ],
    )
