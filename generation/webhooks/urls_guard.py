"""Which URLs a webhook endpoint may have: the server-side request forgery guard.

A webhook makes Riff's workers send requests to a URL a user chose, from inside Riff's
network. Without a guard a user could point one at the cloud metadata service
(169.254.169.254), at Redis or PostgreSQL on loopback, or at anything on the private network,
and read the first kilobyte of its answers in the delivery log. So a URL must be:

- `http` or `https` with a host, no credentials, at most 2000 characters, ASCII apart from an
  internationalised host name (sent in its IDNA form);
- on a host whose every resolved address is public: not private, loopback, link-local,
  multicast, reserved, unspecified or shared (CGNAT), nor an IPv6 form that embeds one of
  those (IPv4-mapped, 6to4, NAT64); and not a `localhost`-like or single-label name, which
  resolvers answer from /etc/hosts or a search domain.

`RIFF_WEBHOOK_ALLOW_PRIVATE=1` lifts the address and name rules (tests, closed networks).

The check runs when an endpoint is registered and again at every delivery. A name can resolve
to a public address at registration and to a private one later (DNS rebinding), so a delivery
resolves the name once, checks what it got, and connects to exactly those addresses
(generation.webhooks.transport), never resolving again.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

MAX_URL_CHARS = 2000
DEFAULT_PORTS = {"http": 80, "https": 443}
# Names that resolve to this machine or the local network whatever public DNS says.
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
LOCAL_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".home.arpa", ".lan")
# NAT64's well-known prefix carries an IPv4 address in its last 32 bits (RFC 6052).
NAT64 = ipaddress.ip_network("64:ff9b::/96")
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_HOST_CHARS = re.compile(r"[a-z0-9_.-]+")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlNotAllowed(Exception):
    """The URL may not be a webhook endpoint; the message says why (for the caller)."""


@dataclass(frozen=True)
class Target:
    """A vetted URL: where to connect and what to send. `host` is ASCII (IDNA) or an IP
    literal without brackets; `path` includes the query."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[IPAddress, ...] = field(default=())

    @property
    def host_is_ip(self) -> bool:
        return _ip_literal(self.host) is not None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def parse(url: object) -> Target:
    """The URL's parts, or UrlNotAllowed for anything that is not a plain http(s) URL."""
    if not isinstance(url, str) or not url:
        raise UrlNotAllowed("The URL must be a non-empty string.")
    if len(url) > MAX_URL_CHARS:
        raise UrlNotAllowed(f"The URL must be at most {MAX_URL_CHARS} characters.")
    if _UNSAFE_CHARS.search(url):
        raise UrlNotAllowed("The URL must not contain spaces, control characters or backslashes.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlNotAllowed("The URL is not valid.") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlNotAllowed("The URL must start with https:// or http://.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UrlNotAllowed("The URL must not contain a user name or password.")
    host = _host(parts.hostname or "")
    if port == 0:
        raise UrlNotAllowed("The URL's port is not valid.")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    if not path.isascii():
        raise UrlNotAllowed("The URL's path and query must be ASCII (percent-encode the rest).")
    return Target(scheme=scheme, host=host, port=port or DEFAULT_PORTS[scheme], path=path)


def _host(hostname: str) -> str:
    if not hostname:
        raise UrlNotAllowed("The URL must name a host.")
    literal = _ip_literal(hostname)
    if literal is not None:
        return str(literal)
    try:
        ascii_host = hostname.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UrlNotAllowed("The URL's host name is not valid.") from None
    if not ascii_host or len(ascii_host) > 253 or not _HOST_CHARS.fullmatch(ascii_host):
        raise UrlNotAllowed("The URL's host name is not valid.")
    if any(not label or len(label) > 63 for label in ascii_host.split(".")):
        raise UrlNotAllowed("The URL's host name is not valid.")
    return ascii_host


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def address_public(address: IPAddress) -> bool:
    """Whether a connection to `address` leaves for the public internet."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_public(embedded)
        if address.is_site_local or address.teredo is not None:
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def name_local(host: str) -> bool:
    """A name the resolver answers from the local machine or network (or may: a single
    label goes through the search domains)."""
    return host in LOCAL_NAMES or host.endswith(LOCAL_SUFFIXES) or "." not in host


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order (the one seam tests replace).
    Raises UrlNotAllowed when it resolves to nothing."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise UrlNotAllowed("The URL's host name does not resolve.") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UrlNotAllowed("The URL's host name does not resolve.")
    return addresses


def vet(url: object, *, allow_private: bool | None = None) -> Target:
    """The URL's target with the addresses to connect to, or UrlNotAllowed. Resolves the host
    (a DNS lookup: not to be called while holding locks)."""
    target = parse(url)
    if allow_private is None:
        allow_private = settings.RIFF_WEBHOOK_ALLOW_PRIVATE
    literal = _ip_literal(target.host)
    if literal is None and not allow_private and name_local(target.host):
        raise UrlNotAllowed("The URL's host must be a public name, not a local one.")
    addresses = [literal] if literal is not None else resolve_host(target.host, target.port)
    if not allow_private and not all(address_public(address) for address in addresses):
        raise UrlNotAllowed(
            "The URL's host must have public addresses only, not private, loopback, "
            "link-local or reserved ones."
        )
    return Target(
        scheme=target.scheme,
        host=target.host,
        port=target.port,
        path=target.path,
        addresses=tuple(addresses),
    )
