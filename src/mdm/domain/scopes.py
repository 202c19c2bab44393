"""The scope rule of API keys, shared by the API and the event relay: a key may do
``action`` on ``entity_type`` when it holds ``{entity_type}:{action}`` or ``*:{action}``."""

from __future__ import annotations

from collections.abc import Collection


def has_scope(scopes: Collection[str], entity_type: str, action: str) -> bool:
    return f"{entity_type}:{action}" in scopes or f"*:{action}" in scopes
