"""Load the administrative units into the registry's own versioned tables.

The standardizers work from an in-memory index of the same data; these tables make
the reference data visible to SQL (quality reports, the console, other tools) and
record which dataset version the registry used. Loading is idempotent: a version
already present is not loaded twice; a new version becomes ``current`` and the older
ones stay for records standardized against them.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Engine, Table, insert, select, update

from mdm.standardize import units
from mdm.store.models import AdminUnit, AdminUnitCrosswalk, AdminUnitDataset

_datasets = cast(Table, AdminUnitDataset.__table__)
_units = cast(Table, AdminUnit.__table__)
_crosswalk = cast(Table, AdminUnitCrosswalk.__table__)


def load_units(engine: Engine) -> tuple[str, bool]:
    """Returns (dataset version, whether it was loaded now)."""
    version = units.dataset_version()
    with engine.begin() as conn:
        present = conn.execute(
            select(_datasets.c.version).where(_datasets.c.version == version)
        ).first()
        if present is not None:
            return version, False
        conn.execute(update(_datasets).values(current=False))
        conn.execute(
            insert(_datasets).values(
                version=version,
                source="vietnam-provinces package + src/mdm/standardize/data/admin_overrides.yaml",
                current=True,
            )
        )
        rows = [{**row, "dataset_version": version} for row in units.iter_units()]
        conn.execute(insert(_units), rows)
        walk = [{**row, "dataset_version": version} for row in units.iter_crosswalk()]
        conn.execute(insert(_crosswalk), walk)
    return version, True
