"""Source records remember their last ingest run and their current content hash.

The hash is denormalized from the current version so that ingest decides new /
changed / unchanged with one index lookup on source_records, never a join over the
versions table (whose size is dominated by JSON payloads).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:35:18.909168
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "last_ingest_run_id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("current_hash", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_source_records_last_ingest_run_id_ingest_runs"),
            "ingest_runs",
            ["last_ingest_run_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_source_records_last_ingest_run_id_ingest_runs"), type_="foreignkey"
        )
        batch_op.drop_column("current_hash")
        batch_op.drop_column("last_ingest_run_id")
