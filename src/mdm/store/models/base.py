"""Declarative base shared by every table.

The naming convention makes constraint names deterministic, so Alembic emits the
same migration on every machine and `mdm db check` can compare models and schema.
Types are chosen to behave the same on Postgres (production) and SQLite (embedded).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

from mdm.domain.clock import utcnow as utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit keys on Postgres; SQLite only auto-increments a column declared INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# JSONB on Postgres (indexable, compact); JSON text on SQLite.
Json = JSON().with_variant(JSONB(), "postgresql")
# Immutable documents stored and read whole, never queried inside with jsonb operators
# (source record versions): Postgres ``json`` keeps the text as written and costs half
# of ``jsonb`` to store.
JsonText = JSON()


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps always leave the database timezone-aware, in UTC.

    SQLite has no timezone type and returns naive values; Postgres returns aware
    ones in the session's zone. Normalizing here means no caller ever compares a
    naive with an aware datetime.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
