"""The transactional outbox: events written in the transaction of the change.

Every change to an entity writes its new ``entity_versions`` row and its
``outbox_events`` row in the same transaction (DESIGN.md invariant 5), so a relay
that reads the outbox never sees a change without its event or an event without its
change. Ordering:

* ``position`` (the autoincrement primary key) is the global order, the change feed's
  cursor;
* ``sequence`` is the per-entity order: the entity's previous maximum + 1 (unique per
  entity in the database, so two writers cannot both issue the same number).

Payloads carry no attribute values (they are personal data): only the names of the
attributes that changed, and the canonical IDs involved::

    {"event_id", "type", "canonical_id", "entity_type", "version", "occurred_at", "data"}
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import Connection, Table

from mdm.store.models import OutboxEvent
from mdm.store.repositories.entities import bulk_insert, max_sequences

outbox = cast(Table, OutboxEvent.__table__)

EVENT_TYPES: Final[tuple[str, ...]] = (
    "entity.created",
    "entity.updated",
    "entity.merged",
    "entity.unmerged",
    "entity.retired",
)


@dataclass(frozen=True, slots=True)
class PendingEvent:
    entity_id: int
    canonical_id: str
    entity_type: str
    event_type: str
    version: int
    data: Mapping[str, Any] = field(default_factory=dict)


#: a hex digit -> the same digit with its top two bits set to 10 (the RFC 4122 variant)
_VARIANT: Final = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def new_event_ids(n: int) -> list[str]:
    """``n`` random UUIDs (version 4, RFC 4122 variant) as text, from one read of
    the OS's random source: what ``str(uuid.uuid4())`` gives, without a system call
    and a UUID object per event (a first run writes an event per new entity)."""
    h = os.urandom(16 * n).hex()
    return [
        f"{h[j : j + 8]}-{h[j + 8 : j + 12]}-4{h[j + 13 : j + 16]}-"
        f"{_VARIANT[h[j + 16]]}{h[j + 17 : j + 20]}-{h[j + 20 : j + 32]}"
        for j in range(0, 32 * n, 32)
    ]


def write_events(
    conn: Connection,
    events: Sequence[PendingEvent],
    now: datetime,
    *,
    new_entity_ids: Collection[int] = (),
) -> int:
    """Append ``events`` (in this order) to the outbox; returns how many.

    ``new_entity_ids`` are entities created in this transaction: they have no earlier
    events, so their previous maximum sequence is not looked up.
    """
    if not events:
        return 0
    new = set(new_entity_ids)
    lookup = sorted({ev.entity_id for ev in events} - new)
    sequences = max_sequences(conn, lookup) if lookup else {}
    rows = event_rows(events, now, sequences)
    bulk_insert(conn, outbox, rows)
    return len(rows)


def event_rows(
    events: Sequence[PendingEvent], now: datetime, sequences: dict[int, int] | None = None
) -> list[dict[str, Any]]:
    """The outbox rows of ``events``; ``sequences``: each entity's largest sequence
    so far (updated; an entity not in it has no events yet, e.g. a new entity)."""
    for ev in events:
        if ev.event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {ev.event_type!r}")
    sequences = {} if sequences is None else sequences
    stamp = now.isoformat()
    rows = []
    for ev, event_id in zip(events, new_event_ids(len(events)), strict=True):
        seq = sequences.get(ev.entity_id, 0) + 1
        sequences[ev.entity_id] = seq
        rows.append(
            {
                "event_id": event_id,
                "entity_id": ev.entity_id,
                "canonical_id": ev.canonical_id,
                "entity_type": ev.entity_type,
                "event_type": ev.event_type,
                "sequence": seq,
                "payload": {
                    "event_id": event_id,
                    "type": ev.event_type,
                    "canonical_id": ev.canonical_id,
                    "entity_type": ev.entity_type,
                    "version": ev.version,
                    "occurred_at": stamp,
                    "data": dict(ev.data),
                },
                "created_at": now,
            }
        )
    return rows
