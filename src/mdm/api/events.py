"""The change feed: ``GET /v1/events`` (pull, with a cursor) and ``GET
/v1/events/stream`` (Server-Sent Events). Scope ``events:read``. docs/events.md."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from mdm.api.auth import Caller, Principal
from mdm.api.errors import JsonResponse, responses
from mdm.config import get_settings
from mdm.domain.scopes import has_scope
from mdm.events.feed import (
    MAX_PAGE,
    FeedPage,
    Filters,
    event_stream,
    events_after,
    parse_filters,
)
from mdm.exceptions import BadRequest, Forbidden
from mdm.services.clients import ENTITY_TYPES, EVENTS_READ, active_client
from mdm.store.db import sessionmaker, unit_of_work

router = APIRouter(tags=["events"])

MAX_BIGINT = 2**63 - 1
#: the longest an open event stream goes without re-checking its key
STREAM_RECHECK_SECONDS = 30.0
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


def _filters(
    principal: Principal, entity_types: str | None, event_types: str | None, ids: str | None
) -> Filters:
    """The request's filters, narrowed to the entity types the key may read: the feed
    is a read of those entities, so ``events:read`` alone reads nothing. Asking for a
    type the key may not read is 403, as a read of it would be."""

    def one(value: str | None) -> list[str]:
        return [value] if value else []

    asked = parse_filters(one(entity_types), one(event_types), one(ids))
    readable = readable_types(principal.client.scopes)
    for entity_type in asked.entity_types:
        if entity_type not in ENTITY_TYPES:
            raise BadRequest(
                f"unknown entity type {entity_type!r}; known: {', '.join(ENTITY_TYPES)}"
            )
        if entity_type not in readable:
            raise Forbidden(f"this key lacks the scope {entity_type}:read", code="forbidden")
    if not readable:
        raise Forbidden(
            "this key may read no entity type (no <type>:read scope): its feed would be empty",
            code="forbidden",
        )
    return Filters(asked.entity_types or readable, asked.event_types, asked.canonical_ids)


def readable_types(scopes: frozenset[str]) -> tuple[str, ...]:
    return tuple(t for t in ENTITY_TYPES if has_scope(scopes, t, "read"))


def _start(after: int, last_event_id: str | None) -> int:
    """Where a stream starts: after ``Last-Event-ID`` (a feed position) when given."""
    if last_event_id is None:
        return after
    value = last_event_id.strip()
    if not _POSITION.fullmatch(value) or int(value) > MAX_BIGINT:
        raise BadRequest(
            "Last-Event-ID must be a feed position: the id of an event this stream sent "
            f"(a whole number from 0 to {MAX_BIGINT})",
            code="invalid_last_event_id",
        )
    return int(value)


_POSITION = re.compile(r"[0-9]{1,19}")


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
    filters = _filters(principal, entity_types, event_types, canonical_ids)
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
    filters = _filters(principal, entity_types, event_types, canonical_ids)
    start = _start(after, last_event_id)
    factory = sessionmaker(principal.engine, expire_on_commit=False)
    client_id = principal.client.id

    def read(position: int) -> FeedPage:
        with unit_of_work(factory) as session:
            return events_after(session, position, 100, filters)

    def still_allowed() -> bool:
        """The key is not revoked and still holds what this stream was opened with."""
        with unit_of_work(factory) as session:
            client = active_client(session, client_id)
        return (
            client is not None
            and EVENTS_READ in client.scopes
            and all(t in readable_types(client.scopes) for t in filters.entity_types)
        )

    # An open stream re-checks its key at least as often as the key cache forgets it,
    # so a revocation ends it within the time it takes to refuse new requests.
    recheck = max(0.1, min(get_settings().api_auth_cache_seconds, STREAM_RECHECK_SECONDS))

    async def messages() -> AsyncIterator[str]:
        async for message in event_stream(
            read, start, still_allowed=still_allowed, recheck_seconds=recheck
        ):
            if await request.is_disconnected():
                break
            yield message

    return StreamingResponse(
        messages(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
