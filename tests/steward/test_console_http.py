"""The console over real HTTP (a real ``mdm serve``): CSRF, session expiry, roles,
login throttling, language. Both backends."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mdm.store.db import make_engine
from mdm.store.models import (
    AttributeOverride,
    AuditLog,
    Entity,
    MatchCandidate,
    Redirect,
    StewardSession,
    utcnow,
)
from tests.steward.http import csrf_of, login
from tests.steward.seed import PASSWORD, Seeded


def _db(url: str) -> Session:
    return Session(make_engine(url))


def test_pages_need_a_login(served: tuple[str, str, Seeded]) -> None:
    base, _url, _data = served
    r = httpx.get(f"{base}/steward/review", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/steward/login?next=")
    r = httpx.post(f"{base}/steward/review/next", follow_redirects=False)
    assert r.status_code == 303 and "/steward/login" in r.headers["location"]
    # search, logged in: by canonical ID and by source key go to the golden record
    client, _csrf = login(base, "minh")
    with _db(_url) as s:
        ca = _data.cid(s, "a1")
    r = client.get("/steward/search", params={"q": ca})
    assert r.status_code == 303 and r.headers["location"] == f"/steward/entity/{ca}"
    r = client.get("/steward/search", params={"system": "ha-nam-hotich", "key": "A1"})
    assert r.status_code == 303 and r.headers["location"] == f"/steward/entity/{ca}"
    r = client.get("/steward/search", params={"system": "ha-nam-hotich", "key": "nope"})
    assert r.status_code == 200 and 'id="search-none"' in r.text
    # by attributes: the API's probabilistic search needs a trained model
    r = client.get("/steward/search", params={"name": "Nguyễn Văn An", "birth_year": "1990"})
    assert r.status_code == 200 and "model_not_trained" in r.text
    assert client.get("/steward/entity/P-NOTANID").status_code in (400, 404)
    client.close()


def test_csrf_is_checked_on_every_post(served: tuple[str, str, Seeded]) -> None:
    base, url, data = served
    # the login form itself carries a token (double-submit cookie)
    anonymous = httpx.Client(base_url=base)
    r = anonymous.post("/steward/login", data={"username": "lan", "password": PASSWORD})
    assert r.status_code == 403
    client, csrf = login(base, "lan")
    c1 = data.candidates["c1"]
    for token in ("", "forged"):
        r = client.post(
            f"/steward/review/{c1}/decide", data={"decision": "same", "csrf_token": token}
        )
        assert r.status_code == 403, r.text
    r = client.post("/steward/logout", data={})
    assert r.status_code == 403
    with _db(url) as s:
        assert (
            s.execute(select(MatchCandidate.status).where(MatchCandidate.id == c1)).scalar()
            == "pending"
        )
        assert s.execute(select(Redirect)).first() is None
    # the same request with the token as a header (scripted requests) is accepted
    r = client.post(
        f"/steward/review/{c1}/decide",
        data={"decision": "skip"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 303
    # another session's token does not work in this one
    other, other_csrf = login(base, "minh")
    r = client.post("/steward/review/undo", data={"csrf_token": other_csrf})
    assert r.status_code == 403
    r = client.post("/steward/review/undo", data={"csrf_token": csrf})
    assert r.status_code == 303
    other.close()
    client.close()


def test_sessions_expire(served: tuple[str, str, Seeded]) -> None:
    base, url, _data = served
    client, _csrf = login(base, "lan")
    with _db(url) as s:
        s.execute(update(StewardSession).values(last_seen_at=utcnow() - timedelta(minutes=31)))
        s.commit()
    r = client.get("/steward/review")
    assert r.status_code == 303 and "expired=1" in r.headers["location"]
    assert "đã hết hạn" in client.get(r.headers["location"]).text

    client, _csrf = login(base, "lan")
    with _db(url) as s:
        s.execute(
            update(StewardSession)
            .where(StewardSession.revoked_at.is_(None))
            .values(created_at=utcnow() - timedelta(hours=8, minutes=1), last_seen_at=utcnow())
        )
        s.commit()
    r = client.get("/steward/quality")
    assert r.status_code == 303 and "expired=1" in r.headers["location"]
    # logging out ends the session on the server, not just in the browser
    client, csrf = login(base, "lan")
    cookie = client.cookies.get("mdm_steward")
    assert client.post("/steward/logout", data={"csrf_token": csrf}).status_code == 303
    replay = httpx.get(
        f"{base}/steward/review", cookies={"mdm_steward": cookie or ""}, follow_redirects=False
    )
    assert replay.status_code == 303


def test_roles(served: tuple[str, str, Seeded]) -> None:
    base, url, data = served
    with _db(url) as s:
        ca, cb = data.cid(s, "a1"), data.cid(s, "b1")
        cm = data.cid(s, "m1")
    reviewer, csrf = login(base, "minh")
    assert reviewer.get(f"/steward/entity/{ca}").status_code == 200
    assert reviewer.get(f"/steward/entity/{ca}/merge", params={"other": cb}).status_code == 403
    r = reviewer.post(
        f"/steward/entity/{ca}/merge", data={"other": cb, "reason": "x", "csrf_token": csrf}
    )
    assert r.status_code == 403
    r = reviewer.post(
        f"/steward/entity/{ca}/override",
        data={"attribute": "full_name", "value": "X", "reason": "x", "csrf_token": csrf},
    )
    assert r.status_code == 403
    r = reviewer.post(
        f"/steward/entity/{cm}/split",
        data={"record_id": str(data.records["m2"]), "reason": "x", "csrf_token": csrf},
    )
    assert r.status_code == 403
    assert reviewer.get("/steward/stewards").status_code == 403
    with _db(url) as s:
        assert s.execute(select(Redirect)).first() is None
        assert s.execute(select(AttributeOverride)).first() is None
    # reviewers do review
    r = reviewer.post(
        f"/steward/review/{data.candidates['c4']}/decide",
        data={"decision": "not_same", "csrf_token": csrf},
    )
    assert r.status_code == 303

    senior, scsrf = login(base, "lan")
    r = senior.post(
        f"/steward/entity/{ca}/override",
        data={
            "attribute": "full_name",
            "value": "Nguyễn Văn An",
            "reason": "CCCD",
            "csrf_token": scsrf,
        },
    )
    assert r.status_code == 303
    assert senior.get("/steward/stewards").status_code == 403
    with _db(url) as s:
        attrs = s.execute(select(Entity.attributes).where(Entity.canonical_id == ca)).scalar_one()
        assert attrs["full_name"] == "Nguyễn Văn An"
        actions = set(s.execute(select(AuditLog.action)).scalars())
        assert {
            "entity.override",
            "review.not_same",
            "console.login",
            "console.view_entity",
        } <= actions

    admin, acsrf = login(base, "root")
    page = admin.get("/steward/stewards")
    assert page.status_code == 200
    r = admin.post(
        "/steward/stewards", data={"username": "thu", "role": "reviewer", "csrf_token": acsrf}
    )
    assert r.status_code == 200 and 'id="created-password"' in r.text
    for c in (reviewer, senior, admin):
        c.close()


def test_login_throttling_and_language(served: tuple[str, str, Seeded]) -> None:
    base, _url, _data = served
    client = httpx.Client(base_url=base, follow_redirects=False)
    statuses = []
    for _ in range(6):
        token = csrf_of(client.get("/steward/login").text)
        r = client.post(
            "/steward/login",
            data={"username": "root", "password": "wrong!", "csrf_token": token},
        )
        statuses.append(r.status_code)
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    token = csrf_of(client.get("/steward/login").text)
    r = client.post(
        "/steward/login", data={"username": "root", "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 429  # locked for a while, even with the right password
    page = client.get("/steward/login")
    assert "Đăng nhập" in page.text
    english = client.get("/steward/login", params={"lang": "en"})
    assert "Log in" in english.text and english.cookies.get("mdm_lang") == "en"
    assert "Log in" in client.get("/steward/login").text  # the cookie keeps the choice
    client.close()
