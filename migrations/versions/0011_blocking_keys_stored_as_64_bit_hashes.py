"""the candidate index stores each blocking key as a 64-bit hash

``blocking_keys`` holds about seven rows per record; a key is text such as
``name_dob:nguyen van an|1990-05-01`` (tens of bytes). Only equality is ever asked
of it (the candidate query: which records share one of these keys), so a 64-bit
hash serves as well: ``scripts/bench_blocking_keys.py`` measured, at a million
records (6.3 million keys), COPY 47.4 → 25.2 s and table + indexes 1078 → 590 MB.

The hash is ``mdm.store.models.match.blocking_key_hash``: the first 8 bytes of
``md5(entity_type || U+001F || key)``, a signed big-endian integer. Postgres computes
the same value, which converts the stored keys here without reading them out;
SQLite has no md5, so its rows are converted in Python with the same function
(copied below: a migration does not import the application's code).

Downgrade cannot recover a key from its hash: it empties the candidate index and
the feature rows (both derived data), so the next ``mdm match run`` computes them
again.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 17:30:00.000000
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _hash(entity_type: str, key: str) -> int:
    digest = hashlib.md5(f"{entity_type}\x1f{key}".encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _new_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("entity_type", sa.String(length=20), nullable=False),
        sa.Column("key_hash", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("source_record_id", _BIG_ID, autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint(
            "entity_type", "key_hash", "source_record_id", name=op.f("pk_blocking_keys")
        ),
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE blocking_keys RENAME TO blocking_keys_text")
        op.execute(
            "ALTER TABLE blocking_keys_text RENAME CONSTRAINT pk_blocking_keys TO pk_bk_text"
        )
        op.execute("DROP INDEX ix_blocking_keys_source_record_id")
        _new_table("blocking_keys")
        op.execute(
            "INSERT INTO blocking_keys (entity_type, key_hash, source_record_id) "
            "SELECT DISTINCT entity_type, "
            "('x' || substr(md5(entity_type || chr(31) || blocking_key), 1, 16))::bit(64)::bigint, "
            "source_record_id FROM blocking_keys_text"
        )
        op.execute("DROP TABLE blocking_keys_text")
    else:
        _new_table("blocking_keys_new")
        old = sa.table(
            "blocking_keys",
            sa.column("entity_type", sa.String),
            sa.column("blocking_key", sa.String),
            sa.column("source_record_id", sa.Integer),
        )
        new = sa.table(
            "blocking_keys_new",
            sa.column("entity_type", sa.String),
            sa.column("key_hash", sa.BigInteger),
            sa.column("source_record_id", sa.Integer),
        )
        seen: set[tuple[str, int, int]] = set()
        batch: list[dict[str, object]] = []
        for et, key, rid in bind.execute(sa.select(old)).yield_per(10_000):
            row = (et, _hash(et, key), rid)
            if row in seen:
                continue
            seen.add(row)
            batch.append({"entity_type": et, "key_hash": row[1], "source_record_id": rid})
            if len(batch) >= 10_000:
                bind.execute(new.insert(), batch)
                batch = []
        if batch:
            bind.execute(new.insert(), batch)
        op.drop_index(op.f("ix_blocking_keys_source_record_id"), table_name="blocking_keys")
        op.drop_table("blocking_keys")
        op.rename_table("blocking_keys_new", "blocking_keys")
    op.create_index(
        op.f("ix_blocking_keys_source_record_id"), "blocking_keys", ["source_record_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_blocking_keys_source_record_id"), table_name="blocking_keys")
    op.drop_table("blocking_keys")
    op.execute("DELETE FROM match_features")
    op.create_table(
        "blocking_keys",
        sa.Column("entity_type", sa.String(length=20), nullable=False),
        sa.Column("blocking_key", sa.String(length=500), nullable=False),
        sa.Column("source_record_id", _BIG_ID, nullable=False),
        sa.PrimaryKeyConstraint(
            "entity_type", "blocking_key", "source_record_id", name=op.f("pk_blocking_keys")
        ),
    )
    op.create_index(
        op.f("ix_blocking_keys_source_record_id"), "blocking_keys", ["source_record_id"]
    )
