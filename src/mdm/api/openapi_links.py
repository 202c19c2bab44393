"""OpenAPI links: which answer feeds which next request.

A registration answers a canonical ID that the lookup, the history and the xref
endpoints accept; a created subscription an ID that its own endpoints take. The
links document that for clients, and let a stateful tester (schemathesis'
state machine) chain real calls instead of guessing IDs.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

_ENTITY = "/v1/entities/{id}"
_SUBSCRIPTION = "/v1/subscriptions/{subscription_id}"

# (path, method, status) -> {link name: (target path, target method, parameters)}
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {
    ("/v1/{entity_type}/records", "post", "200"): {
        "GetEntity": (_ENTITY, "get", {"id": "$response.body#/canonical_id"}),
        "GetEntityHistory": (_ENTITY + "/history", "get", {"id": "$response.body#/canonical_id"}),
        "GetXref": (
            "/v1/xrefs/{source_system}/{source_key}",
            "get",
            {
                "source_system": "$response.body#/source_system",
                "source_key": "$response.body#/source_key",
            },
        ),
    },
    ("/v1/xrefs/{source_system}/{source_key}", "get", "200"): {
        "GetEntity": (_ENTITY, "get", {"id": "$response.body#/canonical_id"}),
    },
    ("/v1/subscriptions", "post", "201"): {
        f"{name}Subscription": (
            _SUBSCRIPTION + suffix,
            method,
            {"subscription_id": "$response.body#/id"},
        )
        for name, suffix, method in (
            ("Get", "", "get"),
            ("Patch", "", "patch"),
            ("Delete", "", "delete"),
            ("Pause", "/pause", "post"),
            ("Resume", "/resume", "post"),
            ("ListDeliveriesOf", "/deliveries", "get"),
        )
    },
}


def _ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def add_links(schema: dict[str, Any]) -> dict[str, Any]:
    """Add :data:`LINKS` to a generated OpenAPI document (in place; also returned)."""
    paths = schema.get("paths", {})
    for (path, method, status), links in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        out = response.setdefault("links", {})
        for name, (target, target_method, parameters) in links.items():
            if target_method in paths.get(target, {}):
                out[name] = {"operationRef": _ref(target, target_method), "parameters": parameters}
    return schema


def install_links(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the document with its links."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_links(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
