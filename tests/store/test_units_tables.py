"""The administrative units land in the registry's own versioned tables, once."""

from __future__ import annotations

from sqlalchemy import text

from mdm.services.units import load_units
from mdm.standardize import units
from mdm.store.db import make_engine


def test_units_are_loaded_once_with_their_scheme_and_version(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    try:
        version, loaded = load_units(engine)
        assert loaded and version == units.dataset_version()
        assert load_units(engine) == (version, False)
        with engine.connect() as conn:
            counts = dict(
                conn.execute(
                    text("SELECT scheme || '/' || level, count(*) FROM admin_units GROUP BY 1")
                ).all()
            )
            # 34 provinces and 3,321 communes after the 2025 reform; 63 provinces before.
            assert counts["2025/province"] == 34
            assert counts["2025/commune"] == 3321
            assert counts["pre2025/province"] == 63
            # Code 00004 exists in both schemes with different names (codes are reused).
            names = dict(
                conn.execute(
                    text("SELECT scheme, name FROM admin_units WHERE code = '00004'")
                ).all()
            )
            assert names["pre2025"] != names["2025"]
            split = conn.execute(
                text(
                    "SELECT count(DISTINCT old_commune_code) FROM admin_unit_crosswalk WHERE split"
                )
            ).scalar_one()
            assert split > 100
    finally:
        engine.dispose()
