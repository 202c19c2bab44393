"""Per-client rate limits (429 + Retry-After) and the request-size limit (413, also
for chunked bodies that declare no length)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
from sqlalchemy.orm import Session

from mdm.services.clients import create_client
from tests.api.conftest import Registry


def test_rate_limit_answers_429_with_retry_after(registry: Registry) -> None:
    with Session(registry.engine) as session:
        slow = create_client(session, "slow", ["*:read"], rate_limit_per_minute=3).key
        session.commit()
    cid = registry.ids["citizen"][0]
    with httpx.Client(base_url=registry.base_url, headers={"X-API-Key": slow}) as c:
        codes = [c.get(f"/v1/entities/{cid}").status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        limited = c.get(f"/v1/entities/{cid}")
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        retry_after = int(limited.headers["Retry-After"])
        assert 1 <= retry_after <= 20  # 3 a minute: one token every 20 s
        # other clients are not affected
    with registry.client("reader") as other:
        assert other.get(f"/v1/entities/{cid}").status_code == 200


def _batch_of(size: int) -> bytes:
    # a syntactically valid body, padded with whitespace up to ``size`` bytes
    head = b'{"items": []}'
    return head + b" " * (size - len(head))


def test_body_over_the_limit_is_413(registry: Registry) -> None:
    with registry.client("reader") as c:
        ok = c.post(
            "/v1/entities:batchGet",
            content=_batch_of(1024 * 1024),
            headers={"Content-Type": "application/json"},
        )
        assert ok.status_code == 200, ok.text
        too_big = c.post(
            "/v1/entities:batchGet",
            content=_batch_of(1024 * 1024 + 1),
            headers={"Content-Type": "application/json"},
        )
        assert too_big.status_code == 413
        assert too_big.json()["error"] == "payload_too_large"


def test_chunked_body_over_the_limit_is_413(registry: Registry) -> None:
    def chunks(total: int) -> Iterator[bytes]:
        body = _batch_of(total)
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    with registry.client("reader") as c:
        small = c.post(
            "/v1/entities:batchGet",
            content=chunks(200_000),
            headers={"Content-Type": "application/json"},
        )
        assert small.status_code == 200, small.text
        assert small.request.headers.get("transfer-encoding") == "chunked"
        big = c.post(
            "/v1/entities:batchGet",
            content=chunks(3 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        )
        assert big.status_code == 413
        assert big.request.headers.get("transfer-encoding") == "chunked"
        assert big.json()["error"] == "payload_too_large"
