"""The dispatch shortcut for entity and xref lookups answers exactly what the full
FastAPI stack answers: same status, body and error headers, same audit rows.

Two apps serve the same database: the default one (shortcut on) and one built with
``MDM_API_FAST_READS=false``. Every request of a matrix (keys × paths × purpose) goes
to both; the shortcut must have served most of them (cache warm), and the answers
must be identical.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdm.api import fastpath
from mdm.config import get_settings
from mdm.services.clients import create_client
from mdm.store.models import AuditLog
from tests.api.conftest import Registry, api_app, serving

KEYS = ["all", "reader", "citizen-reader", "citizen-pii", "org-reader", "none", "searcher"]


@pytest.fixture(scope="module")
def full_stack(registry: Registry) -> Iterator[str]:
    mp = pytest.MonkeyPatch()
    mp.setenv("MDM_API_FAST_READS", "false")
    get_settings.cache_clear()
    try:
        app = api_app(registry)
    finally:
        mp.undo()
        get_settings.cache_clear()
    assert not any(m.cls is fastpath.FastReads for m in app.user_middleware)
    with serving(app) as base:
        yield base


def _paths(reg: Registry) -> list[str]:
    system, key, _cid = reg.xref
    citizen = reg.ids["citizen"][2]
    org = reg.ids["organization"][0]
    unknown = citizen[:-3] + ("AAA" if not citizen.endswith("AAA") else "BBB")
    return [
        f"/v1/entities/{citizen}",
        f"/v1/entities/{org}",
        f"/v1/entities/{reg.merged[0]}",  # retired: answers the survivor, redirected
        f"/v1/entities/{unknown}",  # bad check character or unknown
        "/v1/entities/P-NOT-AN-ID",
        "/v1/entities/" + "P" * 65,  # over the route's limit: the full stack's 422
        f"/v1/xrefs/{system}/{key}",
        f"/v1/xrefs/{system}/no-such-key",
        "/v1/xrefs/no-such-system/x",
        f"/v1/xrefs/{system}/%00",  # NUL: the full stack's 422
        f"/v1/entities/{citizen}?as_of=2020-01-01T00:00:00Z",  # not taken by the shortcut
    ]


def _answer(r: httpx.Response) -> tuple[int, object, str | None, str | None]:
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text
    return r.status_code, body, r.headers.get("retry-after"), r.headers.get("content-type")


def _audit_rows(reg: Registry) -> int:
    with Session(reg.engine) as session:
        return int(session.execute(select(func.count()).select_from(AuditLog)).scalar_one())


def test_shortcut_answers_like_the_full_stack(registry: Registry, full_stack: str) -> None:
    paths = _paths(registry)
    before = fastpath.served
    compared = 0
    audit_fast = audit_full = 0
    for name in KEYS:
        for purpose in (None, "kiểm tra / testing"):
            headers: dict[str, str | bytes] = {"Authorization": f"Bearer {registry.keys[name]}"}
            if purpose:
                headers["X-Purpose"] = purpose.encode()  # UTF-8 bytes, read as latin-1
            with (
                httpx.Client(base_url=registry.base_url, headers=headers, timeout=30) as fast,
                httpx.Client(base_url=full_stack, headers=headers, timeout=30) as full,
            ):
                fast.get(paths[0])  # the first request of a key fills the auth cache
                for path in paths:
                    n0 = _audit_rows(registry)
                    a = _answer(fast.get(path))
                    n1 = _audit_rows(registry)
                    b = _answer(full.get(path))
                    n2 = _audit_rows(registry)
                    assert a == b, f"{name} purpose={purpose!r} GET {path}"
                    audit_fast += n1 - n0
                    audit_full += n2 - n1
                    compared += 1
    assert compared == len(KEYS) * 2 * len(paths)
    assert audit_fast == audit_full > 0
    # Most requests took the shortcut (not the first of a key, ?as_of=, bad paths).
    assert fastpath.served - before >= len(KEYS) * 2 * 7


def test_x_api_key_header_and_precedence(registry: Registry, full_stack: str) -> None:
    cid = registry.ids["citizen"][3]
    cases = [
        {"X-API-Key": registry.keys["reader"]},
        {
            "Authorization": f"Bearer {registry.keys['org-reader']}",
            "X-API-Key": registry.keys["all"],
        },
        {"Authorization": "Basic abc", "X-API-Key": registry.keys["reader"]},
        {"Authorization": "Bearer", "X-API-Key": registry.keys["reader"]},
        {"X-API-Key": "mdm_unknown_key"},
        {},
    ]
    for headers in cases:
        with (
            httpx.Client(base_url=registry.base_url, timeout=30) as fast,
            httpx.Client(base_url=full_stack, timeout=30) as full,
        ):
            fast.get(f"/v1/entities/{cid}", headers=headers)
            assert _answer(fast.get(f"/v1/entities/{cid}", headers=headers)) == _answer(
                full.get(f"/v1/entities/{cid}", headers=headers)
            ), headers


def test_rate_limit_through_the_shortcut(registry: Registry) -> None:
    with Session(registry.engine) as session:
        key = create_client(session, "fastpath-limited", ["*:read"], rate_limit_per_minute=3).key
        session.commit()
    cid = registry.ids["citizen"][4]
    before = fastpath.served
    with httpx.Client(
        base_url=registry.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as c:
        statuses = [c.get(f"/v1/entities/{cid}") for _ in range(5)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
    limited = statuses[-1]
    assert limited.json()["error"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert fastpath.served - before >= 3  # the later requests took the shortcut


def _refuse_audit_rows(reg: Registry, on: bool) -> None:
    """A trigger that makes every audit insert fail (the audit trail unwritable)."""
    with reg.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            if on:
                conn.exec_driver_sql(
                    "CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql "
                    "AS $$ BEGIN RAISE EXCEPTION 'audit refused (test)'; END $$"
                )
                conn.exec_driver_sql(
                    "CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_log "
                    "FOR EACH STATEMENT EXECUTE FUNCTION test_refuse_audit()"
                )
            else:
                conn.exec_driver_sql("DROP TRIGGER test_refuse_audit ON audit_log")
                conn.exec_driver_sql("DROP FUNCTION test_refuse_audit()")
        elif on:
            conn.exec_driver_sql(
                "CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit refused (test)'); END"
            )
        else:
            conn.exec_driver_sql("DROP TRIGGER test_refuse_audit")


def test_a_read_whose_audit_row_fails_is_not_served_on_either_path(
    registry: Registry, full_stack: str
) -> None:
    """The shortcut awaits its audit commit on the event loop (the endpoint does not
    block on it); when the commit fails the answer is the full stack's 503
    audit_unavailable, and the golden record is not sent."""
    cid = registry.ids["citizen"][5]
    system, key, _ = registry.xref
    headers = {"Authorization": f"Bearer {registry.keys['reader']}"}
    with (
        httpx.Client(base_url=registry.base_url, headers=headers, timeout=30) as fast,
        httpx.Client(base_url=full_stack, headers=headers, timeout=30) as full,
    ):
        assert fast.get(f"/v1/entities/{cid}").status_code == 200  # fills the auth cache
        _refuse_audit_rows(registry, True)
        try:
            for path in (f"/v1/entities/{cid}", f"/v1/xrefs/{system}/{key}"):
                before = fastpath.served
                a, b = fast.get(path), full.get(path)
                assert fastpath.served == before + 1  # the shortcut answered `a`
                assert _answer(a) == _answer(b), path
                assert a.status_code == 503 and a.json()["error"] == "audit_unavailable"
                assert int(a.headers["retry-after"]) >= 1
                assert cid not in a.text
        finally:
            _refuse_audit_rows(registry, False)
        assert fast.get(f"/v1/entities/{cid}").status_code == 200
        assert full.get(f"/v1/entities/{cid}").status_code == 200
