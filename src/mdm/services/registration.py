"""Real-time registration of one source record (``POST /v1/{type}/records``).

:func:`register_record` does, in the caller's transaction, what ingest, the batch
match run and the identity service do for a file, for one record:

1. **Standardize** the attributes with ingest's code path
   (:func:`mdm.standardize.records.standardize_record`); the raw payload is stored
   as ingest stores a row (canonical JSON of the values as text) and hashed the same
   way. An error rejects the record: :class:`~mdm.exceptions.RecordRejected` (422)
   names each field and code, and carries the ``rejects`` row, which
   :func:`register_with_retry` keeps after rolling the registration back (invariant
   2: nothing is dropped).
2. **Upsert the source record** ``(source system, source key)``: a new key is
   version 1; the current payload again changes nothing (``changed=False``, no
   version, no event); another payload is a new version.
3. **Index and match**: the record's features and blocking keys replace its old
   ones (:func:`mdm.services.matching.add_record_features`), then
   :func:`mdm.services.matching.match_one` decides with the batch's model, term
   frequencies, deterministic rules and steward decisions.
4. **Apply**, with versions and outbox events in this transaction (invariant 5),
   through :func:`mdm.services.resolve.apply_plans` as every other identity change:

   * a record without an entity: ``linked`` joins the entity found (a new entity
     version, ``entity.updated``); ``created`` starts a new entity with a new
     canonical ID (``entity.created``); ``review`` *also* starts a new entity
     (invariant 1: every active record has exactly one entity) and queues
     ``match_candidates`` (pending) with the candidates so that a steward merges
     if they are the same;
   * a record that already has an entity **keeps it** (a record is never moved
     automatically: its entity may hold a steward's merge, and agencies hold its
     canonical ID). The entity's golden record is recomputed (a version and
     ``entity.updated`` only if it changed). If the new payload now matches
     other entities, the pairs go to review and the decision is ``review``.

   Review-band candidates in other entities are queued for every decision, as the
   batch run queues every review-band pair across clusters.

**Source systems.** A registration names its source system. An unknown one is
created with no trust settings (survivorship's defaults) unless the caller passes
``create_source_system=False`` (then 404 ``unknown_source_system``). Binding
clients to the source systems they may write is the API's authorization.

**Idempotency.** With an ``idempotency_key``, the answer is stored
(``idempotency_keys``) in the registration's transaction; the same key and the
same request (entity type, source system, source key, attributes) within
:data:`IDEMPOTENCY_TTL` returns it again with ``replayed=True`` and writes nothing;
the same key with another request is 409 ``idempotency_key_reused``. Keys are per
client. Older keys are ignored and replaced, and removed by
:func:`purge_idempotency_keys`. A rejected request stores no answer: a retry is
judged (and rejected) again.

**Concurrency.** Before it reads anything, a registration takes transaction-scoped
locks on its ``(source system, source key)``, its idempotency key and each of its
blocking keys (Postgres: ``pg_advisory_xact_lock``, in ascending order; SQLite: the
database's single write lock). Two registrations that could match each other share
a blocking key, so the second waits for the first to commit and then finds its
record: 20 clients registering the same new person at once make exactly one
entity. Before changing an existing entity it also locks that entity, so
registrations linking to it one after another each write the next version.
:func:`register_with_retry` runs one registration per transaction and retries
deadlocks, serialization failures, unique violations and a busy SQLite a few
times. (Batch runs and steward merges do not take these locks: run them while
registrations of that entity type are paused, or expect a retry.)

**Unchanged payloads** answer with the record's current entity, decision
``linked``. A batch ingest of a row identical to a registered payload is
``unchanged`` only when the file's columns are the standard field names (the
content hash covers the raw payload as the source sent it).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from mdm.domain.canonical_json import canonical_json
from mdm.exceptions import (
    BadRequest,
    IdempotencyKeyReused,
    MatchingUnavailable,
    RecordRejected,
    RegistrationContended,
    SourceKeyTypeMismatch,
    UnknownEntityType,
    UnknownSourceSystem,
)
from mdm.ingest.readers import to_text
from mdm.matching import blocking_keys, build_features
from mdm.services.identity import issue_canonical_ids
from mdm.services.matching.common import model_path
from mdm.services.matching.online import (
    CandidateExplanation,
    MatchDecision,
    add_record_features,
    loaded_model,
    match_one,
)
from mdm.services.resolve import NewEntity, Plan, apply_plans
from mdm.standardize.records import standardize_record
from mdm.store.db import Connection, DBAPIError, Session, sessionmaker, unit_of_work
from mdm.store.models import ENTITY_TYPES, utcnow
from mdm.store.repositories import candidates as candidate_repo
from mdm.store.repositories import entities as entity_repo
from mdm.store.repositories import registration as repo

log = logging.getLogger(__name__)

IDEMPOTENCY_TTL = timedelta(hours=24)
RETRY_ATTEMPTS = 6
MAX_KEY_LENGTH = 200
MAX_SOURCE_SYSTEM_LENGTH = 100

Decision = Literal["linked", "created", "review"]


@dataclass(frozen=True)
class RegistrationCandidate:
    """One candidate the matcher weighed: why a steward might join the two."""

    source_record_id: int
    canonical_id: str | None
    match_probability: float | None
    match_weight: float | None
    #: per comparison: its match weight (level weight + term-frequency adjustment)
    weights: dict[str, float]
    #: ``auto_link`` or ``review`` (what the pair alone would deserve)
    decision: str
    #: why an automatic link was refused (exclusive key, steward cannot-link), if so
    forbidden: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_record_id": self.source_record_id,
            "canonical_id": self.canonical_id,
            "match_probability": self.match_probability,
            "match_weight": self.match_weight,
            "weights": dict(self.weights),
            "decision": self.decision,
            "forbidden": self.forbidden,
        }


@dataclass(frozen=True)
class RegistrationResult:
    canonical_id: str
    entity_type: str
    decision: Decision
    source_record_id: int
    record_version: int
    changed: bool  # False when the payload equals the current version
    replayed: bool  # True when answered from an Idempotency-Key
    candidates: tuple[RegistrationCandidate, ...] = ()
    #: the source system and key, as registered
    source_system: str = ""
    source_key: str = ""
    reason: str | None = None
    issues: tuple[dict[str, Any], ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "canonical_id": self.canonical_id,
            "entity_type": self.entity_type,
            "decision": self.decision,
            "source_system": self.source_system,
            "source_key": self.source_key,
            "source_record_id": self.source_record_id,
            "record_version": self.record_version,
            "changed": self.changed,
            "replayed": self.replayed,
            "reason": self.reason,
            "candidates": [c.as_dict() for c in self.candidates],
            "issues": [dict(i) for i in self.issues],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, replayed: bool) -> RegistrationResult:
        return cls(
            canonical_id=str(data["canonical_id"]),
            entity_type=str(data["entity_type"]),
            decision=data["decision"],
            source_record_id=int(data["source_record_id"]),
            record_version=int(data["record_version"]),
            changed=bool(data["changed"]),
            replayed=replayed,
            candidates=tuple(
                RegistrationCandidate(
                    int(c["source_record_id"]),
                    c.get("canonical_id"),
                    c.get("match_probability"),
                    c.get("match_weight"),
                    {str(k): float(v) for k, v in (c.get("weights") or {}).items()},
                    str(c.get("decision")),
                    c.get("forbidden"),
                )
                for c in data.get("candidates", [])
            ),
            source_system=str(data.get("source_system", "")),
            source_key=str(data.get("source_key", "")),
            reason=data.get("reason"),
            issues=tuple(dict(i) for i in data.get("issues", [])),
        )


class _Retry(Exception):
    """The state moved under this transaction (e.g. the target entity was merged
    meanwhile): roll back and run the registration again."""


# ------------------------------------------------------------------ inputs


def _check_inputs(entity_type: str, source_system: str, source_key: str, attributes: Any) -> None:
    if entity_type not in ENTITY_TYPES:
        raise UnknownEntityType(
            f"unknown entity type {entity_type!r}; expected one of {list(ENTITY_TYPES)}"
        )
    if not source_system or not source_system.strip():
        raise BadRequest("source_system must not be blank", code="invalid_source_system")
    if len(source_system) > MAX_SOURCE_SYSTEM_LENGTH:
        raise BadRequest(
            f"source_system has {len(source_system)} characters "
            f"(at most {MAX_SOURCE_SYSTEM_LENGTH})",
            code="invalid_source_system",
        )
    if not isinstance(attributes, Mapping):
        raise BadRequest("attributes must be an object of field: text", code="invalid_attributes")
    bad = [str(k) for k, v in attributes.items() if not isinstance(k, str) or not _is_text(v)]
    if bad:
        raise BadRequest(
            f"attribute values must be text or null: {sorted(bad)}", code="invalid_attributes"
        )


def _is_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _key_issues(source_key: str) -> list[dict[str, Any]]:
    if not source_key or not source_key.strip():
        return [
            {
                "field": "source_key",
                "code": "missing_source_key",
                "severity": "error",
                "message": "the source key is blank: the record cannot be identified",
            }
        ]
    if len(source_key) > MAX_KEY_LENGTH:
        return [
            {
                "field": "source_key",
                "code": "source_key_too_long",
                "severity": "error",
                "message": f"the source key has {len(source_key)} characters "
                f"(at most {MAX_KEY_LENGTH})",
            }
        ]
    return []


def _pointer(issue: Mapping[str, Any]) -> str | None:
    name = issue.get("field")
    if not name:
        return None
    if name in ("source_key", "source_system", "entity_type"):
        return f"/{name}"
    return f"/attributes/{str(name).split('.')[0]}"


def request_hash(
    entity_type: str, source_system: str, source_key: str, attributes: Mapping[str, Any]
) -> str:
    """What an idempotency key is bound to: the request, canonically."""
    body = {
        "entity_type": entity_type,
        "source_system": source_system,
        "source_key": source_key,
        "attributes": {str(k): v for k, v in attributes.items()},
    }
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


# ------------------------------------------------------------------ the use case


def register_record(
    session: Session,
    entity_type: str,
    source_system: str,
    source_key: str,
    attributes: Mapping[str, str | None],
    *,
    idempotency_key: str | None = None,
    client_id: int | None = None,
    actor: str = "api",
    create_source_system: bool = True,
    rules_dir: Path | None = None,
) -> RegistrationResult:
    """Register or update one source record and place it in an entity; see the
    module docstring. Flushes in the caller's transaction, never commits.

    Raises ``UnknownEntityType`` (404), ``UnknownSourceSystem`` (404, only with
    ``create_source_system=False``), ``BadRequest`` (400: blank source system,
    non-text attribute values), ``RecordRejected`` (422, writes nothing: the caller
    keeps ``exc.reject`` with :func:`record_reject`), ``IdempotencyKeyReused`` and
    ``SourceKeyTypeMismatch`` (409), ``MatchingUnavailable`` (503) when the entity
    type has no trained model. Database errors of a race (deadlock, serialization) propagate:
    :func:`register_with_retry` retries them.
    """
    _check_inputs(entity_type, source_system, source_key, attributes)
    now = utcnow()
    req_hash = request_hash(entity_type, source_system, source_key, attributes)
    standardized, issues = _standardize_or_reject(
        entity_type, source_system, source_key, attributes, client_id, idempotency_key, now
    )
    if not model_path(entity_type, rules_dir).exists():
        raise MatchingUnavailable(
            f"no trained matching model for {entity_type!r} yet: registrations of this type "
            f"are refused until `mdm match train --entity {entity_type}` has run"
        )
    session.flush()
    conn = session.connection()
    repo.take_write_lock(conn)
    model, _tf = loaded_model(session, entity_type, rules_dir)
    feats = build_features(entity_type, "__new__", source_system, standardized)
    names = [f"mdm-record:{source_system}\x1f{source_key}"]
    names += [f"mdm-bk:{entity_type}\x1f{k}" for k in blocking_keys(feats, model.rules)]
    if idempotency_key is not None:
        names.append(f"mdm-idem:{client_id}\x1f{idempotency_key}")
    repo.lock(conn, names)

    if idempotency_key is not None:
        replayed = _replay(conn, client_id, idempotency_key, req_hash, now)
        if replayed is not None:
            return replayed

    system_id = repo.source_system_id(conn, source_system, create=create_source_system)
    if system_id is None:
        raise UnknownSourceSystem(f"no source system is named {source_system!r}")
    rid, version, changed = _store_version(
        conn,
        system_id,
        entity_type,
        (source_system, source_key),
        attributes,
        standardized,
        issues,
        now,
    )

    link = repo.active_link(conn, rid)
    common: dict[str, Any] = {
        "entity_type": entity_type,
        "source_record_id": rid,
        "record_version": version,
        "changed": changed,
        "replayed": False,
        "source_system": source_system,
        "source_key": source_key,
        "issues": tuple(issues),
    }
    if not changed and link is not None and link.status == "active":
        result = RegistrationResult(link.canonical_id, decision="linked", **common)
    else:
        add_record_features(
            session,
            entity_type,
            rid,
            standardized,
            source_system=source_system,
            record_version=version,
            rules_dir=rules_dir,
            rules=model.rules,
        )
        decision = match_one(
            session,
            entity_type,
            standardized,
            source_record_id=rid,
            source_system=source_system,
            rules_dir=rules_dir,
        )
        ctx = _Ctx(conn, entity_type, rid, (source_system, source_key), actor, now)
        result = _placed(ctx, link, decision, common)

    if idempotency_key is not None:
        repo.store_idempotency_key(
            conn, client_id, idempotency_key, req_hash, _json_safe(result.as_dict()), now
        )
    return result


def _standardize_or_reject(
    entity_type: str,
    source_system: str,
    source_key: str,
    attributes: Mapping[str, str | None],
    client_id: int | None,
    idempotency_key: str | None,
    now: datetime,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(standardized attributes, issues); ``RecordRejected`` for a record not to keep."""
    std = standardize_record(entity_type, attributes)
    issues = [i.as_dict() for i in std.issues]
    key_issues = _key_issues(source_key)
    if std.rejected or key_issues:
        raise _rejection(
            entity_type,
            source_system,
            source_key,
            attributes,
            [*key_issues, *issues],
            client_id,
            idempotency_key,
            now,
        )
    return std.standardized, issues


