"""Text Postgres cannot store (NUL) is a client error, never a 500."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.orm import Session

from mdm.services.clients import create_client
from tests.api.conftest import ALL_SCOPES, Registry


def test_nul_in_a_registration_is_a_client_error(registry: Registry) -> None:
    with registry.client("all") as c:
        for attributes, key in (
            ({"full_name": "Nguyễn\u0000 Văn An", "date_of_birth": "1985-03-12"}, "k"),
            ({"full_name": "Nguyễn Văn An", "date_of_birth": "1985-03-12"}, "k\u0000"),
        ):
            body = {
                "source_system": "api-test",
                "source_key": f"{key}-{uuid.uuid4().hex}",
                "attributes": attributes,
            }
            r = c.post("/v1/citizen/records", json=body)
            assert r.status_code == 422, r.text
            assert set(r.json()) == {"error", "detail"}
        xref = c.get("/v1/xrefs/api-test/k%00")
        assert xref.status_code == 422, xref.text


def test_nul_in_a_subscription_is_a_client_error(registry: Registry) -> None:
    with Session(registry.engine) as session:
        key = create_client(
            session,
            f"subs-{uuid.uuid4().hex[:8]}",
            [*(s for s in ALL_SCOPES if s != "*:write"), "subscriptions:manage"],  # writes nothing
        ).key
        session.commit()
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=registry.base_url, headers=headers, timeout=30) as c:
        for body in (
            {"url": "http://0", "filters": {"canonical_ids": ["\u0000"]}},
            {"url": "http://receiver.example/hook\u0000"},
        ):
            r = c.post("/v1/subscriptions", json=body)
            assert r.status_code == 422, r.text
            assert set(r.json()) == {"error", "detail"}
