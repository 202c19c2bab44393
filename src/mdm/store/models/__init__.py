"""All tables of the registry. Import from here; Alembic reads ``Base.metadata``."""

from mdm.store.models.access import ApiClient, AuditLog
from mdm.store.models.base import Base, utcnow
from mdm.store.models.entity import Entity, EntityVersion, Link, Redirect
from mdm.store.models.events import OutboxEvent, Subscription
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

__all__ = [
    "ENTITY_TYPES",
    "AdminUnit",
    "AdminUnitCrosswalk",
    "AdminUnitDataset",
    "ApiClient",
    "AuditLog",
    "Base",
    "Entity",
    "EntityVersion",
    "IngestRun",
    "Link",
    "MatchCandidate",
    "OutboxEvent",
    "Redirect",
    "Reject",
    "SourceRecord",
    "SourceRecordVersion",
    "SourceSystem",
    "StewardDecision",
    "Subscription",
    "utcnow",
]
