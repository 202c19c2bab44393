"""Load the administrative units into the registry's own versioned tables.

The standardizers work from an in-memory index of the same data; these tables make
the reference data visible to SQL (quality reports, the console, other tools) and
record which dataset version the registry used. Loading is idempotent: a version
already present is not loaded twice; a new version becomes ``current`` and the older
ones stay for records standardized against them.
"""

from __future__ import annotations

from mdm.standardize import units
from mdm.store.db import Engine
from mdm.store.repositories import reference


def load_units(engine: Engine) -> tuple[str, bool]:
    """Returns (dataset version, whether it was loaded now)."""
    version = units.dataset_version()
    with engine.begin() as conn:
        if reference.has_dataset(conn, version):
            return version, False
        reference.add_current_dataset(
            conn,
            version,
            "vietnam-provinces package + src/mdm/standardize/data/admin_overrides.yaml",
            [{**row, "dataset_version": version} for row in units.iter_units()],
            [{**row, "dataset_version": version} for row in units.iter_crosswalk()],
        )
    return version, True
