"""The database's liveness, as the readiness probe asks it."""

from __future__ import annotations

from sqlalchemy import Connection, text


def ping(conn: Connection) -> None:
    """One round trip; raises when the database does not answer."""
    conn.execute(text("SELECT 1"))
