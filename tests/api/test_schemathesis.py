"""Schemathesis against the running app's OpenAPI document (issue 7, acceptance 1):
generated requests (valid and invalid) to every operation, with a key holding every
scope, on a seeded database. No 5xx; every response conforms to its declared schema
(status code, content type, headers, body). Excluded: "positive data acceptance",
because a schema-valid canonical ID can still be malformed (wrong check character:
400 ``malformed_id`` by design, which no JSON Schema pattern can express). Bounded:
a few dozen examples per operation and mode, so the whole test stays under a
minute per backend."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, positive_data_acceptance
from sqlalchemy.orm import Session

from mdm.services.clients import create_client
from tests.api.conftest import ALL_SCOPES, Registry

EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 20}
# Every operation of the OpenAPI is exercised (the endless SSE stream excepted);
# these must be among them.
MINE = {
    "GET /healthz",
    "GET /readyz",
    "GET /v1/entities/{id}",
    "GET /v1/entities/{id}/history",
    "GET /v1/xrefs/{source_system}/{source_key}",
    "POST /v1/entities:batchGet",
    "POST /v1/{entity_type}/search",
    "POST /v1/{entity_type}/records",
    "GET /v1/events",
    "POST /v1/subscriptions",
}
SLOW = {"POST /v1/{entity_type}/records": 8}  # each registration matches and writes
# The key writes this source system only: registrations with a source key of even
# length are sent under it, the others keep their generated system (403 forbidden).
WRITES = "schemathesis"


def test_api_conforms_to_its_openapi(registry: Registry) -> None:
    with Session(registry.engine) as session:
        key = create_client(
            session,
            "schemathesis",
            [*ALL_SCOPES, "events:read", "subscriptions:manage"],
            rate_limit_per_minute=1_000_000,
            source_systems=[WRITES],
        ).key
        session.commit()
    headers = {"Authorization": f"Bearer {key}", "X-Purpose": "conformance test"}
    schema = schemathesis.openapi.from_url(f"{registry.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= MINE
    operations = [op for op in operations if "/stream" not in op.label]
    statuses: dict[str, set[int]] = {}
    for op in operations:
        for mode, examples in EXAMPLES.items():
            count = min(examples, SLOW.get(op.label, examples))

            @settings(
                max_examples=count,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                body = case.body
                if case.operation.label == "POST /v1/{entity_type}/records" and isinstance(
                    body, dict
                ):
                    system, source_key = body.get("source_system"), body.get("source_key")
                    # a valid system for a valid one: a negative case stays negative
                    valid = isinstance(system, str) and 0 < len(system) <= 100
                    if valid and "\x00" not in system and len(str(source_key)) % 2 == 0:
                        body["source_system"] = WRITES
                response = case.call(base_url=registry.base_url, headers=headers, timeout=30)
                # 503 model_not_trained is the one documented 5xx: this registry has a
                # model for citizens only (organizations and dossiers are too few to train)
                untrained = response.status_code == 503 and "model_not_trained" in response.text
                assert response.status_code < 500 or untrained, (
                    case.as_curl_command(),
                    response.text,
                )
                case.validate_response(
                    response,
                    headers=headers,
                    # the 5xx rule is checked above, with its one exception
                    excluded_checks=[positive_data_acceptance, not_a_server_error],
                )
                statuses.setdefault(case.operation.label, set()).add(response.status_code)

            try:
                check()
            except Unsatisfiable:
                # an operation without inputs (/healthz) has no invalid request
                assert mode == GenerationMode.NEGATIVE and op.label.startswith("GET /")
                continue
    # the generator reached real answers, not only validation errors
    assert 200 in statuses["POST /v1/entities:batchGet"], statuses
    assert 200 in statuses["POST /v1/{entity_type}/search"], statuses
