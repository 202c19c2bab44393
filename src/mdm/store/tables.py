"""One ``Table`` name per table, for the repositories' Core statements.

Repositories import these instead of casting ``Model.__table__`` themselves, so a
table is spelled the same way in every query of the store.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from mdm.store.models import (
    AdminUnit,
    AdminUnitCrosswalk,
    AdminUnitDataset,
    ApiClient,
    ApiClientSourceSystem,
    AttributeOverride,
    AuditLog,
    BlockingKey,
    Delivery,
    Entity,
    EntityConflict,
    EntityVersion,
    EventCursor,
    IdempotencyKey,
    IngestRun,
    Link,
    MatchCandidate,
    MatchFeatures,
    MatchRun,
    OutboxEvent,
    Redirect,
    Reject,
    ReviewAction,
    SourceRecord,
    SourceRecordVersion,
    SourceSystem,
    Steward,
    StewardDecision,
    StewardSession,
    Subscription,
    TermFrequency,
)
from mdm.store.models.console import LoginFailure

# source data
systems = cast(Table, SourceSystem.__table__)
ingest_runs = cast(Table, IngestRun.__table__)
records = cast(Table, SourceRecord.__table__)
record_versions = cast(Table, SourceRecordVersion.__table__)
rejects = cast(Table, Reject.__table__)
idempotency_keys = cast(Table, IdempotencyKey.__table__)

# golden records
entities = cast(Table, Entity.__table__)
entity_versions = cast(Table, EntityVersion.__table__)
links = cast(Table, Link.__table__)
redirects = cast(Table, Redirect.__table__)
overrides = cast(Table, AttributeOverride.__table__)
conflicts = cast(Table, EntityConflict.__table__)

# matching
blocking_keys = cast(Table, BlockingKey.__table__)
match_features = cast(Table, MatchFeatures.__table__)
term_frequencies = cast(Table, TermFrequency.__table__)
match_runs = cast(Table, MatchRun.__table__)
candidates = cast(Table, MatchCandidate.__table__)
decisions = cast(Table, StewardDecision.__table__)

# events
outbox = cast(Table, OutboxEvent.__table__)
subscriptions = cast(Table, Subscription.__table__)
deliveries = cast(Table, Delivery.__table__)
cursors = cast(Table, EventCursor.__table__)

# access and the console
clients = cast(Table, ApiClient.__table__)
client_systems = cast(Table, ApiClientSourceSystem.__table__)
audit_log = cast(Table, AuditLog.__table__)
stewards = cast(Table, Steward.__table__)
steward_sessions = cast(Table, StewardSession.__table__)
login_failures = cast(Table, LoginFailure.__table__)
review_actions = cast(Table, ReviewAction.__table__)

# reference data
unit_datasets = cast(Table, AdminUnitDataset.__table__)
admin_units = cast(Table, AdminUnit.__table__)
unit_crosswalk = cast(Table, AdminUnitCrosswalk.__table__)
