"""Administrative units, versioned: unit codes are reused with new meanings after
2025, so every stored code carries its scheme and the dataset it came from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mdm.store.models.base import Base, UTCDateTime, utcnow


class AdminUnitDataset(Base):
    __tablename__ = "admin_unit_datasets"

    version: Mapped[str] = mapped_column(String(100), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    current: Mapped[bool] = mapped_column(Boolean, default=False)


class AdminUnit(Base):
    __tablename__ = "admin_units"
    __table_args__ = (
        CheckConstraint("scheme IN ('pre2025', '2025')", name="scheme"),
        CheckConstraint("level IN ('province', 'district', 'commune')", name="level"),
        Index(None, "dataset_version", "scheme", "parent_code"),
    )

    dataset_version: Mapped[str] = mapped_column(
        ForeignKey("admin_unit_datasets.version"), primary_key=True
    )
    scheme: Mapped[str] = mapped_column(String(10), primary_key=True)
    level: Mapped[str] = mapped_column(String(10), primary_key=True)
    code: Mapped[str] = mapped_column(String(10), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(String(40))
    parent_code: Mapped[str | None] = mapped_column(String(10))


class AdminUnitCrosswalk(Base):
    """Former (pre-2025) commune -> 2025 commune; several rows when it was split."""

    __tablename__ = "admin_unit_crosswalk"

    dataset_version: Mapped[str] = mapped_column(
        ForeignKey("admin_unit_datasets.version"), primary_key=True
    )
    old_commune_code: Mapped[str] = mapped_column(String(10), primary_key=True)
    new_commune_code: Mapped[str] = mapped_column(String(10), primary_key=True)
    new_province_code: Mapped[str] = mapped_column(String(10))
    split: Mapped[bool] = mapped_column(Boolean, default=False)