def _replay(
    conn: Connection, client_id: int | None, idempotency_key: str, req_hash: str, now: datetime
) -> RegistrationResult | None:
    """The stored response to an earlier request with this key, if still valid; an
    expired key is forgotten (it may be used again)."""
    stored = repo.find_idempotency_key(conn, client_id, idempotency_key)
    if stored is not None and stored.created_at >= now - IDEMPOTENCY_TTL:
        if stored.request_hash != req_hash:
            raise IdempotencyKeyReused(
                f"the Idempotency-Key {idempotency_key!r} was used for a different "
                "request; use a new key for a new request"
            )
        return RegistrationResult.from_dict(stored.response, replayed=True)
    if stored is not None:  # expired: the key may be used again
        repo.delete_idempotency_key(conn, stored.id)
    return None


def _store_version(
    conn: Connection,
    system_id: int,
    entity_type: str,
    ref: tuple[str, str],
    attributes: Mapping[str, str | None],
    standardized: dict[str, Any],
    issues: list[dict[str, Any]],
    now: datetime,
) -> tuple[int, int, bool]:
    """Insert the record, add a version when its content changed, or reactivate it.

    ``ref`` is (source system, source key). Returns (record id, version, whether
    anything changed).
    """
    source_system, source_key = ref
    raw = {str(k): to_text(v) for k, v in attributes.items()}
    raw_json = canonical_json(raw)
    chash = hashlib.sha256(raw_json.encode()).hexdigest()
    stored_record = repo.find_record(conn, system_id, source_key)
    if stored_record is not None and stored_record.entity_type != entity_type:
        raise SourceKeyTypeMismatch(
            f"the {source_system} record with this key is a {stored_record.entity_type} "
            f"record, not a {entity_type}"
        )
    if stored_record is None:
        rid = repo.insert_record(conn, system_id, source_key, entity_type, chash, now)
        version, changed = 1, True
        repo.insert_version(conn, rid, 1, raw, standardized, issues, chash, now)
    elif stored_record.content_hash == chash:
        rid, version = stored_record.id, stored_record.version
        changed = stored_record.status != "active"
        if changed:  # withdrawn, sent again: active again, same version
            repo.point_at_version(conn, rid, version, chash, now)
    else:
        rid, version, changed = stored_record.id, stored_record.version + 1, True
        repo.insert_version(conn, rid, version, raw, standardized, issues, chash, now)
        repo.point_at_version(conn, rid, version, chash, now)
    return rid, version, changed


