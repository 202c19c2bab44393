"""The relay's HTTP client: every connection checked and pinned.

:class:`PinningBackend` is an httpcore network backend that resolves the host
itself, has the :class:`~mdm.events.destinations.DestinationPolicy` check every
address, and connects to a checked address, delegating the socket work to httpcore's
own backend; the HTTP client never resolves the name again (DNS rebinding). httpcore
then starts TLS on that stream with the URL's host name (SNI, certificate check),
and the ``Host`` header names it too. :func:`pinned_client` builds an
``httpx.Client`` on it: no redirects followed, no proxies from the environment.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from mdm.events.destinations import DestinationPolicy, DestinationRefused


class PinningBackend(httpcore.NetworkBackend):
    """httpcore's network backend, but every TCP connection is checked: the host is
    resolved here, every address checked by the policy, and the connection made to a
    checked address (so the HTTP client never resolves the name itself). TLS is
    started by httpcore on the stream returned, with the URL's host as SNI."""

    def __init__(self, policy: DestinationPolicy, backend: httpcore.NetworkBackend | None = None):
        self.policy = policy
        self._backend = backend or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.policy.vet(host, port)
        deadline = None if timeout is None else time.monotonic() + timeout
        last: Exception | None = None
        for addr in addresses:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            try:
                return self._backend.connect_tcp(
                    addr,
                    port,
                    timeout=left,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        if last is None:
            raise httpcore.ConnectTimeout("timed out")
        raise last

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise DestinationRefused()

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class PinnedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connection pool connects through a
    :class:`PinningBackend` (no proxies from the environment)."""

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(verify=verify, trust_env=False, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=PinningBackend(policy),
        )


def pinned_client(
    policy: DestinationPolicy,
    *,
    timeout: float,
    headers: dict[str, str] | None = None,
    keepalive: int = 20,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Client:
    """The relay's HTTP client: checked, pinned connections; no redirects followed;
    no proxies from the environment. ``verify``: the CA bundle's context by default."""
    limits = httpx.Limits(max_keepalive_connections=keepalive)
    return httpx.Client(
        transport=PinnedTransport(policy, limits=limits, verify=verify),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers=headers,
    )
