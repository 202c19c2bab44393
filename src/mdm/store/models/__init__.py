"""All tables of the registry. Import from here; Alembic reads ``Base.metadata``."""

from mdm.store.models.access import ApiClient, AuditLog
from mdm.store.models.base import Base, utcnow
from mdm.store.models.entity import Entity, EntityVersion, Link, Redirect
from mdm.store.models.events import OutboxEvent, Subscription
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
    "AdminUnit",
    "AdminUnitCrosswalk",
    "AdminUnitDataset",
    "ApiClient",
    "AttributeOverride",
    "AuditLog",
    "Base",
    "BlockingKey",
    "Entity",
    "EntityConflict",
    "EntityVersion",
    "IngestRun",
    "Link",
    "MatchCandidate",
    "MatchFeatures",
    "MatchRun",
    "OutboxEvent",
    "Redirect",
    "Reject",
    "SourceRecord",
    "SourceRecordVersion",
    "SourceSystem",
    "StewardDecision",
    "Subscription",
    "TermFrequency",
    "utcnow",
]