def _placed(
    ctx: _Ctx,
    link: repo.LinkedEntity | None,
    decision: MatchDecision,
    common: dict[str, Any],
) -> RegistrationResult:
    """Place the record by the match decision (a new place, or its entity kept)."""
    if link is None:
        cid, outcome, reason, queued = _place(ctx, decision)
    else:
        cid, outcome, reason, queued = _keep(ctx, link, decision)
    result = RegistrationResult(
        cid,
        decision=outcome,
        candidates=tuple(_candidate(c) for c in decision.candidates),
        reason=reason,
        **common,
    )
    # never the source key: it may be a personal ID (national-portal keys are)
    log.debug(
        "registered a %s record as %s: %s (%d queued)",
        ctx.ref[0],
        cid,
        outcome,
        queued,
    )
    return result


@dataclass(frozen=True, slots=True)
class _Ctx:
    conn: Connection
    entity_type: str
    record_id: int
    ref: tuple[str, str]
    actor: str
    now: datetime


def _place(ctx: _Ctx, decision: MatchDecision) -> tuple[str, Decision, str | None, int]:
    """A record without an entity gets one: the matched entity, or a new one."""
    conn = ctx.conn
    if decision.outcome == "linked":
        assert decision.entity_id is not None and decision.canonical_id is not None
        target = decision.entity_id
        _lock_entity(conn, target)
        method = decision.method if decision.method in ("rule", "model", "steward") else "model"
        entity_repo.add_links(conn, [_link_row(ctx, target, method, decision.score)])
        apply_plans(
            conn,
            ctx.entity_type,
            {target: Plan(change="membership", force=True)},
            actor=ctx.actor,
            now=ctx.now,
        )
        queued = _queue(ctx, decision, target)
        return decision.canonical_id, "linked", decision.reason, queued

    cid = issue_canonical_ids(conn, ctx.entity_type, [ctx.ref])[0]
    eid = entity_repo.new_entity_id(conn)
    new = NewEntity(eid, cid, [ctx.record_id], [_link_row(ctx, eid, "new", None)])
    apply_plans(conn, ctx.entity_type, {}, [new], actor=ctx.actor, now=ctx.now)
    queued = _queue(ctx, decision, eid)
    if decision.outcome == "review":
        return cid, "review", decision.reason, queued
    return cid, "created", None, queued


