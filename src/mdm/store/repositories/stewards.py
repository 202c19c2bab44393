"""Steward accounts, their console sessions, and the failed-login counters."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mdm.store.tables import login_failures, steward_sessions, stewards

# --- accounts ------------------------------------------------------------------------


def steward_id(conn: Connection, username: str) -> int | None:
    found = conn.execute(select(stewards.c.id).where(stewards.c.username == username)).scalar()
    return None if found is None else int(found)


def by_username(conn: Connection, username: str) -> Any:
    return conn.execute(select(stewards).where(stewards.c.username == username)).first()


def add(
    conn: Connection,
    *,
    username: str,
    display_name: str,
    role: str,
    password_hash: str,
    now: datetime,
) -> int:
    return int(
        conn.execute(
            insert(stewards)
            .values(
                username=username,
                display_name=display_name,
                role=role,
                password_hash=password_hash,
                active=True,
                created_at=now,
            )
            .returning(stewards.c.id)
        ).scalar_one()
    )


def set_password_hash(conn: Connection, steward_id: int, password_hash: str) -> None:
    conn.execute(
        update(stewards).where(stewards.c.id == steward_id).values(password_hash=password_hash)
    )


def set_active(conn: Connection, steward_id: int, active: bool) -> None:
    conn.execute(update(stewards).where(stewards.c.id == steward_id).values(active=active))


def all_by_username(conn: Connection) -> list[Any]:
    return list(conn.execute(select(stewards).order_by(stewards.c.username)))


# --- failed logins -------------------------------------------------------------------


def locked_until(conn: Connection, key: str) -> datetime | None:
    return conn.execute(
        select(login_failures.c.locked_until).where(login_failures.c.username_key == key)
    ).scalar()


def clear_failures(conn: Connection, key: str) -> None:
    conn.execute(delete(login_failures).where(login_failures.c.username_key == key))


def count_failure(
    conn: Connection,
    key: str,
    now: datetime,
    *,
    window: timedelta,
    max_failures: int,
    lock: timedelta,
) -> None:
    """One more failure of ``key``; locked for ``lock`` when it reaches ``max_failures``
    (its count starting again from zero).

    Rows whose last failure left the ``window`` and whose lock ran out are deleted
    first, so the table never holds more than one window's failed usernames.
    """
    conn.execute(
        delete(login_failures).where(
            login_failures.c.last_failed_at < now - window,
            or_(login_failures.c.locked_until.is_(None), login_failures.c.locked_until <= now),
        )
    )
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    upsert = dialect.insert(login_failures).values(
        username_key=key, failures=1, locked_until=None, last_failed_at=now
    )
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[login_failures.c.username_key],
            set_={"failures": login_failures.c.failures + 1, "last_failed_at": now},
        )
    )
    failures = conn.execute(
        select(login_failures.c.failures).where(login_failures.c.username_key == key)
    ).scalar_one()
    if failures >= max_failures:
        conn.execute(
            update(login_failures)
            .where(login_failures.c.username_key == key)
            .values(failures=0, locked_until=now + lock)
        )


# --- console sessions ----------------------------------------------------------------


def add_session(
    conn: Connection, token_hash: str, steward_id: int, csrf_token: str, now: datetime
) -> None:
    conn.execute(
        insert(steward_sessions).values(
            token_hash=token_hash,
            steward_id=steward_id,
            csrf_token=csrf_token,
            created_at=now,
            last_seen_at=now,
            revoked_at=None,
        )
    )


def session_with_steward(conn: Connection, token_hash: str) -> Any:
    """The session of ``token_hash`` joined to its steward, or ``None``."""
    return conn.execute(
        select(
            steward_sessions.c.csrf_token,
            steward_sessions.c.created_at,
            steward_sessions.c.last_seen_at,
            steward_sessions.c.revoked_at,
            stewards.c.id,
            stewards.c.username,
            stewards.c.display_name,
            stewards.c.role,
            stewards.c.active,
        )
        .join(stewards, stewards.c.id == steward_sessions.c.steward_id)
        .where(steward_sessions.c.token_hash == token_hash)
    ).first()


def touch_session(conn: Connection, token_hash: str, now: datetime) -> None:
    conn.execute(
        update(steward_sessions)
        .where(steward_sessions.c.token_hash == token_hash)
        .values(last_seen_at=now)
    )


def revoke_session(conn: Connection, token_hash: str, now: datetime) -> None:
    conn.execute(
        update(steward_sessions)
        .where(steward_sessions.c.token_hash == token_hash, steward_sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_sessions_of(conn: Connection, steward_id: int, now: datetime) -> None:
    conn.execute(
        update(steward_sessions)
        .where(steward_sessions.c.steward_id == steward_id, steward_sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
