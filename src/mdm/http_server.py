"""uvicorn as the registry runs it (``mdm serve``, ``mdm demo``, the tests' servers).

Two things differ from uvicorn's defaults, both set by :func:`uvicorn_options`:

* **A bounded request head.** The request line and the headers together may take at
  most ``MDM_HTTP_MAX_HEADER_BYTES`` (default 16 KiB). Past that the connection is
  answered 431 with the registry's error body (``header_too_large``) and closed,
  without reading the rest. httptools (llhttp) has no such limit: it accumulates a
  header however long it is and hands it over only when complete, so an 8 MB header
  was read, and held, whole. :class:`HeadLimitedHttpTools` therefore counts the bytes
  it feeds to the parser while a head is being read, not the parser's callbacks.
  uvicorn's h11 implementation gets the same number as
  ``h11_max_incomplete_event_size`` (h11 answers 400 there, uvicorn's choice).
* **Forwarded headers only from known proxies.** uvicorn believes ``X-Forwarded-For``
  and ``X-Forwarded-Proto`` from any loopback peer by default, so any process on the
  host could choose the client address that the console's login throttle and the
  audit log record. They are believed only from ``MDM_TRUSTED_PROXIES`` (addresses or
  networks, comma-separated; empty: from nobody).

The application checks the head size once more (:class:`mdm.api.middleware.HeaderSizeLimit`)
for servers other than this one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from mdm.api.middleware import head_too_large_body
from mdm.config import Settings, get_settings
from mdm.exceptions import ConfigError

log = logging.getLogger(__name__)


class HeadLimitedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a limit on the bytes of a request head.

    The limit is the config's ``h11_max_incomplete_event_size`` (one number for both
    implementations), else ``MDM_HTTP_MAX_HEADER_BYTES``. A head is counted from the
    first byte after the previous message (or the connection's start) to the end of
    its headers; data that would pass the limit is fed only up to it, so a head that
    ends within the limit is never refused because its body came in the same packet.
    (A pipelined request whose head starts inside the packet that ended the previous
    message is counted from that packet's next byte: it may reach twice the limit.)
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head = config.h11_max_incomplete_event_size or get_settings().http_max_header_bytes
        self.head_bytes = 0
        self.in_head = True

    def on_headers_complete(self) -> None:
        self.in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head, self.head_bytes = True, 0

    def data_received(self, data: bytes) -> None:
        while data:
            if not self.in_head:
                super().data_received(data)
                return
            room = self.max_head - self.head_bytes
            if len(data) <= room:
                self.head_bytes += len(data)
                super().data_received(data)
                return
            # Feed only what fits: the head may end inside it.
            part, data = data[:room], data[room:]
            self.head_bytes += len(part)
            if part:
                super().data_received(part)
            if self.transport.is_closing():
                return
            if self.in_head and self.head_bytes >= self.max_head:
                self.refuse_head()
                return

    def refuse_head(self) -> None:
        """431 and close; if a response of an earlier request on this connection is
        still being written, close only (a response cannot be inserted into it)."""
        log.warning("request head over %d bytes refused (431)", self.max_head)
        if self.cycle is None or self.cycle.response_complete:
            body = head_too_large_body(self.max_head)
            content = [STATUS_LINE[431]]
            for name, value in self.server_state.default_headers:
                content.extend([name, b": ", value, b"\r\n"])
            content.extend(
                [
                    b"content-type: application/json\r\n",
                    b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                    b"connection: close\r\n",
                    b"\r\n",
                    body,
                ]
            )
            self.transport.write(b"".join(content))
        self.transport.close()


def trusted_proxies(settings: Settings | None = None) -> list[str]:
    """``MDM_TRUSTED_PROXIES`` as networks (``10.0.0.1`` → ``10.0.0.1/32``); a typo is a
    :class:`ConfigError`, not an entry uvicorn would silently compare as text."""
    raw = (settings or get_settings()).trusted_proxies
    out: list[str] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(
                f"MDM_TRUSTED_PROXIES: {item!r} is not an IP address or network"
            ) from None
    return out


def uvicorn_options(settings: Settings | None = None) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.Config`` / ``uvicorn.run`` that every server
    of the registry gets (see the module's docstring)."""
    cfg = settings or get_settings()
    trusted = trusted_proxies(cfg)
    return {
        "http": HeadLimitedHttpTools,
        "h11_max_incomplete_event_size": cfg.http_max_header_bytes,
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted,
    }
