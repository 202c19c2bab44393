"""Subscriptions: an agency's webhook, its filters, its dead letters.

A subscription receives the events committed after it was created (its cursor starts
at the feed's tip); to catch up on history an agency pages ``GET /v1/events`` first.
Pausing keeps queueing: on resume the relay delivers what happened meanwhile, in
order. The secret is returned once, at creation (and on rotation); it signs every
delivery (docs/events.md).

A URL is accepted only if its host resolves to addresses webhooks may reach
(:class:`mdm.events.destinations.DestinationPolicy`; by default from the settings):
400 ``webhook_destination_refused`` otherwise.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mdm.events.destinations import DestinationPolicy
from mdm.events.feed import Filters
from mdm.exceptions import BadRequest, NotFound
from mdm.store.db import Session
from mdm.store.models import Subscription, utcnow
from mdm.store.repositories import events as repo

STATUSES = ("active", "paused")


@dataclass(frozen=True)
class SubscriptionView:
    id: int
    client_id: int
    url: str
    filters: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, s: Subscription) -> SubscriptionView:
        return cls(
            s.id, s.client_id, s.url, dict(s.filters or {}), s.status, s.created_at, s.updated_at
        )


def _check_url(url: str, policy: DestinationPolicy | None) -> str:
    """``url`` if webhooks may go there (resolves the host: before any database work)."""
    return (policy or DestinationPolicy.from_settings()).check_url(url)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def create_subscription(
    session: Session,
    client_id: int,
    url: str,
    filters: Mapping[str, Any] | None = None,
    *,
    secret: str | None = None,
    policy: DestinationPolicy | None = None,
) -> tuple[SubscriptionView, str]:
    """Create a subscription; returns it and its secret (shown only now). ``policy``:
    where webhooks may point (default: from the settings)."""
    checked = Filters.from_json(filters)
    url = _check_url(url, policy)
    secret = secret or new_secret()
    now = utcnow()
    tip = repo.cursor_position(session.connection(), repo.SEQUENCER) or 0
    sub = Subscription(
        client_id=client_id,
        url=url,
        secret=secret,
        filters=checked.to_json(),
        status="active",
        feed_cursor=tip,
        created_at=now,
        updated_at=now,
    )
    session.add(sub)
    session.flush()
    return SubscriptionView.of(sub), secret


def _get(session: Session, subscription_id: int, client_id: int | None) -> Subscription:
    sub = session.get(Subscription, subscription_id)
    if sub is None or (client_id is not None and sub.client_id != client_id):
        raise NotFound(f"no subscription {subscription_id}", code="subscription_not_found")
    return sub


def get_subscription(
    session: Session, subscription_id: int, client_id: int | None = None
) -> SubscriptionView:
    """``client_id`` set: only that client's subscription is found (others are 404)."""
    return SubscriptionView.of(_get(session, subscription_id, client_id))


def list_subscriptions(session: Session, client_id: int | None = None) -> list[SubscriptionView]:
    return [SubscriptionView.of(s) for s in repo.subscription_objects(session, client_id)]


def update_subscription(
    session: Session,
    subscription_id: int,
    *,
    client_id: int | None = None,
    url: str | None = None,
    filters: Mapping[str, Any] | None = None,
    status: str | None = None,
    policy: DestinationPolicy | None = None,
) -> SubscriptionView:
    """Change the URL, the filters (for events fanned out from now on) or the status
    (``paused`` / ``active``). A new URL is checked against ``policy`` (default: from
    the settings) first."""
    if url is not None:
        url = _check_url(url, policy)
    sub = _get(session, subscription_id, client_id)
    if url is not None:
        sub.url = url
    if filters is not None:
        sub.filters = Filters.from_json(filters).to_json()
    if status is not None:
        if status not in STATUSES:
            raise BadRequest(f"status must be one of {list(STATUSES)}")
        sub.status = status
    sub.updated_at = utcnow()
    session.flush()
    return SubscriptionView.of(sub)


def pause(session: Session, subscription_id: int, client_id: int | None = None) -> SubscriptionView:
    return update_subscription(session, subscription_id, client_id=client_id, status="paused")


def resume(
    session: Session, subscription_id: int, client_id: int | None = None
) -> SubscriptionView:
    return update_subscription(session, subscription_id, client_id=client_id, status="active")


def rotate_secret(session: Session, subscription_id: int, client_id: int | None = None) -> str:
    sub = _get(session, subscription_id, client_id)
    sub.secret = new_secret()
    sub.updated_at = utcnow()
    session.flush()
    return sub.secret


def delete_subscription(
    session: Session, subscription_id: int, client_id: int | None = None
) -> None:
    """Delete a subscription and its delivery history (pending ones are dropped)."""
    sub = _get(session, subscription_id, client_id)
    repo.delete_subscription(session, sub)
    session.flush()


def deliveries(
    session: Session,
    subscription_id: int,
    *,
    client_id: int | None = None,
    status: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """A subscription's deliveries (``status="dead"``: its dead letters), by id."""
    _get(session, subscription_id, client_id)
    if status is not None and status not in ("pending", "delivered", "dead"):
        raise BadRequest("status must be pending, delivered or dead")
    return repo.delivery_rows(
        session.connection(), subscription_id, status=status, after_id=after_id, limit=limit
    )


def dead_letters(
    session: Session, subscription_id: int, *, client_id: int | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    return deliveries(session, subscription_id, client_id=client_id, status="dead", limit=limit)


def redeliver(
    session: Session,
    subscription_id: int,
    delivery_ids: Sequence[int] | None = None,
    *,
    client_id: int | None = None,
) -> int:
    """Queue dead letters again (all of the subscription's, or ``delivery_ids``);
    returns how many. Each becomes the head of its entity's queue again, so the
    entity's later pending events wait until it is delivered or dead again."""
    _get(session, subscription_id, client_id)
    return repo.redeliver(session.connection(), subscription_id, delivery_ids, utcnow())
