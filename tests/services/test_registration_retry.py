"""The registration's retry loop (:func:`register_with_retry`) alone.

``register_record`` is replaced by a stub that fails as the database would in a race
(deadlock, serialization failure, unique violation, the target entity moved), so
each retry path is exercised without having to provoke the race. The transactions
are real ones on an in-memory SQLite database: every attempt is its own unit of work.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mdm.exceptions import RecordRejected, RegistrationContended
from mdm.services import registration as reg


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"driver error {sqlstate}")
        self.sqlstate = sqlstate


def _db_error(sqlstate: str) -> OperationalError:
    return OperationalError("SELECT 1", {}, _DriverError(sqlstate))


RESULT = reg.RegistrationResult(
    canonical_id="C-1",
    entity_type="citizen",
    decision="created",
    source_record_id=1,
    record_version=1,
    changed=True,
    replayed=False,
    source_system="hn-portal",
    source_key="A-1",
)


@pytest.fixture
def factory() -> Iterator[sessionmaker[Session]]:
    engine = create_engine("sqlite://")
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr(reg.time, "sleep", waited.append)
    return waited


def _stub(monkeypatch: pytest.MonkeyPatch, failures: list[BaseException]) -> list[Session]:
    """``register_record`` raises each of ``failures`` in turn, then answers RESULT;
    returns the session of every attempt."""
    sessions: list[Session] = []

    def fake(session: Session, *_args: Any, **_options: Any) -> reg.RegistrationResult:
        sessions.append(session)
        if failures:
            raise failures.pop(0)
        return RESULT

    monkeypatch.setattr(reg, "register_record", fake)
    return sessions


def _register(factory: sessionmaker[Session], **options: Any) -> reg.RegistrationResult:
    return reg.register_with_retry(factory, "citizen", "hn-portal", "A-1", {}, **options)


@pytest.mark.parametrize("sqlstate", ["40001", "40P01", "23505", "55P03"])
def test_a_race_is_run_again_in_a_new_transaction(
    factory: sessionmaker[Session],
    sleeps: list[float],
    monkeypatch: pytest.MonkeyPatch,
    sqlstate: str,
) -> None:
    sessions = _stub(monkeypatch, [_db_error(sqlstate), _db_error(sqlstate)])
    seen: list[tuple[Session, reg.RegistrationResult]] = []
    result = _register(factory, on_result=lambda s, r: seen.append((s, r)))
    assert result is RESULT
    assert len(sessions) == 3 and len(set(map(id, sessions))) == 3
    assert seen == [(sessions[-1], RESULT)]  # only the attempt that commits
    assert len(sleeps) == 2 and all(0 < s <= 0.75 for s in sleeps)


def test_a_busy_sqlite_is_a_race_too(
    factory: sessionmaker[Session], sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = OperationalError("INSERT", {}, Exception("database is locked"))
    sessions = _stub(monkeypatch, [locked])
    assert _register(factory) is RESULT and len(sessions) == 2


def test_exhausted_races_answer_409_registration_contended(
    factory: sessionmaker[Session], sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = _stub(monkeypatch, [_db_error("40P01") for _ in range(reg.RETRY_ATTEMPTS)])
    with pytest.raises(RegistrationContended) as info:
        _register(factory)
    assert info.value.status_code == 409 and info.value.code == "registration_contended"
    assert str(info.value.detail) == "concurrent registrations collided; retry the request"
    assert isinstance(info.value.__cause__, OperationalError)
    assert len(sessions) == reg.RETRY_ATTEMPTS and len(sleeps) == reg.RETRY_ATTEMPTS - 1


def test_attempts_bounds_the_tries(
    factory: sessionmaker[Session], sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = _stub(monkeypatch, [_db_error("40001") for _ in range(5)])
    with pytest.raises(RegistrationContended):
        _register(factory, attempts=2)
    assert len(sessions) == 2 and len(sleeps) == 1


def test_an_entity_that_moved_is_retried_then_a_409_the_client_may_retry(
    factory: sessionmaker[Session], sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = _stub(monkeypatch, [reg._Retry("entity 7 changed status")])
    assert _register(factory) is RESULT and len(sessions) == 2

    # a merge or split kept moving the target entity: 409, as documented, not a 500
    moved = [reg._Retry("entity 7 changed status") for _ in range(reg.RETRY_ATTEMPTS)]
    sessions = _stub(monkeypatch, moved)
    with pytest.raises(reg.RegistrationContended):
        _register(factory)
    assert len(sessions) == reg.RETRY_ATTEMPTS


def test_other_errors_are_not_retried(
    factory: sessionmaker[Session], sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = _stub(monkeypatch, [_db_error("42P01")])  # undefined table: a bug
    with pytest.raises(OperationalError):
        _register(factory)
    sessions = _stub(monkeypatch, [ValueError("a bug")])
    with pytest.raises(ValueError):
        _register(factory)
    assert len(sessions) == 1 and sleeps == []


def test_a_rejected_record_is_kept_in_its_own_transaction_and_not_retried(
    factory: sessionmaker[Session], sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    rejected = RecordRejected({"message": "rejected", "issues": []}, reject={"x": 1})
    sessions = _stub(monkeypatch, [rejected])
    kept: list[tuple[Session, RecordRejected, bool]] = []

    def record_reject(
        session: Session, exc: RecordRejected, *, create_source_system: bool = True
    ) -> None:
        kept.append((session, exc, create_source_system))

    monkeypatch.setattr(reg, "record_reject", record_reject)
    with pytest.raises(RecordRejected):
        _register(factory, create_source_system=False)
    assert len(sessions) == 1 and sleeps == []
    assert len(kept) == 1 and kept[0][0] is not sessions[0]
    assert kept[0][1] is rejected and kept[0][2] is False
