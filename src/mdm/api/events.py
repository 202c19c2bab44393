"""The change feed: ``GET /v1/events`` (pull, with a cursor) and ``GET
/v1/events/stream`` (Server-Sent Events). Scope ``events:read``. docs/events.md."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import sessionmaker

from mdm.api.auth import Caller, Principal
from mdm.api.errors import JsonResponse, responses
from mdm.events.feed import (
    MAX_PAGE,
    FeedPage,
    Filters,
    event_stream,
    events_after,
    parse_filters,
)
from mdm.exceptions import Forbidden
from mdm.services.clients import EVENTS_READ
from mdm.store.db import unit_of_work

router = APIRouter(tags=["events"])

MAX_BIGINT = 2**63 - 1
After = Annotated[
    int,
    Query(ge=0, le=MAX_BIGINT, description="Events after this feed position (0: the beginning)"),
]
EntityTypes = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=r"^[a-z,]*$",
        description="citizen, organization, dossier (comma-separated)",
    ),
]
EventTypes = Annotated[
    str | None,
    Query(max_length=500, pattern=r"^[a-z.,]*$", description="e.g. entity.merged,entity.unmerged"),
]
CanonicalIds = Annotated[
    str | None,
    Query(
        max_length=20_000,
        pattern=r"^[A-Za-z0-9,-]*$",
        description="Watch list, comma-separated: events of these entities and events naming them",
    ),
]


def _filters(entity_types: str | None, event_types: str | None, ids: str | None) -> Filters:
    def one(value: str | None) -> list[str]:
        return [value] if value else []

    return parse_filters(one(entity_types), one(event_types), one(ids))


class EventPageOut(BaseModel):
    events: list[dict[str, object]] = Field(description="Events in feed order")
    next_after: int = Field(description="Pass as `after` for the next page")


def require_scope(principal: Principal, scope: str) -> None:
    if scope not in principal.client.scopes:
        raise Forbidden(f"this key lacks the scope {scope}", code="forbidden")


@router.get(
    "/events",
    summary="The change feed after a position, in commit order",
    response_model=EventPageOut,
    responses=responses(400),
)
def list_events(
    principal: Caller,
    after: After = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    entity_types: EntityTypes = None,
    event_types: EventTypes = None,
    canonical_ids: CanonicalIds = None,
) -> JsonResponse:
    require_scope(principal, EVENTS_READ)
    filters = _filters(entity_types, event_types, canonical_ids)
    factory = sessionmaker(principal.engine, expire_on_commit=False)
    with unit_of_work(factory) as session:
        page = events_after(session, after, limit, filters)
    return JsonResponse({"events": page.events, "next_after": page.next_after})


@router.get(
    "/events/stream",
    summary="Live stream of the feed (Server-Sent Events); resumes after Last-Event-ID",
    responses=responses(400),
    response_class=StreamingResponse,
)
def stream_events(
    request: Request,
    principal: Caller,
    after: After = 0,
    entity_types: EntityTypes = None,
    event_types: EventTypes = None,
    canonical_ids: CanonicalIds = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    require_scope(principal, EVENTS_READ)
    filters = _filters(entity_types, event_types, canonical_ids)
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    factory = sessionmaker(principal.engine, expire_on_commit=False)

    def read(position: int) -> FeedPage:
        with unit_of_work(factory) as session:
            return events_after(session, position, 100, filters)

    async def messages() -> AsyncIterator[str]:
        async for message in event_stream(read, start):
            if await request.is_disconnected():
                break
            yield message

    return StreamingResponse(
        messages(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
