"""the candidate index (blocking_keys, match_features) drops its foreign keys and
signs each feature row; feature rows, entity versions and event payloads are stored
as JSON text

``blocking_keys`` and ``match_features`` are derived data: the batch run rebuilds
them from the source records (only what changed), the API keeps them current one
record at a time. A full run writes about seven key rows per record, and the
foreign-key check of each row (a ``FOR KEY SHARE`` lock on its source record, taken
seven times per record) cost Postgres about 10 µs a row: 40% of writing the index
(measured at 100,000 records: 28.8 s → 19.9 s for the feature pass). Source
records are never deleted (withdrawal is a status), so the constraint guarded only
against a bug in the one writer of these tables; the run's own tests check that
every key belongs to an active record of its type.

``match_features.signature`` names the code and rules that computed a row (see
``mdm.services.matching.feature_signature``): a pass reuses a row whose record
version and signature are current instead of computing it again. Existing rows get
none, so the first pass after this migration recomputes them once.

Feature rows, entity versions (golden record and provenance, about 1.8 KB a
version) and event payloads are immutable documents read whole, never queried
inside: ``json`` keeps the text and spares the ``jsonb`` conversion on every write,
as 0009 did for source payloads (measured on 85,446 first versions: COPY 3.1 s →
1.9 s; their events 1.2 s → 1.0 s). ``entities`` (the current golden records) stays
``jsonb``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 08:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FKS = (
    ("blocking_keys", "fk_blocking_keys_source_record_id_source_records"),
    ("match_features", "fk_match_features_source_record_id_source_records"),
)


_DOCUMENTS = {
    "match_features": ("features",),
    "entity_versions": ("attributes", "provenance"),
    "outbox_events": ("payload",),
}


def _retype(to: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite stores JSON as text already
    for table, columns in _DOCUMENTS.items():
        op.execute(
            f"ALTER TABLE {table} "
            + ", ".join(f"ALTER COLUMN {c} TYPE {to} USING {c}::{to}" for c in columns)
        )


def upgrade() -> None:
    for table, name in _FKS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(name, type_="foreignkey")
    with op.batch_alter_table("match_features", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signature", sa.String(length=32), nullable=True))
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
    with op.batch_alter_table("match_features", schema=None) as batch_op:
        batch_op.drop_column("signature")
    for table, name in _FKS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(name, "source_records", ["source_record_id"], ["id"])