def _keep(
    ctx: _Ctx, link: repo.LinkedEntity, decision: MatchDecision
) -> tuple[str, Decision, str | None, int]:
    """A record that has an entity keeps it; only a steward moves it. Matches
    elsewhere go to review."""
    _lock_entity(ctx.conn, link.entity_id)
    apply_plans(
        ctx.conn,
        ctx.entity_type,
        {link.entity_id: Plan(change="updated")},
        actor=ctx.actor,
        now=ctx.now,
    )
    queued = _queue(ctx, decision, link.entity_id)
    elsewhere = decision.outcome == "review" or (
        decision.outcome == "linked" and decision.entity_id != link.entity_id
    )
    if elsewhere and queued:
        reason = decision.reason or "matches another entity; the record keeps its entity"
        return link.canonical_id, "review", reason, queued
    return link.canonical_id, "linked", None, queued


def _lock_entity(conn: Connection, entity_id: int) -> None:
    repo.lock(conn, [f"mdm-entity:{entity_id}"])
    if repo.entity_status(conn, entity_id) != "active":
        raise _Retry(f"entity {entity_id} changed status during the registration")


def _link_row(ctx: _Ctx, entity_id: int, method: str, score: float | None) -> dict[str, Any]:
    return {
        "source_record_id": ctx.record_id,
        "entity_id": entity_id,
        "method": method,
        "score": None if score is None or not math.isfinite(score) else score,
        "created_by": ctx.actor,
        "created_at": ctx.now,
        "active": True,
        "deactivated_at": None,
    }


