"""SSRF guard for webhook endpoints: which URLs and addresses a delivery may reach (issue #11 item 7).

Three layers, each usable alone:

* `check_url` judges a URL without touching the network (at endpoint creation): scheme,
  credentials, IP literals in every spelling `inet_aton` accepts, and names known to be local.
* `resolve_and_check` resolves a host and judges *every* address it resolves to, returning the
  addresses a caller may connect to.
* `guarded_session` (aiohttp) does both at every new connection: its resolver judges every
  address a name resolves to and hands only those to the connector, which connects to them
  without resolving again, so DNS rebinding between check and connect has nothing to exploit;
  its socket factory judges the address of every connect once more (IP literals included).

Plain `http` is allowed next to `https` by default: receivers on a laptop or in a test are plain
HTTP, and the Standard Webhooks signature already authenticates the body; `Policy(require_https=True)`
refuses it.

Addresses are judged against explicit tables rather than `ipaddress`'s `is_private`/`is_global`,
whose answers changed between Python patch releases (3.11.7 calls 100.64.0.0/10 neither private
nor global and `::ffff:8.8.8.8` global); `is_global` only serves as the last catch-all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import string
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

ERROR_CODE = "webhook_url_forbidden"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> addresses as strings; the default is the event loop's getaddrinfo.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class Forbidden(Exception):
    """A URL or address a webhook delivery must not reach; `reason` is safe to show the caller."""

    code = ERROR_CODE

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Policy:
    """What the guard lets through beyond the public internet.

    `allow_private` opens loopback, RFC 1918, CGNAT and ULA ranges (the dev stack's receivers run
    there); link-local, metadata, multicast, unspecified, broadcast and reserved stay refused.
    """

    allow_private: bool = False
    require_https: bool = False


_net = ipaddress.ip_network

# Refused whatever the policy says. Specific entries come before the ranges that contain them, so
# the reason names the most specific one.
_ALWAYS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (_net("169.254.169.254/32"), "cloud metadata address"),
    (_net("100.100.100.200/32"), "cloud metadata address"),  # Alibaba Cloud, inside CGNAT space
    (_net("168.63.129.16/32"), "cloud platform address"),  # Azure WireServer: a public IP, yet internal
    (_net("fd00:ec2::254/128"), "cloud metadata address"),  # AWS IMDS over IPv6, inside ULA space
    (_net("255.255.255.255/32"), "broadcast address"),
    # 0.0.0.0 reaches the local host on Linux, so the whole "this network" block goes.
    (_net("0.0.0.0/8"), "unspecified address"),
    (_net("169.254.0.0/16"), "link-local address"),
    (_net("224.0.0.0/4"), "multicast address"),
    (_net("240.0.0.0/4"), "reserved address"),
    (_net("::/128"), "unspecified address"),
    (_net("fe80::/10"), "link-local address"),
    (_net("ff00::/8"), "multicast address"),
    # Teredo hides its IPv4 client address (obfuscated), so it cannot be judged by what it embeds.
    (_net("2001::/32"), "Teredo tunnel address"),
    # Assigned in 2024, after the ipaddress tables of the Pythons we run on: not globally reachable.
    (_net("5f00::/16"), "reserved address (SRv6)"),
    (_net("3fff::/20"), "reserved address (documentation)"),
)

# Refused unless Policy.allow_private.
_PRIVATE: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (_net("127.0.0.0/8"), "loopback address"),
    (_net("10.0.0.0/8"), "private address"),
    (_net("172.16.0.0/12"), "private address"),
    (_net("192.168.0.0/16"), "private address"),
    (_net("100.64.0.0/10"), "shared address space (CGNAT)"),
    (_net("::1/128"), "loopback address"),
    (_net("fc00::/7"), "private address (ULA)"),
    (_net("fec0::/10"), "site-local address"),
    (_net("64:ff9b:1::/48"), "local-use NAT64 address"),
)

_IPV4_MAPPED = _net("::ffff:0:0/96")
_IPV4_TRANSLATED = _net("::ffff:0:0:0/96")  # SIIT (RFC 2765): a translator maps it to the IPv4
_IPV4_COMPATIBLE = _net("::/96")  # deprecated ::a.b.c.d; :: and ::1 are caught before it
_NAT64 = _net("64:ff9b::/96")

# Names that resolve to metadata services inside clouds; refused without asking DNS, whatever
# the policy, because inside the cloud they are the metadata service.
_METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)

_HOST_CHARS = frozenset(string.ascii_lowercase + string.digits + "-_.")
_DIGITS = frozenset(string.digits)
_OCTAL_DIGITS = frozenset(string.octdigits)
_HEX_DIGITS = frozenset(string.hexdigits)


def check_ip(address: str | IPAddress, policy: Policy) -> None:
    """Raise `Forbidden` unless a delivery may connect to `address` under `policy`."""
    reason = _ip_reason(_as_ip(address), policy)
    if reason is not None:
        raise Forbidden(f"{address} is {_a(reason)}")


def check_url(url: str, policy: Policy) -> None:
    """Raise `Forbidden` for a URL a webhook endpoint may not have; no network access.

    A host name that passes may still resolve to a forbidden address: that is judged at connect
    time by `resolve_and_check`.
    """
    # Backslashes, whitespace and control characters are where URL parsers disagree (a WHATWG
    # parser reads `\` as `/`); a webhook URL never needs them, so refuse rather than guess.
    if "\\" in url or any(c.isspace() or not c.isprintable() for c in url):
        raise Forbidden("the URL contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Forbidden(f"the URL cannot be parsed: {exc}") from None
    scheme = parts.scheme.lower()
    allowed = ("https",) if policy.require_https else ("https", "http")
    if scheme not in allowed:
        raise Forbidden(f"the scheme must be {' or '.join(allowed)}")
    if "@" in parts.netloc:
        raise Forbidden("the URL must not contain credentials")
    if port == 0:
        raise Forbidden("port 0 cannot be connected to")
    check_host(parts.hostname or "", policy)


def check_host(host: str, policy: Policy) -> IPAddress | None:
    """Judge a URL's host without resolving it; returns the address if the host is an IP literal."""
    host = host.strip("[]").lower()
    if not host:
        raise Forbidden("the URL has no host")
    ip = parse_ip_literal(host)
    if ip is not None:
        check_ip(ip, policy)
        return ip
    name = _ascii_name(host)
    if name in _METADATA_NAMES:
        raise Forbidden(f"{host} is a cloud metadata name")
    # RFC 6761: localhost and every name under it are loopback, whatever a resolver says.
    if (name == "localhost" or name.endswith(".localhost")) and not policy.allow_private:
        raise Forbidden(f"{host} is a loopback name")
    return None


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host string denotes if it is an IP literal in any spelling, else None.

    Besides dotted quads and IPv6 this reads what `inet_aton` (and so `getaddrinfo`) reads:
    `2130706433`, `0177.0.0.1`, `0x7f.0.0.1`, `127.1`. A host whose last label is numeric but
    that is no valid address is refused: a WHATWG parser treats it as an IPv4 attempt too.
    """
    host = host.strip("[]")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise Forbidden(f"{host} is not a valid IPv6 address") from None
    labels = host.split(".")
    if labels and labels[-1] == "" and len(labels) > 1:
        labels = labels[:-1]  # one trailing dot is allowed on an address as on a name
    if not _looks_numeric(labels[-1]):
        return None
    value = _inet_aton(labels)
    if value is None:
        raise Forbidden(f"{host} is not a valid IPv4 address")
    return ipaddress.IPv4Address(value)


async def resolve_and_check(
    host: str, port: int, policy: Policy, resolver: Resolver | None = None
) -> list[str]:
    """Resolve `host` and judge every address; return them (deduplicated, resolver order).

    If any one address is forbidden the whole host is refused, not just that address: a name that
    answers with a public and a private address is the signature of a rebinding attempt. Connect
    only to the returned addresses; resolving again would reopen the race this closes.
    Resolution errors (`socket.gaierror`) propagate.
    """
    ip = check_host(host, policy)
    if ip is not None:
        return [str(ip)]
    addresses = await (resolver or default_resolver)(host, port)
    checked: list[str] = []
    for address in addresses:
        ip = _as_ip(address)
        reason = _ip_reason(ip, policy)
        if reason is not None:
            raise Forbidden(f"{host} resolves to {ip}, {_a(reason)}")
        if str(ip) not in checked:
            checked.append(str(ip))
    if not checked:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} resolved to no address")
    return checked


async def default_resolver(host: str, port: int) -> list[str]:
    """The event loop's getaddrinfo (run in its executor, so it never blocks the loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for deliveries: a name is resolved once per connection and judged by
    every address it answers with (`resolve_and_check`); the connector connects only to those."""

    def __init__(self, policy: Policy, resolver: Resolver | None = None) -> None:
        self._policy = policy
        self._resolver = resolver

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_UNSPEC) -> list[ResolveResult]:
        addresses = await resolve_and_check(host.removesuffix("."), port, self._policy, self._resolver)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass


def guarded_socket(policy: Policy) -> Callable[[Any], socket.socket]:
    """The connector's socket factory: the last check, of the very address about to be connected.

    aiohttp hands IP-literal hosts straight to the connect, past the resolver; this catches them
    (and anything else) before a packet leaves.
    """

    def make(addr_info: Any) -> socket.socket:
        family, type_, proto, _, address = addr_info
        check_ip(address[0], policy)
        return socket.socket(family=family, type=type_, proto=proto)

    return make


def guarded_session(
    policy: Policy,
    *,
    resolver: Resolver | None = None,
    timeout: float = 10.0,
    ssl: Any = True,
    limit: int = 1024,
) -> aiohttp.ClientSession:
    """An `aiohttp.ClientSession` for deliveries: guarded resolver and sockets, no DNS cache (a
    name is judged again at every new connection, so rebinding finds nothing to exploit), no
    environment proxies (a proxy would connect on our behalf, past the guard), `timeout` seconds
    for a whole request. Send with `allow_redirects=False`: a redirect is the receiver's answer.

    Connections are pooled per (host, port, TLS settings), so a connection verified for one name
    never carries a request for another name on the same address.
    """
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(policy, resolver),
        use_dns_cache=False,
        socket_factory=guarded_socket(policy),
        ssl=ssl,
        limit=limit,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        trust_env=False,
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding",),
    )


def _ip_reason(ip: IPAddress, policy: Policy) -> str | None:
    """Why `ip` is refused under `policy`, or None if a delivery may connect to it."""
    for network, reason in _ALWAYS:
        if ip in network:
            return reason
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            kind, v4 = embedded
            inner = _ip_reason(v4, policy)
            if inner is not None:
                return f"{kind} IPv6 address of {_a(inner)} ({v4})"
            # Mapped and compatible forms have no use a plain IPv4 address lacks, and are the
            # classic filter bypass, so the default policy refuses them outright. NAT64 and 6to4
            # stay allowed for public IPv4: IPv6-only networks with DNS64 resolve every name so.
            if kind in ("IPv4-mapped", "IPv4-compatible") and not policy.allow_private:
                return f"{kind} IPv6 address"
            return None
    for network, reason in _PRIVATE:
        if ip in network:
            return None if policy.allow_private else reason
    if not ip.is_global:
        return "reserved or special-purpose address"
    return None


def _a(reason: str) -> str:
    return ("an " if reason[0] in "aeiouAEIOU" else "a ") + reason


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if ip in _IPV4_MAPPED or ip in _IPV4_TRANSLATED:
        return "IPv4-mapped", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # not :: (caught earlier) nor ::1 (loopback)
        return "IPv4-compatible", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    return None


def _as_ip(address: str | IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
        ip = address
    else:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise Forbidden(f"{address!r} is not an IP address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])  # a zone changes the link, not the range
    return ip


def _ascii_name(host: str) -> str:
    """The host as a lowercase ASCII DNS name without a trailing dot; refuses what cannot be one."""
    try:
        name = host.encode("idna").decode("ascii").lower() if not host.isascii() else host.lower()
    except UnicodeError:
        raise Forbidden(f"{host!r} is not a valid host name") from None
    name = name.removesuffix(".")
    labels = name.split(".")
    if (
        not name
        or len(name) > 253
        or not set(name) <= _HOST_CHARS
        or any(not label or len(label) > 63 for label in labels)
    ):
        raise Forbidden(f"{host!r} is not a valid host name")
    return name


def _looks_numeric(label: str) -> bool:
    """WHATWG's "ends in a number": decimal digits, or 0x followed by hex digits."""
    if label[:2] in ("0x", "0X"):
        return set(label[2:]) <= _HEX_DIGITS
    return label != "" and set(label) <= _DIGITS


def _inet_aton(labels: list[str]) -> int | None:
    """inet_aton's reading of 1–4 numeric parts (last part fills the remaining bytes), or None."""
    if not 1 <= len(labels) <= 4:
        return None
    numbers: list[int] = []
    for label in labels:
        # Check the characters first: int() would also take "1_0", "+1" and " 1".
        if label[:2] in ("0x", "0X") and set(label[2:]) <= _HEX_DIGITS:
            numbers.append(int(label[2:] or "0", 16))
        elif len(label) > 1 and label.startswith("0") and set(label) <= _OCTAL_DIGITS:
            numbers.append(int(label, 8))
        elif label and set(label) <= _DIGITS and not (len(label) > 1 and label.startswith("0")):
            numbers.append(int(label, 10))
        else:
            return None  # empty label, 8 or 9 in an octal part, anything else
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return value
