"""SSRF guard: the URL table, resolution checks, DNS rebinding, and the guarded aiohttp session.

Resolution is steered by passing a resolver (a real coroutine returning chosen addresses) rather
than by patching getaddrinfo; the session tests talk to a real receiver on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from stratus_webhooks.ssrf import (
    ERROR_CODE,
    Forbidden,
    Policy,
    check_ip,
    check_url,
    guarded_session,
    parse_ip_literal,
    resolve_and_check,
)

DEFAULT = Policy()
DEV = Policy(allow_private=True)

ALLOWED = [
    "https://example.com/hook",
    "http://example.com:8080/in?x=1",  # plain http is allowed: local receivers use it
    "HTTPS://Example.COM/",
    "https://hooks.example.com./",
    "https://93.184.216.34/",
    "https://1.1.1.1:8443/",
    "https://[2606:4700:4700::1111]/",
    "https://bücher.de/",
    "https://[64:ff9b::808:808]/",  # NAT64 of 8.8.8.8, how DNS64 networks reach IPv4
    "https://[2002:808:808::1]/",  # 6to4 of 8.8.8.8
    "https://under_score.example.com/",
]

# Refused by default, allowed with allow_private (the dev stack's receivers).
PRIVATE = [
    "http://127.0.0.1:8000/",
    "http://127.255.255.254/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://api.localhost:3000/",
    "http://2130706433/",  # decimal 127.0.0.1
    "http://0177.0.0.1/",  # octal
    "http://0x7f.0.0.1/",  # hex
    "http://0x7f000001/",
    "http://017700000001/",
    "http://127.1/",  # short forms
    "http://127.0.1/",
    "http://127.0.0.1./",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.1.1/",
    "http://0xc0.0xa8.1.1/",
    "http://100.64.0.1/",  # CGNAT
    "http://[::1]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[fec0::1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[::ffff:0:7f00:1]/",  # SIIT-translated
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
]

# Refused whatever the policy.
ALWAYS = [
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://example.com/",
    "javascript:alert(1)",
    "//example.com/",
    "https://user:pass@example.com/",
    "https://user@example.com/",
    "http://example.com@127.0.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/",  # 169.254.169.254 in decimal
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://0251.0376.0251.0376/",
    "http://169.254.1.1/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fd00:ec2::254]/",  # AWS IMDS over IPv6
    "http://100.100.100.200/",  # Alibaba metadata
    "http://168.63.129.16/",  # Azure WireServer
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.google.internal./",
    "http://metadata/",
    "http://instance-data/",
    "http://0.0.0.0:8080/",
    "http://0/",
    "http://0.1.2.3/",
    "http://[::]/",
    "http://[::ffff:0.0.0.0]/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://[ff02::1]/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://192.0.2.1/",  # documentation range: not globally routable
    "http://198.18.0.1/",  # benchmarking range
    "http://[2001:db8::1]/",
    "http://[2001::1]/",  # Teredo
    "http://[5f00::1]/",  # SRv6 SIDs, newer than Python's tables
    "http://[3fff::1]/",  # documentation (2024)
    "http://[::ffff:0:a9fe:a9fe]/",  # SIIT-translated 169.254.169.254
    "http://[2002:a9fe:a9fe::]/",  # 6to4 of 169.254.169.254
    "http://127%2e0%2e0%2e1/",  # percent-encoded dots: no valid host name
    "http://1.2.3.999/",  # numeric last label but no address: refused, not resolved
    "http://08.0.0.1/",
    "http://1.2.3.4.5/",
    "http://example.123/",
    "http://a b.example.com/",
    "http://example.com\\@127.0.0.1/",
    "http://exa\tmple.com/",
    "http://[::1/",
    "http:///path",
    "http://example.com:0/",
    "http://example.com:99999/",
    "http://-." + "a" * 64 + ".com/",
]


@pytest.mark.parametrize("url", ALLOWED)
def test_public_urls_pass(url: str) -> None:
    check_url(url, DEFAULT)
    check_url(url, DEV)


@pytest.mark.parametrize("url", PRIVATE)
def test_private_and_loopback_urls_pass_only_with_allow_private(url: str) -> None:
    with pytest.raises(Forbidden) as refused:
        check_url(url, DEFAULT)
    assert refused.value.code == ERROR_CODE == "webhook_url_forbidden"
    assert refused.value.reason
    check_url(url, DEV)


@pytest.mark.parametrize("url", ALWAYS)
def test_forbidden_urls_are_refused_whatever_the_policy(url: str) -> None:
    for policy in (DEFAULT, DEV):
        with pytest.raises(Forbidden):
            check_url(url, policy)


def test_mapped_public_address_is_refused_by_default_and_judged_by_its_ipv4_when_private_allowed() -> None:
    with pytest.raises(Forbidden, match="IPv4-mapped"):
        check_url("https://[::ffff:8.8.8.8]/", DEFAULT)
    check_url("https://[::ffff:8.8.8.8]/", DEV)


def test_require_https_refuses_plain_http() -> None:
    with pytest.raises(Forbidden, match="scheme"):
        check_url("http://example.com/", Policy(require_https=True))
    check_url("https://example.com/", Policy(require_https=True))


def test_reasons_name_what_was_refused() -> None:
    with pytest.raises(Forbidden, match=r"169\.254\.169\.254 is a cloud metadata address"):
        check_url("http://2852039166/", DEV)
    with pytest.raises(Forbidden, match="loopback"):
        check_url("http://0x7f.1/", DEFAULT)
    with pytest.raises(Forbidden, match=r"^::2 is an IPv4-compatible IPv6 address of an unspecified address"):
        check_ip("::2", DEV)
    with pytest.raises(Forbidden, match="credentials"):
        check_url("https://u:p@example.com/", DEFAULT)


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0X7F.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.65535", "10.1.255.255"),
        ("0", "0.0.0.0"),
        ("8.8.8.8", "8.8.8.8"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
        ("example.com", None),
    ],
)
def test_ip_literals_are_read_as_inet_aton_reads_them(spelling: str, address: str | None) -> None:
    ip = parse_ip_literal(spelling)
    assert (None if ip is None else str(ip)) == address
    if address is not None and ":" not in spelling:
        # What the C library would connect to, for the spellings it accepts.
        assert socket.inet_ntoa(socket.inet_aton(spelling)) == address


@pytest.mark.parametrize(
    "spelling", ["256.0.0.1", "1.2.3.4.5", "1.2.65536", "0x1g.1", "09.1.1.1", "1..1", "1_0.0.0.1"]
)
def test_malformed_numeric_hosts_are_refused_not_guessed(spelling: str) -> None:
    with pytest.raises(Forbidden, match="not a valid"):
        parse_ip_literal(spelling)


def test_check_ip_strips_zones_and_takes_strings_or_addresses() -> None:
    with pytest.raises(Forbidden, match="link-local"):
        check_ip("fe80::1%eth0", DEV)
    check_ip("2606:4700::1", DEFAULT)
    with pytest.raises(Forbidden, match="not an IP address"):
        check_ip("example.com", DEFAULT)


def resolver_of(*answers: Sequence[str]):
    """A resolver answering each call with the next list of addresses (the last one repeats)."""
    calls: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        calls.append((host, port))
        return answers[min(len(calls), len(answers)) - 1]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


async def test_localhost_resolves_with_the_event_loop_when_private_is_allowed() -> None:
    addresses = await resolve_and_check("localhost", 80, DEV)
    assert addresses
    assert set(addresses) <= {"127.0.0.1", "::1"}
    with pytest.raises(Forbidden, match="loopback"):
        await resolve_and_check("localhost", 80, DEFAULT)


async def test_every_resolved_address_is_checked() -> None:
    resolve = resolver_of(["93.184.216.34", "10.0.0.1"])
    with pytest.raises(Forbidden, match=r"hooks\.example\.com resolves to 10\.0\.0\.1, a private address"):
        await resolve_and_check("hooks.example.com", 443, DEFAULT, resolve)
    assert resolve.calls == [("hooks.example.com", 443)]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (["169.254.169.254"], "cloud metadata"),
        (["::ffff:a9fe:a9fe"], "IPv4-mapped IPv6 address of a cloud metadata address"),
        (["fe80::1%2"], "link-local"),
        (["0.0.0.0"], "unspecified"),
        (["not-an-address"], "not an IP address"),
    ],
)
async def test_resolved_addresses_are_judged_like_literals(answer: list[str], reason: str) -> None:
    with pytest.raises(Forbidden, match=reason):
        await resolve_and_check("hooks.example.com", 443, DEV, resolver_of(answer))


async def test_resolution_returns_the_checked_addresses_once_each() -> None:
    resolve = resolver_of(["93.184.216.34", "93.184.216.34", "2606:4700:0:0::1"])
    assert await resolve_and_check("hooks.example.com", 443, DEFAULT, resolve) == [
        "93.184.216.34",
        "2606:4700::1",
    ]


async def test_literals_and_local_names_are_judged_before_any_resolver_runs() -> None:
    resolve = resolver_of(["93.184.216.34"])
    assert await resolve_and_check("0x5d.0xb8.0xd8.0x22", 80, DEFAULT, resolve) == ["93.184.216.34"]
    with pytest.raises(Forbidden):
        await resolve_and_check("metadata.google.internal", 80, DEV, resolve)
    assert resolve.calls == []


async def test_no_answer_is_a_resolution_error() -> None:
    with pytest.raises(socket.gaierror):
        await resolve_and_check("hooks.example.com", 443, DEFAULT, resolver_of([]))


async def test_dns_rebinding_is_caught_at_the_next_resolution() -> None:
    # Public when the endpoint is created, loopback by the time a delivery connects.
    resolve = resolver_of(["93.184.216.34"], ["127.0.0.1"])
    check_url("https://rebind.example.com/hook", DEFAULT)
    assert await resolve_and_check("rebind.example.com", 443, DEFAULT, resolve) == ["93.184.216.34"]
    with pytest.raises(Forbidden, match="loopback"):
        await resolve_and_check("rebind.example.com", 443, DEFAULT, resolve)


@dataclass
class Receiver:
    """A real HTTP/1.1 receiver on 127.0.0.1 that records what reached it."""

    port: int = 0
    hosts: list[str] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    connections: int = 0
    reply: bytes = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                headers = {k.lower(): v for k, v in headers.items()}
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.hosts.append(headers["host"])
                writer.write(self.reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def receiver(tls: ssl.SSLContext | None = None, **kwargs: object) -> AsyncIterator[Receiver]:
    rx = Receiver(**kwargs)  # type: ignore[arg-type]
    if tls is not None:
        tls.sni_callback = lambda _obj, name, _ctx: rx.sni.append(name)  # type: ignore[func-returns-value]
    server = await asyncio.start_server(rx.handle, "127.0.0.1", 0, ssl=tls)
    rx.port = server.sockets[0].getsockname()[1]
    async with server:
        yield rx


async def post(session: aiohttp.ClientSession, url: str) -> int:
    async with session.post(url, data=b"{}", allow_redirects=False) as response:
        await response.read()
        return response.status


async def test_session_connects_to_the_checked_address_with_the_original_host_header() -> None:
    async with receiver() as rx:
        # hooks.example.test has no DNS record (.test is reserved): only the checked address works.
        resolve = resolver_of(["127.0.0.1"])
        async with guarded_session(DEV, resolver=resolve) as session:
            assert await post(session, f"http://hooks.example.test:{rx.port}/in") == 204
    assert rx.hosts == [f"hooks.example.test:{rx.port}"]
    assert resolve.calls == [("hooks.example.test", rx.port)]


async def test_session_refuses_before_connecting() -> None:
    async with receiver() as rx, guarded_session(DEFAULT, resolver=resolver_of(["127.0.0.1"])) as session:
        with pytest.raises(Forbidden, match="loopback"):
            await post(session, f"http://hooks.example.test:{rx.port}/in")
        with pytest.raises(Forbidden, match="loopback"):
            await post(session, f"http://0x7f.1:{rx.port}/in")
        # A literal address reaches the connect without any resolver: the socket check refuses it.
        with pytest.raises(Forbidden, match="loopback"):
            await post(session, f"http://127.0.0.1:{rx.port}/in")
    assert rx.connections == 0


async def test_session_catches_rebinding_at_every_connect() -> None:
    resolve = resolver_of(["93.184.216.34"], ["127.0.0.1"])
    async with receiver() as rx, guarded_session(DEFAULT, resolver=resolve) as session:
        url = f"http://rebind.example.test:{rx.port}/in"
        check_url(url, DEFAULT)  # at creation
        assert await resolve_and_check("rebind.example.test", rx.port, DEFAULT, resolve)
        with pytest.raises(Forbidden, match=r"resolves to 127\.0\.0\.1"):
            await post(session, url)  # the delivery resolves again, and is refused
    assert rx.connections == 0


async def test_odd_literal_spellings_connect_to_the_address_they_were_judged_as() -> None:
    async with receiver() as rx, guarded_session(DEV) as session:
        assert await post(session, f"http://0x7f.1:{rx.port}/in") == 204
    assert rx.hosts == [f"0x7f.1:{rx.port}"]


async def test_redirects_are_not_followed_and_a_forced_follow_is_still_guarded() -> None:
    reply = b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/\r\nContent-Length: 0\r\n\r\n"
    async with receiver(reply=reply) as rx, guarded_session(DEV) as session:
        assert await post(session, f"http://127.0.0.1:{rx.port}/in") == 302
        with pytest.raises(Forbidden, match="metadata"):
            async with session.post(f"http://127.0.0.1:{rx.port}/in", data=b"{}", allow_redirects=True):
                pass


async def test_a_refused_address_falls_through_to_the_next_checked_one() -> None:
    async with receiver() as rx:
        # Nothing listens on ::1 at that port (or there is no IPv6): a fast connect failure.
        resolve = resolver_of(["::1", "127.0.0.1"])
        async with guarded_session(DEV, resolver=resolve) as session:
            assert await post(session, f"http://hooks.example.test:{rx.port}/in") == 204


async def test_unresolvable_host_is_a_connect_error() -> None:
    async with guarded_session(DEFAULT, resolver=resolver_of([])) as session:
        with pytest.raises(aiohttp.ClientConnectorError, match="resolved to no address"):
            await post(session, "https://nowhere.example.test/")


def _self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    cert, key = tmp / f"{name}.pem", tmp / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.skipif(
    shutil.which("openssl") is None, reason="needs the openssl command for a test certificate"
)
async def test_https_sends_sni_and_verifies_the_certificate_against_the_name(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, "hooks.example.test")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    resolve = resolver_of(["127.0.0.1"])

    async with (
        receiver(server_tls) as rx,
        guarded_session(DEV, resolver=resolve, ssl=client_tls) as session,
    ):
        assert await post(session, f"https://hooks.example.test:{rx.port}/in") == 204
        # Same address, another name: a fresh connection whose certificate check fails, rather
        # than a reuse of the connection verified for hooks.example.test.
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await post(session, f"https://other.example.test:{rx.port}/in")
    assert rx.sni[0] == "hooks.example.test"
    assert "other.example.test" in rx.sni
    assert rx.hosts == [f"hooks.example.test:{rx.port}"]
