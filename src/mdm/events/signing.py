"""Webhook signatures: HMAC-SHA256 over the timestamp and the body.

``X-MDM-Signature: v1=<hex>`` where ``hex = HMAC-SHA256(secret, f"{timestamp}.{body}")``
and ``timestamp`` is the ``X-MDM-Timestamp`` header (Unix seconds). Signing the
timestamp with the body lets a receiver reject replays: a captured request cannot be
re-sent later with a fresh timestamp. docs/events.md shows verification in Python
and Node.js; :func:`verify` is the reference.
"""

from __future__ import annotations

import hashlib
import hmac
import time

REPLAY_WINDOW_SECONDS = 300


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    window: int = REPLAY_WINDOW_SECONDS,
) -> bool:
    """True if ``header`` signs ``body`` at ``timestamp`` and the timestamp is within
    ``window`` seconds of ``now``. ``header`` may hold several comma-separated
    signatures (during a secret rotation); one valid one is enough."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > window:
        return False
    expected = signature(secret, ts, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in header.split(","))
