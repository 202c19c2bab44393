"""Injection attempts in every text input (issue 11): SQL, LIKE wildcards,
backslashes, HTML/JS, Unicode tricks and very long strings, through the agency API
(registration, xrefs path, search, batchGet, subscriptions), the stewards' console
(login, search, override reason) and ingest. Nothing answers 5xx, what is stored
is what was sent (no table dropped, no escaping applied to the data), wildcards
never widen a lookup, and the console escapes everything it echoes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session

from mdm.ingest.mapping import load_mapping
from mdm.services.accounts import create_steward
from mdm.services.clients import create_client
from mdm.services.ingest import ingest_file
from mdm.standardize.names import standardize_name
from mdm.store.db import make_engine
from mdm.store.models import SourceRecord, SourceRecordVersion, SourceSystem
from tests.api.conftest import ALL_SCOPES, Registry
from tests.steward.http import csrf_of, login

PAYLOADS = [
    "' OR 1=1 --",
    "' OR '1'='1",
    "'; DROP TABLE source_records; --",
    'Robert"); DROP TABLE entities;--',
    "1; SELECT pg_sleep(5)",
    "%",
    "_",
    "%_%",
    "a%",
    "\\",
    "\\'; --",
    "\\%",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{{7*7}}${7*7}",
    "\u202egnp.exe",  # right-to-left override
    "Ng\u200buy\u200dễn\ufeff",  # zero-width space / joiner, BOM
    "Nguyễn" + "\u0301" * 50,  # a pile of combining marks
    "x" * 50_000,
]
SCRIPT = "<script>alert(1)</script>"


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _stored_raw(engine: Engine, system: str, key: str) -> dict[str, Any] | None:
    with Session(engine) as s:
        raw = s.execute(
            select(SourceRecordVersion.raw)
            .join(SourceRecord, SourceRecord.id == SourceRecordVersion.source_record_id)
            .join(SourceSystem, SourceSystem.id == SourceRecord.source_system_id)
            .where(SourceSystem.name == system, SourceRecord.source_key == key)
            .order_by(SourceRecordVersion.version.desc())
        ).first()
    return None if raw is None else dict(raw[0])


def _no_5xx(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.request.method, str(r.request.url)[:300], r.text[:500])


def test_api_stores_hostile_text_literally(registry: Registry) -> None:
    before = _tables(registry.engine)
    system = "sec-injection"
    with registry.client("all") as c:
        for i, payload in enumerate(PAYLOADS):
            key = payload[:150] + f"-{i}"
            attributes = {
                "full_name": payload,
                "date_of_birth": "1985-03-12",
                "permanent_address": payload,
                "email": payload[:200],
            }
            r = c.post(
                "/v1/citizen/records",
                json={"source_system": system, "source_key": key, "attributes": attributes},
            )
            _no_5xx(r)
            if r.status_code == 200:
                # the raw record is stored exactly as sent; the xref path finds it by
                # the exact key (percent-encoded), wildcards included
                assert _stored_raw(registry.engine, system, key) == attributes
                x = c.get(
                    f"/v1/xrefs/{quote(system, safe='')}/{quote(key, safe='')}",
                    headers={"X-Purpose": "injection test"},  # unmasked: the exact key
                )
                _no_5xx(x)
                assert x.status_code == 200 and x.json()["source_key"] == key, x.text
            else:
                assert r.status_code == 422, r.text
                assert r.json()["error"] in ("record_rejected", "validation_error"), r.text
    assert _tables(registry.engine) == before


def test_wildcards_never_widen_a_lookup(registry: Registry) -> None:
    system, key, _cid = registry.xref
    with registry.client("all") as c:
        c.headers["X-Purpose"] = "security test"
        for pattern in ("%", "_", "%%", key[:-1] + "_", key[:2] + "%", ".*", "*"):
            r = c.get(f"/v1/xrefs/{quote(system, safe='')}/{quote(pattern, safe='')}")
            assert r.status_code == 404, (pattern, r.text)
            r = c.get(f"/v1/xrefs/{quote(pattern, safe='')}/{quote(key, safe='')}")
            assert r.status_code == 404, (pattern, r.text)
        r = c.post(
            "/v1/entities:batchGet",
            json={"items": [{"source_system": system, "source_key": p} for p in ("%", "_")]},
        )
        assert r.status_code == 200 and [i["ok"] for i in r.json()["results"]] == [False, False]
        for payload in PAYLOADS:
            for attributes in (
                {"full_name": payload, "birth_year": 1985},
                {"personal_id": payload},
                {"phone": payload},
                {"full_name": "Nguyễn Văn An", "date_of_birth": payload},
            ):
                r = c.post("/v1/citizen/search", json={"attributes": attributes, "limit": 5})
                _no_5xx(r)
                if payload in ("%", "_", "%_%", "a%") and r.status_code == 200:
                    # only a record whose name standardizes like the pattern may come
                    # back (the test above registered hostile text as names, born in
                    # 1985; "a%" is the name "A"): a wildcard would bring others
                    for cand in r.json()["candidates"]:
                        e = c.get(f"/v1/entities/{cand['canonical_id']}")
                        assert e.status_code == 200, e.text[:300]
                        name = e.json()["attributes"].get("full_name")
                        assert "full_name" in attributes, (attributes, r.text[:300])
                        assert name == standardize_name(payload)[0], (attributes, name)
            r = c.get(f"/v1/entities/{quote(payload[:300], safe='')}")
            assert r.status_code in (400, 404, 422), r.text[:300]


def test_subscriptions_take_hostile_text(registry: Registry) -> None:
    with Session(registry.engine) as session:
        key = create_client(
            session,
            f"sec-subs-{uuid.uuid4().hex[:8]}",
            [*(s for s in ALL_SCOPES if s != "*:write"), "subscriptions:manage"],  # writes nothing
        ).key
        session.commit()
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=registry.base_url, headers=headers, timeout=30) as c:
        for payload in PAYLOADS:
            for body in (
                {"url": f"https://93.184.216.34/hook?x={quote(payload[:500])}"},
                {"url": "https://93.184.216.34/" + payload[:500]},
                {"url": "https://93.184.216.34/h", "filters": {"canonical_ids": [payload[:200]]}},
                {"url": "https://93.184.216.34/h", "filters": {"entity_types": [payload[:50]]}},
            ):
                r = c.post("/v1/subscriptions", json=body)
                _no_5xx(r)
                if r.status_code in (200, 201):
                    sub = r.json()
                    assert sub["url"] == body["url"]
                    got = c.get(f"/v1/subscriptions/{sub['id']}")
                    assert got.status_code == 200 and got.json()["url"] == body["url"]


@pytest.fixture
def console(registry: Registry, console_url: str) -> Iterator[tuple[httpx.Client, str]]:
    username = f"sec-senior-{uuid.uuid4().hex[:6]}"
    with Session(registry.engine) as session:
        create_steward(session, username, "senior", "correct horse battery")
        session.commit()
    client, csrf = login(console_url, username, "correct horse battery")
    try:
        yield client, csrf
    finally:
        client.close()


def test_console_escapes_and_survives_hostile_text(
    registry: Registry, console: tuple[httpx.Client, str]
) -> None:
    client, csrf = console
    before = _tables(registry.engine)
    system, _key, cid = registry.xref
    for payload in (p[:8000] for p in PAYLOADS):  # a URL holds ~64 KB at most
        for params in (
            {"q": payload},
            {"system": payload, "key": payload},
            {"system": system, "key": payload},
            {"name": payload, "birth_year": "1985"},
            {"identifier": payload},
            {"name": "Nguyễn Văn An", "birth_year": payload},
        ):
            r = client.get("/steward/search", params=params)
            _no_5xx(r)
            assert r.status_code in (200, 303, 400, 422), (params, r.status_code)
            # found nothing: a wildcard or a quote must not match the first record
            assert r.status_code != 303, (params, r.headers.get("location"))
            assert SCRIPT not in r.text and "<img src=x" not in r.text
    # an override reason (and value) full of markup is stored literally, shown escaped
    attribute = "ethnicity"
    r = client.post(
        f"/steward/entity/{cid}/override",
        data={"attribute": attribute, "value": SCRIPT, "reason": SCRIPT + "' OR 1=1 --",
              "csrf_token": csrf},
    )  # fmt: skip
    _no_5xx(r)
    assert r.status_code == 303, r.text[:500]
    page = client.get(f"/steward/entity/{cid}")
    assert page.status_code == 200
    assert SCRIPT not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    with registry.engine.connect() as conn:
        reasons = [
            str(x) for x in conn.execute(text("SELECT reason FROM attribute_overrides")).scalars()
        ]
    assert SCRIPT + "' OR 1=1 --" in reasons
    assert _tables(registry.engine) == before


def test_console_login_with_hostile_credentials(console_url: str) -> None:
    with httpx.Client(base_url=console_url, timeout=30) as client:
        for payload in PAYLOADS:
            form = client.get("/steward/login")
            r = client.post(
                "/steward/login",
                data={"username": payload, "password": payload, "csrf_token": csrf_of(form.text)},
            )
            _no_5xx(r)
            assert r.status_code in (200, 400, 401, 403, 422, 429), r.status_code
            assert "steward_session" not in r.cookies and SCRIPT not in r.text


def test_ingest_stores_hostile_text_literally(fresh_db_url: str, tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "source_system: sec-ingest\nentity_type: citizen\nformat: jsonl\nsource_key: k\n"
        "fields:\n  full_name: name\n  permanent_address: address\n",
        encoding="utf-8",
    )
    rows = [{"k": p[:150] + f"-{i}", "name": p, "address": p} for i, p in enumerate(PAYLOADS)]
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", "utf-8")
    engine = make_engine(fresh_db_url)
    try:
        before = _tables(engine)
        s = ingest_file(engine, load_mapping(mapping), f, report_dir=tmp_path / "rep")
        assert s.read == len(rows) and s.new + s.rejected == len(rows)
        stored = 0
        for row in rows:
            raw = _stored_raw(engine, "sec-ingest", row["k"])
            if raw is not None:
                stored += 1
                assert raw == row
        assert stored == s.new
        assert _tables(engine) == before
    finally:
        engine.dispose()
