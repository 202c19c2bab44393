"""API clients are bound to the source systems they may write

Until now a key with a ``{type}:write`` scope could register records under any
source system, and so add a version to another agency's record and change the
golden record with it. From this revision a client writes only the source systems
named in ``api_client_source_systems`` (``mdm clients create --source-systems``,
``mdm clients bind``); a write to any other is 403 ``forbidden``, and a client
bound to none writes nothing.

A join table rather than a list column on ``api_clients``: each binding references a
row of ``source_systems`` (the same names that source records and trust settings
hang off), so a binding cannot name a system that the registry does not know under
that exact name, and "which clients may write this system" is one indexed query.

**Existing clients** are bound to the source systems they have written so far, and
to nothing else. "Written so far" is read from the audit trail: every committed
registration through the API has written, in its own transaction, one
``audit_log`` row with ``action = 'record.register'``, the client's ``client_id``,
and the source system's name in ``details ->> 'source_system'`` (since the API and
its ``api_clients`` table were introduced; the trail refuses UPDATE and DELETE).
Each distinct (client, source system name) among those rows becomes one binding,
joined to ``source_systems`` by exact name. So:

* a registration that was answered, an unchanged payload and an ``Idempotency-Key``
  replay each count (each is a committed ``record.register`` row);
* a rejected record (422), a refused request (401/403/404/409) and a registration
  that never committed leave no such row and do not count;
* rows without a ``client_id`` (the CLI, ingest, stewards) bind nobody, and reads
  (``xref.read`` rows also name a source system) do not count;
* a client that never registered anything (readers, a writer that never wrote) gets
  no binding: it can write nothing until an operator runs ``mdm clients bind``;
* revoked clients are bound like the others (they cannot authenticate anyway).

The idempotency keys are not read: they are optional, expire after 24 hours and are
written in the same transaction as the audit row, so they name no system that the
trail does not. Scopes are not consulted: a binding without a write scope grants
nothing.

The data step is one ``INSERT … SELECT DISTINCT`` over ``audit_log`` (a sequential
scan: no index covers ``action``), in the migration's transaction.

Downgrade drops the table: the bindings are lost, and the code of 0014 lets every
write key write every source system again.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 17:19:29.122653
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# ``details`` is JSONB on Postgres and JSON text on SQLite
_SOURCE_SYSTEM = {
    "postgresql": "a.details ->> 'source_system'",
    "sqlite": "json_extract(a.details, '$.source_system')",
}

_BIND_WRITTEN = """
INSERT INTO api_client_source_systems (client_id, source_system_id)
SELECT DISTINCT w.client_id, s.id
FROM (
    SELECT a.client_id AS client_id, {source_system} AS name
    FROM audit_log a
    WHERE a.action = 'record.register' AND a.client_id IS NOT NULL
) AS w
JOIN source_systems s ON s.name = w.name
"""


def upgrade() -> None:
    op.create_table(
        "api_client_source_systems",
        sa.Column("client_id", _BIG_ID, autoincrement=False, nullable=False),
        sa.Column("source_system_id", _BIG_ID, autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["api_clients.id"],
            name=op.f("fk_api_client_source_systems_client_id_api_clients"),
        ),
        sa.ForeignKeyConstraint(
            ["source_system_id"],
            ["source_systems.id"],
            name=op.f("fk_api_client_source_systems_source_system_id_source_systems"),
        ),
        sa.PrimaryKeyConstraint(
            "client_id", "source_system_id", name=op.f("pk_api_client_source_systems")
        ),
    )
    with op.batch_alter_table("api_client_source_systems", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_client_source_systems_source_system_id"),
            ["source_system_id"],
            unique=False,
        )
    dialect = op.get_bind().dialect.name
    op.execute(_BIND_WRITTEN.format(source_system=_SOURCE_SYSTEM[dialect]))


def downgrade() -> None:
    with op.batch_alter_table("api_client_source_systems", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_client_source_systems_source_system_id"))
    op.drop_table("api_client_source_systems")
