"""Schemathesis against the change-feed and subscription operations of the OpenAPI
document: generated requests (valid and invalid), a key with both scopes, a seeded
feed. No 5xx; every response conforms to its declared schema. The live stream is
left out (it never ends); it has its own test. Postgres only: the API's concurrent
writers are the production case (SQLite has one writer)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from sqlalchemy import Engine

from mdm.events.feed import sequence_events
from tests.events.conftest import make_entities, update_entity

schemathesis = pytest.importorskip("schemathesis")

EXAMPLES = {"positive": 8, "negative": 6}


def test_events_and_subscriptions_conform_to_openapi(
    db: Engine, api: tuple[str, dict[str, str]], backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("conformance runs on Postgres")
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error, positive_data_acceptance

    ids = make_entities(db, 3)
    update_entity(db, ids[0], 1)
    with db.begin() as conn:
        sequence_events(conn)
    base, keys = api
    headers = {"Authorization": f"Bearer {keys['agency']}"}
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [
        r.ok()
        for r in schema.get_all_operations()
        if r.ok().path.startswith(("/v1/events", "/v1/subscriptions"))
        and r.ok().path != "/v1/events/stream"
    ]
    assert len(operations) == 12, [op.label for op in operations]
    seen: dict[str, set[int]] = {}
    for op in operations:
        for mode_name, examples in EXAMPLES.items():
            mode = GenerationMode(mode_name)

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                response = case.call(base_url=base, headers=headers, timeout=30)
                assert response.status_code < 500, (case.as_curl_command(), response.text)
                case.validate_response(
                    response,
                    headers=headers,
                    excluded_checks=[positive_data_acceptance, not_a_server_error],
                )
                seen.setdefault(case.operation.label, set()).add(response.status_code)

            try:
                check()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE
    assert 200 in seen["GET /v1/events"], seen
    assert 201 in seen["POST /v1/subscriptions"], seen
