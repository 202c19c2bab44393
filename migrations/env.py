"""Alembic environment: one chain for Postgres and SQLite."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context
from sqlalchemy import pool

from mdm.config import get_settings
from mdm.store.db import make_engine
from mdm.store.models import Base
from mdm.store.models.base import UTCDateTime
from mdm.store.models.source import TRIGGER_CHECKED_FOREIGN_KEYS

config = context.config


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render our portable column types with plain SQLAlchemy names, so that the
    migration files never import application code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, sa.JSON):
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return "sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')"
    return False


target_metadata = Base.metadata


def _include_object_for(dialect: str) -> Any:
    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
        """On Postgres, the foreign keys that migration 0012 replaced with
        statement-level triggers are not expected in the schema."""
        return not (
            dialect == "postgresql"
            and type_ == "foreign_key_constraint"
            and name in TRIGGER_CHECKED_FOREIGN_KEYS
        )

    return include_object


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or get_settings().database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
    engine = (
        make_engine(url, poolclass=pool.NullPool)
        if not url.startswith("sqlite")
        else (make_engine(url))
    )
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
                render_item=render_item,
                include_object=_include_object_for(connection.dialect.name),
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
