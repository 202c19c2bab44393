"""Canonical JSON: one text per value (sorted keys, no spaces, UTF-8 kept).

Used wherever a value is hashed or compared as text (content hashes of source rows,
feature hashes, golden-record comparison), so the same value always gives the same
bytes. One encoder, built once: ``json.dumps`` with options builds a new encoder per
call, which was a large part of the cost at national scale.
"""

from __future__ import annotations

import json
from typing import Any

_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)
