"""audit_log refuses TRUNCATE too (Postgres)

The append-only triggers of the initial migration fire for each row of an UPDATE or
DELETE; ``TRUNCATE`` fires no row trigger, so on Postgres it emptied the audit trail
without a trace. A statement-level ``BEFORE TRUNCATE`` trigger now refuses it: erasing
or rewriting the trail needs DDL (dropping or disabling the triggers), which the
application's role should not hold. SQLite has no TRUNCATE (its ``DELETE`` without
``WHERE`` fires the row trigger), so nothing changes there.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 06:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # mdm_audit_append_only() (0001) only raises, so it serves a statement trigger too
    op.execute(
        """
        CREATE TRIGGER trg_audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION mdm_audit_append_only()
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS trg_audit_log_no_truncate ON audit_log")
