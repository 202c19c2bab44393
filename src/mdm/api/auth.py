"""Authentication, scopes, purpose and rate limits for the agency API.

* **Key.** ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Missing, unknown,
  malformed or revoked → 401 ``unauthorized``.
* **Cache.** An authenticated key is trusted for ``MDM_API_AUTH_CACHE_SECONDS``
  (default 30 s) without a query, keyed by the key's hash. A revocation therefore
  takes effect within that time in every running process.
* **Scopes.** ``{entity_type}:{read|search|write|pii}`` or ``*:{action}``; missing →
  403 ``forbidden`` naming the scope.
* **Source systems.** A write also needs the record's source system among the
  client's binding (``mdm clients create --source-systems``), carried by the cached
  client; another → 403 ``forbidden`` naming the system.
* **Purpose.** A client holding ``<type>:pii`` reads unmasked data, and must say why
  in ``X-Purpose`` (stored in the audit trail); without it → 400 ``purpose_required``.
  Clients without the pii scope read masked data and need no purpose.
* **Rate limit.** A token bucket per client, ``rate_limit_per_minute`` tokens, refilled
  continuously; empty → 429 ``rate_limited`` with ``Retry-After`` (seconds). Buckets
  live in the process: with N worker processes a client gets up to N times its limit.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from mdm.config import get_settings
from mdm.domain.scopes import has_scope
from mdm.exceptions import BadRequest, Forbidden, MDMError, Unauthorized
from mdm.services.audit import AuditEntry, writer_for
from mdm.services.clients import ClientInfo, authenticate, hash_key
from mdm.store.db import Engine, Session, get_engine

bearer_scheme = HTTPBearer(
    auto_error=False, bearerFormat="mdm_<prefix>_<secret>", description="API key"
)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


class RateLimited(MDMError):
    """Too many requests for this client; retry after the given number of seconds."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limit exceeded; retry in {retry_after} s")
        self.retry_after = retry_after


class PurposeRequired(BadRequest):
    """Reading personal data needs a purpose (X-Purpose header)."""

    code = "purpose_required"


def request_engine(request: Request) -> Engine:
    engine: Engine | None = getattr(request.app.state, "mdm_engine", None)
    return engine if engine is not None else get_engine()


# ----------------------------------------------------------------------- cache

_cache: dict[str, tuple[ClientInfo, float]] = {}
_cache_lock = threading.Lock()


def clear_auth_cache() -> None:
    with _cache_lock:
        _cache.clear()
    with _buckets_lock:
        _buckets.clear()


def _cached(digest: str) -> ClientInfo | None:
    hit = _cache.get(digest)
    if hit is not None and hit[1] > time.monotonic():
        return hit[0]
    return None


def _lookup(engine: Engine, key: str, digest: str) -> ClientInfo | None:
    """The database lookup behind the cache (runs in a worker thread)."""
    with Session(engine) as session:
        client = authenticate(session, key)
    if client is None:
        with _cache_lock:
            _cache.pop(digest, None)
        return None
    ttl = get_settings().api_auth_cache_seconds
    with _cache_lock:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[digest] = (client, time.monotonic() + ttl)
    return client


# ------------------------------------------------------------------ rate limit

_buckets: dict[str, list[float]] = {}  # key prefix -> [tokens, last refill]
_buckets_lock = threading.Lock()


def _take(client: ClientInfo) -> None:
    per_minute = max(1, client.rate_limit_per_minute)
    rate = per_minute / 60.0
    now = time.monotonic()
    with _buckets_lock:
        bucket = _buckets.get(client.key_prefix)
        if bucket is None:
            bucket = _buckets[client.key_prefix] = [float(per_minute), now]
        tokens = min(float(per_minute), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            raise RateLimited(max(1, math.ceil((1.0 - tokens) / rate)))
        bucket[0] = tokens - 1.0


# ------------------------------------------------------------------- principal


@dataclass(frozen=True, slots=True)
class Principal:
    client: ClientInfo
    purpose: str | None
    engine: Engine

    @property
    def name(self) -> str:
        return self.client.name

    def can(self, entity_type: str, action: str) -> bool:
        return has_scope(self.client.scopes, entity_type, action)

    def require(self, entity_type: str, action: str) -> None:
        if not self.can(entity_type, action):
            raise Forbidden(f"this key lacks the scope {entity_type}:{action}", code="forbidden")

    def require_source_system(self, source_system: str) -> None:
        """A write under ``source_system`` needs the key bound to it (no query: the
        binding is part of the cached client)."""
        if not self.client.may_write(source_system):
            raise Forbidden(
                f"this key may not write source system {source_system!r}", code="forbidden"
            )

    def pii(self, entity_type: str) -> bool:
        """Whether this read is unmasked; demands a purpose when it is."""
        if not self.can(entity_type, "pii"):
            return False
        if not self.purpose:
            raise PurposeRequired(
                f"this key may read unmasked {entity_type} data: state why in the X-Purpose "
                "header (it is kept in the audit trail)"
            )
        return True

    def audit(self, action: str, entity_ids: list[str], **details: object) -> None:
        """Commit the audit row of this read before it is answered (group commit)."""
        writer_for(self.engine).write(
            AuditEntry(
                actor_type="client",
                actor=self.client.name,
                action=action,
                entity_ids=entity_ids,
                purpose=self.purpose,
                details=dict(details),
                client_id=self.client.id,
            )
        )

    def audit_entry(self, action: str, entity_ids: list[str], **details: object) -> AuditEntry:
        return AuditEntry(
            actor_type="client",
            actor=self.client.name,
            action=action,
            entity_ids=entity_ids,
            purpose=self.purpose,
            details=dict(details),
            client_id=self.client.id,
        )


async def principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
    x_purpose: Annotated[
        str | None,
        Header(
            alias="X-Purpose",
            description="Why personal data is read; required with a pii scope, kept in the "
            "audit trail",
        ),
    ] = None,
) -> Principal:
    """Async on purpose: a cache hit costs no thread hop; only a miss queries the
    database, in the thread pool."""
    key = bearer.credentials if bearer is not None else api_key
    if not key:
        raise Unauthorized(
            "an API key is required: Authorization: Bearer <key> or X-API-Key: <key>"
        )
    key = key.strip()
    engine = request_engine(request)
    digest = hash_key(key)
    client = _cached(digest)
    if client is None:
        client = await run_in_threadpool(_lookup, engine, key, digest)
    if client is None:
        raise Unauthorized("the API key is unknown or revoked")
    return admit(client, x_purpose, engine)


def admit(client: ClientInfo, x_purpose: str | None, engine: Engine) -> Principal:
    """The request's principal once its key is known: takes a rate-limit token."""
    _take(client)
    purpose = x_purpose.strip()[:500] if x_purpose and x_purpose.strip() else None
    return Principal(client, purpose, engine)


def cached_client(authorization: str | None, x_api_key: str | None) -> ClientInfo | None:
    """The client of a request's key headers if the cache knows it, else None (no
    database access): the same reading of the headers as :func:`principal`'s."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if authorization and scheme and credentials and scheme.lower() == "bearer":
        key: str | None = credentials
    else:
        key = x_api_key or None
    if not key or not key.strip():
        return None
    return _cached(hash_key(key.strip()))


Caller = Annotated[Principal, Depends(principal)]
