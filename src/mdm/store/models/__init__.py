"""All tables of the registry. Import from here; Alembic reads ``Base.metadata``."""

from mdm.store.models.access import ApiClient, ApiClientSourceSystem, AuditLog
from mdm.store.models.base import Base, utcnow
from mdm.store.models.console import STEWARD_ROLES, ReviewAction, Steward, StewardSession
from mdm.store.models.entity import Entity, EntityVersion, Link, Redirect
from mdm.store.models.events import Delivery, EventCursor, OutboxEvent, Subscription
from mdm.store.models.idempotency import IdempotencyKey
from mdm.store.models.match import BlockingKey, MatchFeatures, MatchRun, TermFrequency
from mdm.store.models.matching import MatchCandidate, StewardDecision
from mdm.store.models.reference import AdminUnit, AdminUnitCrosswalk, AdminUnitDataset
from mdm.store.models.source import (
    ENTITY_TYPES,
    IngestRun,
    Reject,
    SourceRecord,
    SourceRecordVersion,
    SourceSystem,
)
from mdm.store.models.steward import AttributeOverride, EntityConflict

__all__ = [
    "ENTITY_TYPES",
    "STEWARD_ROLES",
    "AdminUnit",
    "AdminUnitCrosswalk",
    "AdminUnitDataset",
    "ApiClient",
    "ApiClientSourceSystem",
    "AttributeOverride",
    "AuditLog",
    "Base",
    "BlockingKey",
    "Delivery",
    "Entity",
    "EntityConflict",
    "EntityVersion",
    "EventCursor",
    "IdempotencyKey",
    "IngestRun",
    "Link",
    "MatchCandidate",
    "MatchFeatures",
    "MatchRun",
    "OutboxEvent",
    "Redirect",
    "Reject",
    "ReviewAction",
    "SourceRecord",
    "SourceRecordVersion",
    "SourceSystem",
    "Steward",
    "StewardDecision",
    "StewardSession",
    "Subscription",
    "TermFrequency",
    "utcnow",
]
