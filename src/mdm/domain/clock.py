"""The registry's clock."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, timezone-aware in UTC (every stored timestamp is)."""
    return datetime.now(UTC)
