"""Webhook subscriptions under ``/v1/subscriptions``: create, list, change, pause,
resume, delete, rotate the secret; deliveries, dead letters and redelivery.

Scope ``subscriptions:manage``. A client sees and manages only its own
subscriptions (another client's answer 404). docs/events.md.

A webhook URL must reach a public address (400 ``webhook_destination_refused``):
``mdm.events.destinations``; the policy is the settings', or
``app.state.mdm_webhook_policy`` when set (tests).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from mdm.api.auth import Caller, Principal
from mdm.api.errors import JsonResponse, responses
from mdm.api.events import MAX_BIGINT, require_scope
from mdm.events.destinations import DestinationPolicy
from mdm.services import subscriptions as svc
from mdm.services.clients import SUBSCRIPTIONS_MANAGE
from mdm.store.db import Session, sessionmaker, unit_of_work

router = APIRouter(tags=["subscriptions"])

SubId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="Subscription ID")]
AfterId = Annotated[int, Query(ge=0, le=MAX_BIGINT)]


EntityTypeName = Literal["citizen", "organization", "dossier"]
EventTypeName = Literal[
    "entity.created", "entity.updated", "entity.merged", "entity.unmerged", "entity.retired"
]
# Printable ASCII only after the host: no spaces, no control characters (a NUL cannot
# be stored in Postgres text or JSON). A host name or IPv4 address; no IPv6 literals
# (an IPv6 receiver is reached by name) and no user info.
URL_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[\x21-\x7e]*)?$"


class FiltersIn(BaseModel):
    entity_types: list[EntityTypeName] = Field(default_factory=list, max_length=3)
    event_types: list[EventTypeName] = Field(default_factory=list, max_length=5)
    canonical_ids: list[Annotated[str, Field(max_length=64, pattern=r"^[\x21-\x7e]+$")]] = Field(
        default_factory=list, max_length=10_000, description="Watch list (follows merges)"
    )


URL_DESCRIPTION = (
    "The webhook: an absolute http(s) URL whose host resolves to public addresses only "
    "(400 webhook_destination_refused otherwise)"
)


def _policy(request: Request) -> DestinationPolicy | None:
    """The app's destination policy if one was set; ``None``: the settings'."""
    policy = getattr(request.app.state, "mdm_webhook_policy", None)
    return policy if isinstance(policy, DestinationPolicy) else None


Policy = Annotated[DestinationPolicy | None, Depends(_policy)]


class SubscriptionIn(BaseModel):
    url: str = Field(max_length=2000, pattern=URL_PATTERN, description=URL_DESCRIPTION)
    filters: FiltersIn = Field(default_factory=FiltersIn)


class SubscriptionPatch(BaseModel):
    url: str | None = Field(None, max_length=2000, pattern=URL_PATTERN, description=URL_DESCRIPTION)
    filters: FiltersIn | None = None
    status: Literal["active", "paused"] | None = None


class SubscriptionOut(BaseModel):
    id: int
    url: str
    filters: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(None, description="Only when created or rotated")


class RedeliverIn(BaseModel):
    delivery_ids: list[Annotated[int, Field(ge=1, le=MAX_BIGINT)]] | None = Field(
        None, max_length=10_000, description="Dead letters to redeliver (default: all)"
    )


def _out(view: svc.SubscriptionView, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": view.id,
        "url": view.url,
        "filters": view.filters,
        "status": view.status,
        "created_at": view.created_at.isoformat(),
        "updated_at": view.updated_at.isoformat(),
    }
    if secret is not None:
        out["secret"] = secret
    return out


def _session(principal: Principal) -> Any:
    require_scope(principal, SUBSCRIPTIONS_MANAGE)
    return unit_of_work(sessionmaker(principal.engine, expire_on_commit=False), write=True)


def _audit(principal: Principal, action: str, subscription_id: int) -> None:
    principal.audit(action, [], subscription_id=subscription_id)


@router.post(
    "/subscriptions",
    status_code=201,
    summary="Subscribe a webhook; the answer holds the signing secret (shown once)",
    response_model=SubscriptionOut,
    responses=responses(400),
)
def create(principal: Caller, body: SubscriptionIn, policy: Policy) -> JsonResponse:
    with _session(principal) as session:
        view, secret = svc.create_subscription(
            session, principal.client.id, body.url, body.filters.model_dump(), policy=policy
        )
    _audit(principal, "subscription.create", view.id)
    return JsonResponse(_out(view, secret), status_code=201)


@router.get("/subscriptions", summary="This client's subscriptions", responses=responses())
def list_all(principal: Caller) -> JsonResponse:
    with _session(principal) as session:
        views = svc.list_subscriptions(session, principal.client.id)
    return JsonResponse({"subscriptions": [_out(v) for v in views]})


@router.get(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    responses=responses(404),
)
def get_one(principal: Caller, subscription_id: SubId) -> JsonResponse:
    with _session(principal) as session:
        view = svc.get_subscription(session, subscription_id, principal.client.id)
    return JsonResponse(_out(view))


@router.patch(
    "/subscriptions/{subscription_id}",
    summary="Change the URL, the filters or the status (active / paused)",
    response_model=SubscriptionOut,
    responses=responses(400, 404),
)
def patch(
    principal: Caller, subscription_id: SubId, body: SubscriptionPatch, policy: Policy
) -> JsonResponse:
    with _session(principal) as session:
        view = svc.update_subscription(
            session,
            subscription_id,
            client_id=principal.client.id,
            url=body.url,
            filters=body.filters.model_dump() if body.filters is not None else None,
            status=body.status,
            policy=policy,
        )
    _audit(principal, "subscription.update", subscription_id)
    return JsonResponse(_out(view))


def _set_status(principal: Principal, subscription_id: int, status: str) -> JsonResponse:
    with _session(principal) as session:
        view = svc.update_subscription(
            session, subscription_id, client_id=principal.client.id, status=status
        )
    _audit(principal, f"subscription.{'pause' if status == 'paused' else 'resume'}", view.id)
    return JsonResponse(_out(view))


@router.post(
    "/subscriptions/{subscription_id}/pause",
    summary="Stop delivering; events keep queueing",
    response_model=SubscriptionOut,
    responses=responses(404),
)
def pause(principal: Caller, subscription_id: SubId) -> JsonResponse:
    return _set_status(principal, subscription_id, "paused")


@router.post(
    "/subscriptions/{subscription_id}/resume",
    summary="Deliver again, starting with what queued meanwhile",
    response_model=SubscriptionOut,
    responses=responses(404),
)
def resume(principal: Caller, subscription_id: SubId) -> JsonResponse:
    return _set_status(principal, subscription_id, "active")


@router.post(
    "/subscriptions/{subscription_id}/rotate-secret",
    summary="A new signing secret (shown once); the old one stops signing at once",
    responses=responses(404),
)
def rotate(principal: Caller, subscription_id: SubId) -> JsonResponse:
    with _session(principal) as session:
        secret = svc.rotate_secret(session, subscription_id, principal.client.id)
    _audit(principal, "subscription.rotate_secret", subscription_id)
    return JsonResponse({"id": subscription_id, "secret": secret})


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=204,
    summary="Delete the subscription and its delivery history",
    responses=responses(404),
)
def remove(principal: Caller, subscription_id: SubId) -> Response:
    with _session(principal) as session:
        svc.delete_subscription(session, subscription_id, principal.client.id)
    _audit(principal, "subscription.delete", subscription_id)
    return Response(status_code=204)


def _deliveries(
    session: Session, principal: Principal, subscription_id: int, **kw: Any
) -> list[dict[str, Any]]:
    rows = svc.deliveries(session, subscription_id, client_id=principal.client.id, **kw)
    for row in rows:
        for key, value in row.items():
            if isinstance(value, datetime):
                row[key] = value.isoformat()
    return rows


@router.get(
    "/subscriptions/{subscription_id}/deliveries",
    summary="Deliveries by ID: status, attempts, last status code and error",
    responses=responses(400, 404),
)
def list_deliveries(
    principal: Caller,
    subscription_id: SubId,
    status: Literal["pending", "delivered", "dead"] | None = None,
    after_id: AfterId = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JsonResponse:
    with _session(principal) as session:
        rows = _deliveries(
            session, principal, subscription_id, status=status, after_id=after_id, limit=limit
        )
    return JsonResponse({"deliveries": rows})


@router.get(
    "/subscriptions/{subscription_id}/dead-letters",
    summary="Events that failed every attempt",
    responses=responses(404),
)
def list_dead_letters(
    principal: Caller,
    subscription_id: SubId,
    after_id: AfterId = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JsonResponse:
    with _session(principal) as session:
        rows = _deliveries(
            session, principal, subscription_id, status="dead", after_id=after_id, limit=limit
        )
    return JsonResponse({"dead_letters": rows})


@router.post(
    "/subscriptions/{subscription_id}/dead-letters/redeliver",
    summary="Queue dead letters again (all, or the given delivery IDs)",
    responses=responses(400, 404),
)
def redeliver(
    principal: Caller, subscription_id: SubId, body: RedeliverIn | None = None
) -> JsonResponse:
    ids = body.delivery_ids if body is not None else None
    with _session(principal) as session:
        n = svc.redeliver(session, subscription_id, ids, client_id=principal.client.id)
    _audit(principal, "subscription.redeliver", subscription_id)
    return JsonResponse({"redelivered": n})
