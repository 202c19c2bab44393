"""Initial schema: the registry's tables, the redirect guard and the append-only audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 13:28:23.011050
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Redirects stay flat (every chain has length one), which makes a cycle impossible:
# the target of a redirect may not itself be redirected, and a redirected entity may
# not become a target. A merge into an entity that already absorbed others re-points
# the older redirects first (see mdm.services). Same rule on both databases.
_PG_TRIGGERS = [
    """
    CREATE FUNCTION mdm_redirect_guard() RETURNS trigger AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM redirects WHERE from_entity_id = NEW.to_entity_id) THEN
            RAISE EXCEPTION 'redirect_cycle: entity % is itself redirected', NEW.to_entity_id
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF EXISTS (SELECT 1 FROM redirects WHERE to_entity_id = NEW.from_entity_id) THEN
            RAISE EXCEPTION 'redirect_cycle: entity % is the target of another redirect',
                NEW.from_entity_id USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END;
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER trg_redirects_guard BEFORE INSERT OR UPDATE ON redirects
    FOR EACH ROW EXECUTE FUNCTION mdm_redirect_guard()
    """,
    """
    CREATE FUNCTION mdm_audit_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER trg_audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION mdm_audit_append_only()
    """,
]

_SQLITE_TRIGGERS = [
    f"""
    CREATE TRIGGER trg_redirects_guard_{op_name} BEFORE {op_name} ON redirects
    FOR EACH ROW
    WHEN EXISTS (SELECT 1 FROM redirects WHERE from_entity_id = NEW.to_entity_id)
      OR EXISTS (SELECT 1 FROM redirects WHERE to_entity_id = NEW.from_entity_id)
    BEGIN
        SELECT RAISE(ABORT, 'redirect_cycle: redirects must stay flat');
    END
    """
    for op_name in ("INSERT", "UPDATE")
] + [
    f"""
    CREATE TRIGGER trg_audit_log_append_only_{op_name} BEFORE {op_name} ON audit_log
    BEGIN
        SELECT RAISE(ABORT, 'audit_log is append-only');
    END
    """
    for op_name in ("UPDATE", "DELETE")
]


def _create_triggers() -> None:
    statements = _PG_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS
    for statement in statements:
        op.execute(statement)


def _drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS trg_audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS mdm_audit_append_only()")
        op.execute("DROP TRIGGER IF EXISTS trg_redirects_guard ON redirects")
        op.execute("DROP FUNCTION IF EXISTS mdm_redirect_guard()")
    else:
        for name in (
            "trg_redirects_guard_INSERT",
            "trg_redirects_guard_UPDATE",
            "trg_audit_log_append_only_UPDATE",
            "trg_audit_log_append_only_DELETE",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def upgrade() -> None:
    op.create_table(
        "admin_unit_datasets",
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_admin_unit_datasets")),
    )
    op.create_table(
        "api_clients",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=200), nullable=False),
        sa.Column(
            "scopes", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("rate_limit_per_minute", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_clients")),
        sa.UniqueConstraint("key_prefix", name=op.f("uq_api_clients_key_prefix")),
        sa.UniqueConstraint("name", name=op.f("uq_api_clients_name")),
    )
    op.create_table(
        "entities",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("canonical_id", sa.String(length=32), nullable=False),
        sa.Column("entity_type", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "attributes", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "provenance", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "entity_type IN ('citizen', 'organization', 'dossier')",
            name=op.f("ck_entities_entity_type"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'merged', 'retired')", name=op.f("ck_entities_status")
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_entities_version_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entities")),
        sa.UniqueConstraint("canonical_id", name=op.f("uq_entities_canonical_id")),
    )
    with op.batch_alter_table("entities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_entities_entity_type_status"), ["entity_type", "status"], unique=False
        )

    op.create_table(
        "source_systems",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "trust", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_systems")),
        sa.UniqueConstraint("name", name=op.f("uq_source_systems_name")),
    )
    op.create_table(
        "admin_unit_crosswalk",
        sa.Column("dataset_version", sa.String(length=100), nullable=False),
        sa.Column("old_commune_code", sa.String(length=10), nullable=False),
        sa.Column("new_commune_code", sa.String(length=10), nullable=False),
        sa.Column("new_province_code", sa.String(length=10), nullable=False),
        sa.Column("split", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_version"],
            ["admin_unit_datasets.version"],
            name=op.f("fk_admin_unit_crosswalk_dataset_version_admin_unit_datasets"),
        ),
        sa.PrimaryKeyConstraint(
            "dataset_version",
            "old_commune_code",
            "new_commune_code",
            name=op.f("pk_admin_unit_crosswalk"),
        ),
    )
    op.create_table(
        "admin_units",
        sa.Column("dataset_version", sa.String(length=100), nullable=False),
        sa.Column("scheme", sa.String(length=10), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("code", sa.String(length=10), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=True),
        sa.Column("parent_code", sa.String(length=10), nullable=True),
        sa.CheckConstraint(
            "level IN ('province', 'district', 'commune')", name=op.f("ck_admin_units_level")
        ),
        sa.CheckConstraint("scheme IN ('pre2025', '2025')", name=op.f("ck_admin_units_scheme")),
        sa.ForeignKeyConstraint(
            ["dataset_version"],
            ["admin_unit_datasets.version"],
            name=op.f("fk_admin_units_dataset_version_admin_unit_datasets"),
        ),
        sa.PrimaryKeyConstraint(
            "dataset_version", "scheme", "level", "code", name=op.f("pk_admin_units")
        ),
    )
    with op.batch_alter_table("admin_units", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_admin_units_dataset_version_scheme_parent_code"),
            ["dataset_version", "scheme", "parent_code"],
            unique=False,
        )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column(
            "entity_ids", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("purpose", sa.Text(), nullable=True),
        sa.Column(
            "details", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("client_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["api_clients.id"], name=op.f("fk_audit_log_client_id_api_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_actor_at"), ["actor", "at"], unique=False)

    op.create_table(
        "entity_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "entity_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "attributes", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "provenance", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("change", sa.String(length=40), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"], ["entities.id"], name=op.f("fk_entity_versions_entity_id_entities")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entity_versions")),
        sa.UniqueConstraint(
            "entity_id", "version", name=op.f("uq_entity_versions_entity_id_version")
        ),
    )
    with op.batch_alter_table("entity_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_entity_versions_entity_id_valid_from"),
            ["entity_id", "valid_from"],
            unique=False,
        )

    op.create_table(
        "ingest_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "source_system_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("entity_type", sa.String(length=20), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("mapping_sha256", sa.String(length=64), nullable=False),
        sa.Column("full_snapshot", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("rows_committed", sa.Integer(), nullable=False),
        sa.Column(
            "counts", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')", name=op.f("ck_ingest_runs_status")
        ),
        sa.ForeignKeyConstraint(
            ["source_system_id"],
            ["source_systems.id"],
            name=op.f("fk_ingest_runs_source_system_id_source_systems"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_runs")),
    )
    with op.batch_alter_table("ingest_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ingest_runs_source_system_id_file_sha256"),
            ["source_system_id", "file_sha256"],
            unique=False,
        )

    op.create_table(
        "outbox_events",
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column(
            "entity_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("canonical_id", sa.String(length=32), nullable=False),
        sa.Column("entity_type", sa.String(length=20), nullable=False),
        sa.Column("event_type", sa.String(length=30), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "event_type IN ('entity.created', 'entity.updated', 'entity.merged', 'entity.unmerged', 'entity.retired')",
            name=op.f("ck_outbox_events_event_type"),
        ),
        sa.ForeignKeyConstraint(
            ["entity_id"], ["entities.id"], name=op.f("fk_outbox_events_entity_id_entities")
        ),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_outbox_events")),
        sa.UniqueConstraint(
            "entity_id", "sequence", name=op.f("uq_outbox_events_entity_id_sequence")
        ),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_events_event_id")),
    )
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_events_entity_type_position"),
            ["entity_type", "position"],
            unique=False,
        )

    op.create_table(
        "redirects",
        sa.Column(
            "from_entity_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "to_entity_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("from_entity_id <> to_entity_id", name=op.f("ck_redirects_not_self")),
        sa.ForeignKeyConstraint(
            ["from_entity_id"], ["entities.id"], name=op.f("fk_redirects_from_entity_id_entities")
        ),
        sa.ForeignKeyConstraint(
            ["to_entity_id"], ["entities.id"], name=op.f("fk_redirects_to_entity_id_entities")
        ),
        sa.PrimaryKeyConstraint("from_entity_id", name=op.f("pk_redirects")),
    )
    with op.batch_alter_table("redirects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_redirects_to_entity_id"), ["to_entity_id"], unique=False
        )

    op.create_table(
        "source_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "source_system_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("entity_type", sa.String(length=20), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "entity_type IN ('citizen', 'organization', 'dossier')",
            name=op.f("ck_source_records_entity_type"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'withdrawn')", name=op.f("ck_source_records_status")
        ),
        sa.CheckConstraint(
            "current_version >= 1", name=op.f("ck_source_records_current_version_positive")
        ),
        sa.ForeignKeyConstraint(
            ["source_system_id"],
            ["source_systems.id"],
            name=op.f("fk_source_records_source_system_id_source_systems"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_records")),
        sa.UniqueConstraint(
            "source_system_id",
            "source_key",
            name=op.f("uq_source_records_source_system_id_source_key"),
        ),
    )
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_source_records_entity_type_status"),
            ["entity_type", "status"],
            unique=False,
        )

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "client_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column(
            "filters", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('active', 'paused')", name=op.f("ck_subscriptions_status")),
        sa.ForeignKeyConstraint(
            ["client_id"], ["api_clients.id"], name=op.f("fk_subscriptions_client_id_api_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_table(
        "links",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "source_record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "entity_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "method IN ('rule', 'model', 'steward', 'new')", name=op.f("ck_links_method")
        ),
        sa.ForeignKeyConstraint(
            ["entity_id"], ["entities.id"], name=op.f("fk_links_entity_id_entities")
        ),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["source_records.id"],
            name=op.f("fk_links_source_record_id_source_records"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_links")),
    )
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_links_entity_id_active"), ["entity_id", "active"], unique=False
        )
        batch_op.create_index(
            "uq_links_active_source_record",
            ["source_record_id"],
            unique=True,
            postgresql_where=sa.text("active"),
            sqlite_where=sa.text("active = 1"),
        )

    op.create_table(
        "match_candidates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("entity_type", sa.String(length=20), nullable=False),
        sa.Column(
            "left_record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "right_record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("match_weight", sa.Float(), nullable=False),
        sa.Column(
            "weights", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reserved_by", sa.String(length=200), nullable=True),
        sa.Column("reserved_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'rejected', 'skipped', 'superseded')",
            name=op.f("ck_match_candidates_status"),
        ),
        sa.CheckConstraint(
            "left_record_id < right_record_id", name=op.f("ck_match_candidates_ordered_pair")
        ),
        sa.ForeignKeyConstraint(
            ["left_record_id"],
            ["source_records.id"],
            name=op.f("fk_match_candidates_left_record_id_source_records"),
        ),
        sa.ForeignKeyConstraint(
            ["right_record_id"],
            ["source_records.id"],
            name=op.f("fk_match_candidates_right_record_id_source_records"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_candidates")),
        sa.UniqueConstraint(
            "left_record_id",
            "right_record_id",
            name=op.f("uq_match_candidates_left_record_id_right_record_id"),
        ),
    )
    with op.batch_alter_table("match_candidates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_match_candidates_entity_type_status_score"),
            ["entity_type", "status", "score"],
            unique=False,
        )

    op.create_table(
        "rejects",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "source_system_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "ingest_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("entity_type", sa.String(length=20), nullable=True),
        sa.Column(
            "location", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("source_key", sa.String(length=200), nullable=True),
        sa.Column(
            "reasons", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("raw_content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ingest_run_id"], ["ingest_runs.id"], name=op.f("fk_rejects_ingest_run_id_ingest_runs")
        ),
        sa.ForeignKeyConstraint(
            ["source_system_id"],
            ["source_systems.id"],
            name=op.f("fk_rejects_source_system_id_source_systems"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejects")),
    )
    with op.batch_alter_table("rejects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rejects_source_system_id_ingest_run_id"),
            ["source_system_id", "ingest_run_id"],
            unique=False,
        )

    op.create_table(
        "source_record_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "source_record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("raw", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column(
            "standardized", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "issues", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "ingest_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_source_record_versions_version_positive")),
        sa.ForeignKeyConstraint(
            ["ingest_run_id"],
            ["ingest_runs.id"],
            name=op.f("fk_source_record_versions_ingest_run_id_ingest_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["source_record_id"],
            ["source_records.id"],
            name=op.f("fk_source_record_versions_source_record_id_source_records"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_record_versions")),
        sa.UniqueConstraint(
            "source_record_id",
            "version",
            name=op.f("uq_source_record_versions_source_record_id_version"),
        ),
    )
    op.create_table(
        "steward_decisions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column(
            "left_record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "right_record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "candidate_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('must_link', 'cannot_link')", name=op.f("ck_steward_decisions_kind")
        ),
        sa.CheckConstraint(
            "left_record_id < right_record_id", name=op.f("ck_steward_decisions_ordered_pair")
        ),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["match_candidates.id"],
            name=op.f("fk_steward_decisions_candidate_id_match_candidates"),
        ),
        sa.ForeignKeyConstraint(
            ["left_record_id"],
            ["source_records.id"],
            name=op.f("fk_steward_decisions_left_record_id_source_records"),
        ),
        sa.ForeignKeyConstraint(
            ["right_record_id"],
            ["source_records.id"],
            name=op.f("fk_steward_decisions_right_record_id_source_records"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_steward_decisions")),
    )
    with op.batch_alter_table("steward_decisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_steward_decisions_left_record_id"), ["left_record_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_steward_decisions_right_record_id"), ["right_record_id"], unique=False
        )
    _create_triggers()


def downgrade() -> None:
    _drop_triggers()
    with op.batch_alter_table("steward_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_steward_decisions_right_record_id"))
        batch_op.drop_index(batch_op.f("ix_steward_decisions_left_record_id"))

    op.drop_table("steward_decisions")
    op.drop_table("source_record_versions")
    with op.batch_alter_table("rejects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rejects_source_system_id_ingest_run_id"))

    op.drop_table("rejects")
    with op.batch_alter_table("match_candidates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_match_candidates_entity_type_status_score"))

    op.drop_table("match_candidates")
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_links_active_source_record",
            postgresql_where=sa.text("active"),
            sqlite_where=sa.text("active = 1"),
        )
        batch_op.drop_index(batch_op.f("ix_links_entity_id_active"))

    op.drop_table("links")
    op.drop_table("subscriptions")
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_source_records_entity_type_status"))

    op.drop_table("source_records")
    with op.batch_alter_table("redirects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_redirects_to_entity_id"))

    op.drop_table("redirects")
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_events_entity_type_position"))

    op.drop_table("outbox_events")
    with op.batch_alter_table("ingest_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingest_runs_source_system_id_file_sha256"))

    op.drop_table("ingest_runs")
    with op.batch_alter_table("entity_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entity_versions_entity_id_valid_from"))

    op.drop_table("entity_versions")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_actor_at"))

    op.drop_table("audit_log")
    with op.batch_alter_table("admin_units", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_admin_units_dataset_version_scheme_parent_code"))

    op.drop_table("admin_units")
    op.drop_table("admin_unit_crosswalk")
    op.drop_table("source_systems")
    with op.batch_alter_table("entities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entities_entity_type_status"))

    op.drop_table("entities")
    op.drop_table("api_clients")
    op.drop_table("admin_unit_datasets")
