"""golden records (``entities.attributes`` and ``.provenance``) are stored as JSON text

The registry serves golden records whole: every lookup, batch lookup and export reads
both documents and sends them on as they are, and nothing in the application queries
inside them in SQL (search goes through the candidate index, the console and the
survivorship engine read whole documents). As ``jsonb`` each read serialized the
binary form back to text in Postgres, and each write of the identity step parsed the
text into it. Measured on 100,000 entities, 1,000 canonical IDs looked up by
``= ANY``: 11.4 ms of Postgres execution as ``jsonb``, 4.0–6.0 ms as ``json``; the
batch lookup of the API spent about half of its Postgres time there.

``json`` keeps the text as written and only checks that it is JSON. An operator who
queries inside a golden record still can, with a cast (``attributes::jsonb ->>
'full_name'``); an index on such an expression would need ``jsonb`` again (this
migration's downgrade). Entity versions, feature rows and event payloads made the
same move in 0010, source payloads in 0009.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("attributes", "provenance")


def _retype(to: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite stores JSON as text already
    op.execute(
        "ALTER TABLE entities "
        + ", ".join(f"ALTER COLUMN {c} TYPE {to} USING {c}::{to}" for c in _COLUMNS)
    )


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
