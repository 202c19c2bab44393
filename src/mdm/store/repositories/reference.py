"""The administrative-unit reference data (``admin_unit_datasets``, ``admin_units``,
``admin_unit_crosswalk``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update

from mdm.store.tables import admin_units, unit_crosswalk, unit_datasets


def has_dataset(conn: Connection, version: str) -> bool:
    stmt = select(unit_datasets.c.version).where(unit_datasets.c.version == version)
    return conn.execute(stmt).first() is not None


def add_current_dataset(
    conn: Connection,
    version: str,
    source: str,
    units: Sequence[dict[str, Any]],
    crosswalk: Sequence[dict[str, Any]],
) -> None:
    """Load dataset ``version`` (its units and crosswalk rows, ``dataset_version``
    set) and make it the current one."""
    conn.execute(update(unit_datasets).values(current=False))
    conn.execute(insert(unit_datasets).values(version=version, source=source, current=True))
    conn.execute(insert(admin_units), list(units))
    conn.execute(insert(unit_crosswalk), list(crosswalk))