def _queue(ctx: _Ctx, decision: MatchDecision, own_entity: int) -> int:
    """Pending ``match_candidates`` between the record and every explained
    candidate outside its entity, except pairs a steward already decided; its
    other pending pairs are superseded (its current version decides)."""
    decided = repo.steward_decided(ctx.conn, ctx.record_id)
    rows: list[candidate_repo.CandidateRow] = []
    for c in decision.candidates:
        other = c.source_record_id
        if other == ctx.record_id or other in decided or c.entity_id == own_entity:
            continue
        if c.match_probability is None or c.match_weight is None:
            continue
        left, right = min(ctx.record_id, other), max(ctx.record_id, other)
        reason = candidate_repo.candidate_reason(c.method, c.forbidden)
        rows.append(
            candidate_repo.CandidateRow(
                left, right, c.match_probability, c.match_weight, dict(c.weights), reason
            )
        )
    candidate_repo.supersede_pending(ctx.conn, ctx.record_id, [(r.left, r.right) for r in rows])
    return candidate_repo.upsert_candidates(ctx.conn, ctx.entity_type, rows, ctx.now)


def _candidate(c: CandidateExplanation) -> RegistrationCandidate:
    """JSON-safe: a rule link's infinite weight becomes ``None``."""
    weight = c.match_weight if c.match_weight is None or math.isfinite(c.match_weight) else None
    return RegistrationCandidate(
        c.source_record_id,
        c.canonical_id,
        c.match_probability,
        weight,
        {k: v for k, v in c.weights.items() if math.isfinite(v)},
        c.decision,
        c.forbidden,
    )


