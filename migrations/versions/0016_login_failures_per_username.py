"""failed console logins are counted per submitted username, known or not

The lockout counted failures on the steward's own row (``stewards.failed_logins``,
``stewards.locked_until``), so only existing usernames ever locked: after five
failures a known username answered 429 (at once, without a hash verification) while
an unknown one kept answering 401, which told anyone which usernames exist. Failures
are now counted in ``login_failures``, one row per normalized submitted username
(its SHA-256), for every username alike; the two columns go.

Counters in flight are not carried over: at worst a steward who had failed a few
times starts from zero, and a locked account is unlocked by this migration.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 18:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("username_key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("username_key", name=op.f("pk_login_failures")),
    )
    op.create_index(op.f("ix_login_failures_last_failed_at"), "login_failures", ["last_failed_at"])
    # Plain ALTER TABLE … DROP COLUMN on both databases (SQLite has it since 3.35):
    # a batch copy of ``stewards`` would have to drop a table that sessions reference.
    op.drop_column("stewards", "failed_logins")
    op.drop_column("stewards", "locked_until")


def downgrade() -> None:
    op.add_column(
        "stewards",
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "stewards",
        sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"),
    )
    op.drop_index(op.f("ix_login_failures_last_failed_at"), table_name="login_failures")
    op.drop_table("login_failures")
