"""Which address is the client: the direct peer, or — only when the peer is a trusted proxy
(`STRATUS_TRUSTED_PROXIES`, comma-separated CIDRs) — the right-most untrusted `X-Forwarded-For`
entry. Without trusted proxies `X-Forwarded-For` is ignored, so it cannot be spoofed."""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=1)
def trusted_proxies(raw: str | None = None) -> tuple[IPNetwork, ...]:
    text = raw if raw is not None else os.environ.get("STRATUS_TRUSTED_PROXIES", "")
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in text.split(",") if p.strip())


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: tuple[IPNetwork, ...]) -> bool:
    return any(address in net for net in proxies)


def client_ip(scope: Any, proxies: tuple[IPNetwork, ...] | None = None) -> str:
    proxies = trusted_proxies() if proxies is None else proxies
    peer = (scope.get("client") or ("",))[0]
    if not proxies:
        return peer
    peer_ip = _parse(peer)
    if peer_ip is None or not _trusted(peer_ip, proxies):
        return peer
    forwarded = b",".join(v for k, v in scope.get("headers", ()) if k == b"x-forwarded-for").decode("latin-1")
    for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
        hop_ip = _parse(hop)
        if hop_ip is None:
            return peer  # a garbled chain is not trusted
        if not _trusted(hop_ip, proxies):
            return str(hop_ip)
    return peer


@lru_cache(maxsize=4096)
def _networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def allowed(address: str, cidrs: tuple[str, ...]) -> bool:
    """Is `address` inside one of `cidrs`? An empty allowlist allows every address."""
    if not cidrs:
        return True
    ip = _parse(address)
    return ip is not None and any(ip in net for net in _networks(cidrs))
