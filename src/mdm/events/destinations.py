"""Where webhooks may point: public addresses only, unless an operator allows more.

A subscription's URL is checked when it is created or changed, and again each time
the relay opens a connection for it (a name may resolve elsewhere by then: DNS
rebinding). Both checks resolve the host and require *every* address it resolves
to to be allowed; the relay then connects to an address it checked (it does not let
the HTTP client resolve the name again). TLS still verifies, and SNI and ``Host``
still name, the URL's host.

Refused, unless allowed below: loopback, unspecified, link-local, private (RFC 1918,
ULA ``fc00::/7``), shared address space (``100.64.0.0/10``), multicast, reserved,
broadcast and documentation ranges, the IPv6 forms that embed such an IPv4 address
(mapped ``::ffff:a.b.c.d``, compatible ``::a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4
``2002::/16``), and cloud metadata services (:data:`METADATA_NETWORKS`,
:data:`METADATA_NAMES`). Integer, hex and octal IPv4 forms (``2130706433``,
``0x7f000001``, ``0177.0.0.1``) are read as the address they stand for.

Operators may allow more (``mdm.config.Settings``): ``webhook_allow_private`` allows
every non-public address, ``webhook_allowed_networks`` the listed CIDRs. A metadata
address stays refused unless a listed CIDR lies inside a metadata network and holds
it (``169.254.169.254/32``; ``0.0.0.0/0`` or ``allow_private`` is not enough).

The relay's connections go through :mod:`mdm.events.pinned_http`. See
docs/events.md, "Where webhooks may point".
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mdm.exceptions import BadRequest, ConfigError

if TYPE_CHECKING:
    from mdm.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: ``(host, port) -> addresses`` (strings); raises ``OSError`` if the name does not resolve
Resolver = Callable[[str, int], Sequence[str]]

NOT_PUBLIC = "the webhook URL's host is not a public address"
UNRESOLVED = "the webhook URL's host name does not resolve"
#: what a delivery records when the relay refuses to connect (no address, no port)
REFUSED_ERROR = "destination refused"
UNRESOLVED_ERROR = "destination refused: host name does not resolve"


class DestinationRefused(BadRequest):
    """The webhook URL points where webhooks may not go."""

    code = "webhook_destination_refused"

    def __init__(self, detail: str = NOT_PUBLIC, *, delivery_error: str = REFUSED_ERROR) -> None:
        super().__init__(detail)
        #: the generic text a delivery records when the relay refuses to connect
        self.delivery_error = delivery_error


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# IANA special-purpose IPv4 ranges that are not globally reachable, plus multicast
# and the reserved 240/4 (with the broadcast address).
_NOT_PUBLIC_V4 = _nets(
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
# IPv6: only global unicast (2000::/3) can be public; within it these are not.
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NOT_PUBLIC_V6 = _nets("2001::/23", "2001:db8::/32", "3fff::/20")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = _nets("64:ff9b::/96", "64:ff9b:1::/48")
_6TO4 = ipaddress.IPv6Network("2002::/16")

#: cloud metadata and platform services: refused even where private addresses are
#: allowed (all of IPv4 link-local: AWS, GCP, Azure, OpenStack metadata and the
#: AWS ECS, DNS and time endpoints live there)
METADATA_NETWORKS = _nets(
    "169.254.0.0/16",
    "fd00:ec2::254/128",
    "100.100.100.200/32",  # Alibaba Cloud
    "168.63.129.16/32",  # Azure WireServer (a public address)
    "192.0.0.192/32",  # Oracle Cloud
)
#: host names of metadata services (refused whatever they resolve to, unless every
#: address is explicitly listed)
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
    }
)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4)."""
    if ip in _MAPPED:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _COMPATIBLE and int(ip) > 1:  # not :: or ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in n for n in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _6TO4:
        return ip.sixtofour
    return None


def is_public(ip: IPAddress) -> bool:
    """Globally reachable unicast, also through any IPv4 address it embeds."""
    if isinstance(ip, ipaddress.IPv6Address):
        v4 = embedded_ipv4(ip)
        if v4 is not None:
            return ip not in _NAT64[1] and is_public(v4)
        return ip in _GLOBAL_UNICAST and not any(ip in n for n in _NOT_PUBLIC_V6)
    return ip.is_global and not any(ip in n for n in _NOT_PUBLIC_V4)


