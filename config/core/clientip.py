"""The caller's IP address: the one place that decides whether `X-Forwarded-For` is believed.

Anyone can send `X-Forwarded-For`, so the header says something only when the request reached
us from a proxy we run. `RIFF_TRUSTED_PROXIES` lists those proxies (IPs or CIDRs); empty, the
default, means the TCP peer (`REMOTE_ADDR`) is the client and forwarding headers are ignored.

When the peer is a trusted proxy, the header is read from the right, the end our own proxies
append to: each trusted hop is skipped and the first address that is not one of ours is the
client. Whatever a client writes to the left of that (a spoofed chain) is never reached. Rate
limits, the admin login throttle and the `/metrics` allow-list all key on `client_ip()`.

uvicorn is started with `--no-proxy-headers` (config/devserver.py, docs/operations.md) so that
it leaves `REMOTE_ADDR` as the TCP peer and this module alone interprets the header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def parse_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """`("10.0.0.0/8", "127.0.0.1")` -> networks; a typo is a configuration error, not a no-op."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(f"{entry!r} is not an IP address or CIDR") from exc
    return tuple(networks)


def parse_address(raw: str | None) -> Address | None:
    """An address from a header or REMOTE_ADDR, or None when it is not one."""
    try:
        address = ipaddress.ip_address((raw or "").strip())
    except ValueError:
        return None
    # Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d; compare them as IPv4.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_in(address: Address | None, entries: Iterable[str]) -> bool:
    if address is None:
        return False
    return any(address in network for network in parse_networks(tuple(entries)))


def _trusted(address: Address | None) -> bool:
    return address_in(address, settings.RIFF_TRUSTED_PROXIES)


def forwarded_by_trusted_proxy(request: Any) -> bool:
    """Whether the TCP peer is one of our proxies (so its forwarding headers count)."""
    return _trusted(parse_address(request.META.get("REMOTE_ADDR")))


def client_ip(request: Any) -> str:
    """The caller's address as a string, for rate-limit keys and allow-lists.

    `request` is a Django `HttpRequest` or a DRF `Request` (anything with `.META`).
    """
    meta = request.META
    peer_raw = meta.get("REMOTE_ADDR") or ""
    peer = parse_address(peer_raw)
    if peer is None:
        # No socket address (some test harnesses, unix sockets): one shared bucket.
        return peer_raw or "unknown"
    if not _trusted(peer):
        return str(peer)
    client = peer
    # Django joins repeated X-Forwarded-For headers with ",", so one split sees every hop.
    for hop in reversed(meta.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        address = parse_address(hop)
        if address is None:
            # Not something a proxy of ours writes: believe nothing further left of it.
            break
        client = address
        if not _trusted(address):
            break
    return str(client)
