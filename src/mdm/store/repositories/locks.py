"""Postgres advisory locks, named by strings.

A name maps to a signed 64-bit key (the first 8 bytes of its SHA-256), so every
caller that names the same thing takes the same lock. Two kinds:

* transaction locks (:func:`xact_lock`): held until the caller's transaction ends;
* session locks (:func:`try_session_lock`): held by a connection of their own, across
  transactions, until :func:`release_session_lock` (or until the server ends the
  session of a dead client).

SQLite has no advisory locks: these are for Postgres only (callers check the dialect
or use :func:`xact_lock`, which does nothing elsewhere).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import Connection, Engine, text

#: one statement for a whole set of transaction locks; ``unnest`` yields (and so
#: locks) in array order
_XACT_LOCK_MANY = (
    "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS t(k)"
)
#: the driver-level (psycopg) form, for callers that pipeline it with other statements
XACT_LOCK_DRIVER_SQL = "SELECT pg_advisory_xact_lock(%s)"


def lock_key(name: str) -> int:
    """The signed 64-bit advisory-lock key of ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def xact_lock(conn: Connection, names: Iterable[str]) -> None:
    """Postgres: hold these named locks until the transaction ends, taken in ascending
    key order so that two transactions asking for overlapping sets never wait for
    each other in a cycle; one round trip. Elsewhere nothing."""
    if conn.dialect.name != "postgresql":
        return
    keys = sorted({lock_key(n) for n in names})
    if keys:
        conn.execute(text(_XACT_LOCK_MANY), {"keys": keys})


def try_session_lock(engine: Engine, name: str) -> Connection | None:
    """Postgres: a new connection holding the session lock ``name`` (its transaction
    committed, the lock held by the session), or ``None`` when another session holds
    it. Give it back with :func:`release_session_lock`: the lock belongs to the
    database session, which outlives the pooled connection handle."""
    conn = engine.connect()
    got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(name)}).scalar()
    if not got:
        conn.close()
        return None
    conn.commit()
    return conn


def release_session_lock(conn: Connection, name: str) -> None:
    """Release the session lock ``name`` taken by :func:`try_session_lock` and close
    its connection. A broken connection is dropped from the pool instead, so that its
    session (and the lock) ends with it rather than being handed to the next caller."""
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(name)})
        conn.commit()
    except Exception:
        conn.invalidate()
    finally:
        conn.close()
