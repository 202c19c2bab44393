"""Query, path and form parameters of the console outside their allowed values:
unknown entity types and score bands, IDs that are not numbers or do not fit a
64-bit integer, non-ASCII digits. Each is a 400 page in the console's style
(Vietnamese, English with ``lang=en``) naming the parameter, never a 500, a JSON 422
or a reset connection; the valid values still work. Both backends, real HTTP."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdm.store.db import make_engine
from mdm.store.models import AuditLog, MatchCandidate
from tests.steward.http import login
from tests.steward.seed import Seeded

_MESSAGE = re.compile(r'id="error-message">([^<]*)<')


def _bad(response: httpx.Response, parameter: str) -> str:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("text/html")
    found = _MESSAGE.search(response.text)
    assert found, response.text[:300]
    message = found.group(1)
    assert parameter in message, message
    return message


def test_unknown_parameters_are_a_400_page(served: tuple[str, str, Seeded]) -> None:
    base, url, data = served
    # anonymous: sent to the login page as always (no check answers before the login)
    for path, params in (("review", {"band": "x'"}), ("search", {"entity_type": "x'"})):
        r = httpx.get(f"{base}/steward/{path}", params=params, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/steward/login?next=")

    client, csrf = login(base, "lan")  # senior: may split
    with Session(make_engine(url)) as s:
        cm = data.cid(s, "m1")
    c1 = data.candidates["c1"]

    # the probe's finding: search with an unknown entity type (with and without a name)
    for params in ({"entity_type": "x'", "name": "An"}, {"entity_type": "x'"}):
        message = _bad(client.get("/steward/search", params=params), "entity_type")
        assert "không hợp lệ" in message and "citizen, organization, dossier" in message
    english = _bad(
        client.get("/steward/search", params={"entity_type": "x'", "lang": "en"}), "entity_type"
    )
    assert "invalid" in english and "không" not in english
    client.cookies.delete("mdm_lang")

    # the review queue's filters, on every route that takes them
    for params in ({"entity_type": "person"}, {"band": "0.5-1"}, {"band": "x'"}):
        name = next(iter(params))
        _bad(client.get("/steward/review", params=params), name)
        _bad(client.get(f"/steward/review/{c1}", params=params), name)
        _bad(client.post("/steward/review/next", data={**params, "csrf_token": csrf}), name)
        _bad(client.post("/steward/review/undo", data={**params, "csrf_token": csrf}), name)
        _bad(
            client.post(
                f"/steward/review/{c1}/decide",
                data={**params, "decision": "skip", "csrf_token": csrf},
            ),
            name,
        )

    # candidate IDs that are not numbers, or too large for the databases
    for bad_id in ("abc", "99999999999999999999999", "0", "-1"):
        _bad(client.get(f"/steward/review/{bad_id}"), "candidate_id")
        _bad(
            client.post(
                f"/steward/review/{bad_id}/decide", data={"decision": "skip", "csrf_token": csrf}
            ),
            "candidate_id",
        )
    # a missing form field is the same page, not FastAPI's JSON 422
    _bad(client.post(f"/steward/review/{c1}/decide", data={"csrf_token": csrf}), "decision")

    # record IDs of a split: non-ASCII digits, too large, not a number
    for bad_record in ("²", "99999999999999999999999", "abc"):
        _bad(
            client.post(
                f"/steward/entity/{cm}/split",
                data={"record_id": bad_record, "reason": "x", "csrf_token": csrf},
            ),
            "record_id",
        )

    # nothing was decided, merged or split by any of these
    with Session(make_engine(url)) as s:
        statuses = set(s.execute(select(MatchCandidate.status)).scalars())
        assert statuses == {"pending"}
        actions = s.execute(
            select(func.count()).where(AuditLog.action.in_(["review.skip", "entity.split"]))
        ).scalar_one()
        assert actions == 0

    # the allowed values still work
    assert client.get("/steward/search", params={"entity_type": "dossier"}).status_code == 200
    for params in ({"entity_type": "citizen"}, {"band": "0.9-0.95"}, {"band": ""}):
        assert client.get("/steward/review", params=params).status_code == 200
        assert client.get(f"/steward/review/{c1}", params=params).status_code == 200
    # an unknown language is no error: the page is in Vietnamese
    page = client.get("/steward/review", params={"lang": "x'"})
    assert page.status_code == 200 and 'lang="vi"' in page.text
    client.close()