def _json_safe(value: Any) -> Any:
    """Infinite weights (a rule link) are not JSON: store them as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


# ------------------------------------------------------------------ rejects


def _rejection(
    entity_type: str,
    source_system: str,
    source_key: str,
    attributes: Mapping[str, Any],
    issues: list[dict[str, Any]],
    client_id: int | None,
    idempotency_key: str | None,
    now: datetime,
) -> RecordRejected:
    errors = [i for i in issues if i.get("severity") == "error"]
    shown = [{**i, "pointer": _pointer(i)} for i in issues]
    fields = ", ".join(dict.fromkeys(f"{i.get('field')} ({i.get('code')})" for i in errors))
    reject = {
        "source_system": source_system,
        "entity_type": entity_type,
        "location": {
            "channel": "api",
            "source_system": source_system,
            "client_id": client_id,
            "idempotency_key": idempotency_key,
        },
        "source_key": source_key[:MAX_KEY_LENGTH] or None,
        "reasons": issues,
        "raw_content": canonical_json({str(k): v for k, v in attributes.items()}),
        "created_at": now,
    }
    return RecordRejected(
        {"message": f"the record was rejected: {fields}", "issues": shown}, reject=reject
    )


def record_reject(
    session: Session, exc: RecordRejected, *, create_source_system: bool = True
) -> None:
    """Keep a rejected registration in ``rejects`` (in the caller's transaction:
    call it in a new one after the registration's was rolled back)."""
    if exc.reject is None:
        return
    row = dict(exc.reject)
    name = row.pop("source_system")
    session.flush()
    conn = session.connection()
    row["source_system_id"] = (
        repo.source_system_id(conn, name, create=create_source_system) if name else None
    )
    row["ingest_run_id"] = None
    repo.insert_reject(conn, row)


# ------------------------------------------------------------------ the edge's helper


def is_retryable(exc: BaseException) -> bool:
    """A race worth running the registration again for: a deadlock, a serialization
    failure, a unique violation, a busy SQLite, or the state moved under it."""
    if isinstance(exc, _Retry):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in ("40001", "40P01", "23505", "55P03"):
        return True
    message = str(exc.orig).lower()
    return any(m in message for m in ("database is locked", "unique constraint failed"))


def register_with_retry(
    factory: sessionmaker[Session] | None,
    entity_type: str,
    source_system: str,
    source_key: str,
    attributes: Mapping[str, str | None],
    *,
    attempts: int = RETRY_ATTEMPTS,
    on_result: Callable[[Session, RegistrationResult], None] | None = None,
    **options: Any,
) -> RegistrationResult:
    """:func:`register_record` in its own transaction (``unit_of_work``), retried
    on races; a rejected record's ``rejects`` row is committed in a transaction of
    its own before ``RecordRejected`` is raised. ``on_result(session, result)`` runs
    in the registration's transaction before it commits (e.g. the audit row).
    ``options`` go to :func:`register_record`.

    The one retry loop of a registration: ``POST /v1/{type}/records`` runs it.
    Retried: what :func:`is_retryable` accepts, at most ``attempts`` times in all,
    with a jittered exponential backoff. Exhausted, whether on a database race or
    because the target entity kept changing status (a merge or split under it): 409
    ``registration_contended``, which the client may retry. Anything else
    propagates at once."""
    for attempt in range(1, attempts + 1):
        try:
            with unit_of_work(factory) as session:
                result = register_record(
                    session, entity_type, source_system, source_key, attributes, **options
                )
                if on_result is not None:
                    on_result(session, result)
            return result
        except RecordRejected as exc:
            with unit_of_work(factory) as session:
                record_reject(
                    session, exc, create_source_system=options.get("create_source_system", True)
                )
            raise
        except (_Retry, DBAPIError) as exc:
            if not is_retryable(exc):
                raise
            if attempt == attempts:
                raise RegistrationContended(
                    "concurrent registrations collided; retry the request"
                ) from exc
            # not the key, not str(exc): the driver's message quotes the statement's values
            log.info("registration of a %s record retried: %s", source_system, type(exc).__name__)
            time.sleep(min(0.5, 0.01 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def purge_idempotency_keys(session: Session, *, older_than: timedelta = IDEMPOTENCY_TTL) -> int:
    """Delete idempotency keys older than ``older_than`` (run daily; an expired key
    is ignored by :func:`register_record` anyway). Returns how many."""
    session.flush()
    return repo.purge_idempotency_keys(session.connection(), utcnow() - older_than)