def _forms(ip: IPAddress) -> list[IPAddress]:
    """The address and, for IPv6, the IPv4 address it embeds."""
    forms: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        v4 = embedded_ipv4(ip)
        if v4 is not None:
            forms.append(v4)
    return forms


def is_metadata(ip: IPAddress) -> bool:
    return any(f in n for f in _forms(ip) for n in METADATA_NETWORKS)


def _inside(inner: IPNetwork, outer: IPNetwork) -> bool:
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.subnet_of(outer)
    return False


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDRs (or single addresses); ``ValueError`` names a bad entry."""
    out: list[IPNetwork] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"MDM_WEBHOOK_ALLOWED_NETWORKS: {entry!r} is not an IP network "
                "(write CIDRs such as 10.20.0.0/16, separated by commas)"
            ) from None
    return tuple(out)


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the operating system's resolver)."""
    out: list[str] = []
    for _family, _type, _proto, _name, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        addr = str(sockaddr[0])
        if len(sockaddr) == 4 and sockaddr[3]:  # an IPv6 scope (link-local)
            addr = f"{addr}%{sockaddr[3]}"
        if addr not in out:
            out.append(addr)
    return out


def _literal(host: str) -> IPAddress | None:
    """An IP address written as the host, including the integer, hex and octal IPv4
    forms the system resolver accepts (``2130706433``, ``0x7f000001``)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class DestinationPolicy:
    """Which addresses webhooks may reach, and how names are resolved.

    The default refuses every non-public address; :meth:`from_settings` applies the
    operator's ``MDM_WEBHOOK_ALLOW_PRIVATE`` and ``MDM_WEBHOOK_ALLOWED_NETWORKS``.
    """

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> DestinationPolicy:
        if settings is None:
            from mdm.config import get_settings

            settings = get_settings()
        try:
            networks = parse_networks(settings.webhook_allowed_networks)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return cls(allow_private=settings.webhook_allow_private, allowed_networks=networks)

    def _listed(self, ip: IPAddress) -> bool:
        return any(f in n for f in _forms(ip) for n in self.allowed_networks)

    def _listed_metadata(self, ip: IPAddress) -> bool:
        """A listed network inside a metadata network holds the address."""
        return any(
            f in n and any(_inside(n, m) for m in METADATA_NETWORKS)
            for f in _forms(ip)
            for n in self.allowed_networks
        )

    def allows(self, ip: IPAddress, *, metadata_name: bool = False) -> bool:
        """Whether a webhook may connect to ``ip`` (``metadata_name``: the URL named a
        metadata service)."""
        if metadata_name or is_metadata(ip):
            return self._listed_metadata(ip)
        return is_public(ip) or self.allow_private or self._listed(ip)

    def vet(self, host: str, port: int) -> list[str]:
        """Resolve ``host``; the addresses to connect to, all of them allowed, or
        :class:`DestinationRefused`."""
        name = host.strip("[]").rstrip(".").lower()
        literal = _literal(name)
        if literal is not None:
            if not self.allows(literal):
                raise DestinationRefused()
            return [str(literal)]
        metadata_name = name in METADATA_NAMES
        if metadata_name and not any(
            _inside(n, m) for n in self.allowed_networks for m in METADATA_NETWORKS
        ):
            raise DestinationRefused()  # not even looked up
        try:
            found = list(self.resolver(name, port))
        except (OSError, UnicodeError):
            found = []
        if not found:
            raise DestinationRefused(UNRESOLVED, delivery_error=UNRESOLVED_ERROR)
        for addr in found:
            try:
                ip = ipaddress.ip_address(addr)
            except ValueError:
                raise DestinationRefused() from None
            if not self.allows(ip, metadata_name=metadata_name):
                raise DestinationRefused()
        return found

    def check_url(self, url: str) -> str:
        """``url`` if it is an absolute http(s) URL whose host webhooks may reach;
        otherwise :class:`~mdm.exceptions.BadRequest` (``DestinationRefused`` for the
        host)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadRequest("the webhook URL must be an absolute http(s) URL")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise BadRequest("the webhook URL's port is not valid") from None
        if port == 0:
            raise BadRequest("the webhook URL's port is not valid")
        self.vet(parts.hostname, port)
        return url
