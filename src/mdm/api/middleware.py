"""Request-size limits, as pure ASGI middleware: the body (:class:`BodySizeLimit`)
and the request line plus headers (:class:`HeaderSizeLimit`).

The body is read here, counting bytes, before the application sees it: a declared
``Content-Length`` over the limit is refused at once, and a chunked body (no length)
is refused as soon as the running count passes the limit, so an oversized upload
never reaches JSON parsing and never sits whole in memory. Bodies under the limit are
replayed to the application unchanged.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send, message: str) -> None:
        body = orjson.dumps({"error": "payload_too_large", "detail": message})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        text = f"the request body exceeds the limit of {limit} bytes"
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._refuse(send, text)
                    return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            part: bytes = message.get("body", b"")
            size += len(part)
            if size > limit:
                await self._refuse(send, text)
                return
            chunks.append(part)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def head_too_large_body(limit: int) -> bytes:
    """The 431 body, the same from the server (mdm.http_server) and from here."""
    return orjson.dumps(
        {
            "error": "header_too_large",
            "detail": f"the request line and headers exceed the limit of {limit} bytes",
        }
    )


class HeaderSizeLimit:
    """431 ``header_too_large`` for a request line plus headers over ``max_bytes``.

    The registry's own server refuses such a head before reading it whole
    (mdm.http_server); this is the same check, on the head as the server parsed it,
    for an application run under another server. The size is that of the head as it
    travelled: ``METHOD target HTTP/1.1`` and each ``name: value`` with its line end.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string") or b""
        size = len(scope["method"]) + len(path) + len(query) + (1 if query else 0) + 13
        for name, value in scope["headers"]:
            size += len(name) + len(value) + 4
        if size <= self.max_bytes:
            await self.app(scope, receive, send)
            return
        body = head_too_large_body(self.max_bytes)
        await send(
            {
                "type": "http.response.start",
                "status": 431,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
