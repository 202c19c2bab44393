"""the candidate index's primary key is ``(key_hash, source_record_id)``

``blocking_keys`` had the primary key ``(entity_type, key_hash, source_record_id)``.
A text column leading a B-tree costs every comparison of an insertion a collation
call and the other columns' offsets (they cannot be cached behind a variable-width
column); the feature pass of a first run inserts about seven keys per record, and
Postgres spent most of its time of that pass there. The entity type is already part
of each key's hash (``md5(entity_type || U+001F || key)``), so the index does not
need it: the candidate query reads ``key_hash`` and ``source_record_id`` from the
index alone and checks the type on the feature row it fetches anyway.

Measured on the 2.18 million keys of 300,000 citizen records, COPY into an empty
table: 14.4 / 15.9 s with the old key, 9.2 / 8.7 s with this one; the primary key's
index 110 → 84 MB.

Two rows that differed only by entity type would now collide; that needs two keys of
one record, under two types, with the same 64-bit hash, which does not happen (a
record has one type, and a retyped record's keys are removed by the next feature
pass). The column itself stays, for operators reading the table.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 16:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _rekey(*columns: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE blocking_keys DROP CONSTRAINT pk_blocking_keys, "
            f"ADD CONSTRAINT pk_blocking_keys PRIMARY KEY ({', '.join(columns)})"
        )
        return
    # SQLite cannot change a primary key in place: a new table, rows copied
    op.create_table(
        "blocking_keys_new",
        sa.Column("entity_type", sa.String(length=20), nullable=False),
        sa.Column("key_hash", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("source_record_id", _BIG_ID, autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint(*columns, name=op.f("pk_blocking_keys")),
    )
    op.execute(
        "INSERT OR IGNORE INTO blocking_keys_new (entity_type, key_hash, source_record_id) "
        "SELECT entity_type, key_hash, source_record_id FROM blocking_keys"
    )
    op.drop_index(op.f("ix_blocking_keys_source_record_id"), table_name="blocking_keys")
    op.drop_table("blocking_keys")
    op.rename_table("blocking_keys_new", "blocking_keys")
    op.create_index(
        op.f("ix_blocking_keys_source_record_id"), "blocking_keys", ["source_record_id"]
    )


def upgrade() -> None:
    _rekey("key_hash", "source_record_id")


def downgrade() -> None:
    _rekey("entity_type", "key_hash", "source_record_id")
