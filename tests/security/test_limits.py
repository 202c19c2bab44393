"""Oversized payloads (issue 11), beside tests/api/test_limits.py: the stewards'
console forms get the same 413 before parsing as the API, also for chunked bodies
without a length, and batchGet refuses more than 1,000 items with a 422 naming
``/items``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from tests.api.conftest import Registry

BIG = 2 * 1024 * 1024  # over the default 1 MiB limit


def _chunks() -> Iterator[bytes]:
    for _ in range(BIG // 65536):
        yield b"reason=" + b"x" * 65529


def test_console_forms_over_the_limit_are_413(console_url: str) -> None:
    with httpx.Client(base_url=console_url, timeout=60) as c:
        for path in ("/steward/login", "/steward/entity/P-0000000000000/override",
                     "/steward/review/1/decide"):  # fmt: skip
            r = c.post(path, data={"username": "x" * BIG, "password": "y", "csrf_token": "z"})
            assert r.status_code == 413, (path, r.status_code)
            r = c.post(
                path,
                content=_chunks(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert r.status_code == 413, (path, "chunked", r.status_code)
        # the console still answers afterwards
        assert c.get("/steward/login").status_code == 200


def test_batch_get_item_limit(registry: Registry) -> None:
    cid = registry.ids["citizen"][0]
    with registry.client("reader") as c:
        r = c.post("/v1/entities:batchGet", json={"items": [{"id": cid}] * 1000})
        assert r.status_code == 200 and len(r.json()["results"]) == 1000
        r = c.post("/v1/entities:batchGet", json={"items": [{"id": cid}] * 1001})
        assert r.status_code == 422, r.text[:300]
        body = r.json()
        assert body["error"] == "validation_error"
        assert body["detail"][0]["pointer"] == "/items", body
