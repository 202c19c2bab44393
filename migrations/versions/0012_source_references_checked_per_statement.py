"""the source store's references are checked once per statement, not once per row
(Postgres)

A bulk ingest writes two rows per source record (the record and its first version)
and each carried four foreign keys: the version's record and ingest run, the
record's source system and last ingest run. Postgres checks a foreign key with one
query per inserted row (``SELECT 1 … FOR KEY SHARE`` through SPI), and those four
queries were 41% of Postgres's time in an ingest (``perf`` on a 300,000-row run;
dropping them took Postgres from 26.2 to 13.5 CPU seconds).

The same guarantees now hold through statement-level triggers, which check all the
rows of a ``COPY``, ``INSERT`` or ``UPDATE`` at once with the transition table of
the statement:

* ``mdm_ref_<table>_<column>()`` on the referencing tables: every non-null value of
  the column among the statement's new rows is the ``id`` of a row of its parent.
  The parents are locked ``FOR KEY SHARE`` as a foreign key would lock them, so a
  concurrent ``DELETE`` of a parent waits and then fails. A violation raises
  SQLSTATE 23503 (``foreign_key_violation``), as the foreign key did, naming the
  table, the column and the missing key.
* ``mdm_guard_referenced(child, column)`` on the parents: a ``DELETE`` of rows that
  are still referenced and a ``TRUNCATE`` that leaves referencing rows behind fail
  with the same SQLSTATE; a parent's ``id`` cannot be changed.

Like any check of a constraint that is not deferrable, each runs at the end of its
statement. SQLite keeps the declared foreign keys (one writer, no bulk path).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 21:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (child table, column, parent table, foreign key it replaces)
REFERENCES = (
    (
        "source_record_versions",
        "source_record_id",
        "source_records",
        "fk_source_record_versions_source_record_id_source_records",
    ),
    (
        "source_record_versions",
        "ingest_run_id",
        "ingest_runs",
        "fk_source_record_versions_ingest_run_id_ingest_runs",
    ),
    (
        "source_records",
        "source_system_id",
        "source_systems",
        "fk_source_records_source_system_id_source_systems",
    ),
    (
        "source_records",
        "last_ingest_run_id",
        "ingest_runs",
        "fk_source_records_last_ingest_run_id_ingest_runs",
    ),
)

# One function per reference, its queries static so that PL/pgSQL keeps their plans
# (a generic function with dynamic SQL planned them on every statement: 150 µs a
# single-row INSERT, against 20 µs for a foreign key and about 40 µs this way).
_CHECK = """
CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    wanted bigint;
    locked bigint;
    missing text;
BEGIN
    SELECT count(DISTINCT {col}) INTO wanted FROM new_rows;
    IF wanted = 0 THEN
        RETURN NULL;
    END IF;
    SELECT count(*) INTO locked FROM (
        SELECT 1 FROM {parent} p WHERE p.id IN (SELECT {col} FROM new_rows)
        FOR KEY SHARE OF p
    ) AS parents;
    IF locked < wanted THEN
        SELECT n.{col}::text INTO missing FROM new_rows n
        WHERE n.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = n.{col})
        LIMIT 1;
        RAISE EXCEPTION 'insert or update on table "%" violates the reference of "{col}" to "{parent}"',
            TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key ({col})=(%s) is not present in table "{parent}".',
                                  coalesce(missing, '?')),
                  TABLE = TG_TABLE_NAME, COLUMN = '{col}';
    END IF;
    RETURN NULL;
END
$fn$;
"""

_GUARD = """
CREATE FUNCTION mdm_guard_referenced() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    child text := TG_ARGV[0];
    col text := TG_ARGV[1];
    hit text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'the id of a row of "%" cannot change (it is referenced by "%")',
            TG_TABLE_NAME, child USING ERRCODE = 'foreign_key_violation';
    ELSIF TG_OP = 'TRUNCATE' THEN
        EXECUTE format('SELECT %1$I::text FROM %2$I WHERE %1$I IS NOT NULL LIMIT 1', col, child)
            INTO hit;
    ELSE
        EXECUTE format(
            'SELECT o.id::text FROM old_rows o WHERE EXISTS '
            '(SELECT 1 FROM %I c WHERE c.%I = o.id) LIMIT 1',
            child, col
        ) INTO hit;
    END IF;
    IF hit IS NOT NULL THEN
        RAISE EXCEPTION 'update or delete on table "%" violates the reference of "%"."%" to it',
            TG_TABLE_NAME, child, col
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (id)=(%s) is still referenced from table "%s".', hit, child),
                  TABLE = TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END
$fn$;
"""


def _name(child: str, col: str) -> str:
    return f"{child}_{col}"[:50]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_GUARD)
    for child, col, parent, fk in REFERENCES:
        op.execute(f"ALTER TABLE {child} DROP CONSTRAINT {fk}")
        name = _name(child, col)
        op.execute(_CHECK.format(function=f"mdm_ref_{name}", col=col, parent=parent))
        for event in ("INSERT", "UPDATE"):
            op.execute(
                f"CREATE TRIGGER trg_ref_{event.lower()}_{name} AFTER {event} ON {child} "
                "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
                f"EXECUTE FUNCTION mdm_ref_{name}()"
            )
        op.execute(
            f"CREATE TRIGGER trg_refd_delete_{name} AFTER DELETE ON {parent} "
            "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
            f"EXECUTE FUNCTION mdm_guard_referenced('{child}', '{col}')"
        )
        op.execute(
            f"CREATE TRIGGER trg_refd_truncate_{name} AFTER TRUNCATE ON {parent} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION mdm_guard_referenced('{child}', '{col}')"
        )
        op.execute(
            f"CREATE TRIGGER trg_refd_update_{name} BEFORE UPDATE OF id ON {parent} "
            "FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) "
            f"EXECUTE FUNCTION mdm_guard_referenced('{child}', '{col}')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for child, col, parent, fk in REFERENCES:
        name = _name(child, col)
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS trg_ref_{event}_{name} ON {child}")
        for kind in ("delete", "truncate", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS trg_refd_{kind}_{name} ON {parent}")
        op.execute(f"DROP FUNCTION IF EXISTS mdm_ref_{name}()")
        op.create_foreign_key(fk, child, parent, [col], ["id"])
    op.execute("DROP FUNCTION IF EXISTS mdm_guard_referenced()")
