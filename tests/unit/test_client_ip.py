"""Which address counts as the client, and IP allowlists."""

from __future__ import annotations

from stratus_gateway.clientip import allowed, client_ip, trusted_proxies


def scope(peer: str, forwarded: str | None = None) -> dict:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"client": (peer, 5000), "headers": headers}


def test_without_trusted_proxies_the_peer_counts_and_forwarded_for_is_ignored() -> None:
    assert client_ip(scope("203.0.113.9", "1.2.3.4"), ()) == "203.0.113.9"


def test_a_trusted_proxy_passes_on_the_rightmost_untrusted_hop() -> None:
    proxies = trusted_proxies("10.0.0.0/8, ::1/128")
    assert client_ip(scope("10.1.2.3", "198.51.100.7"), proxies) == "198.51.100.7"
    # A client cannot spoof by prepending: the right-most untrusted entry wins.
    assert client_ip(scope("10.1.2.3", "6.6.6.6, 198.51.100.7, 10.0.0.5"), proxies) == "198.51.100.7"
    assert client_ip(scope("::1", "2001:db8::1"), proxies) == "2001:db8::1"
    # An untrusted peer's header is ignored; a garbled chain falls back to the peer.
    assert client_ip(scope("192.0.2.1", "198.51.100.7"), proxies) == "192.0.2.1"
    assert client_ip(scope("10.1.2.3", "not-an-ip"), proxies) == "10.1.2.3"


def test_allowlists() -> None:
    assert allowed("198.51.100.7", ())
    assert allowed("198.51.100.7", ("198.51.100.0/24",))
    assert not allowed("198.51.100.7", ("203.0.113.0/24",))
    assert allowed("2001:db8::5", ("10.0.0.0/8", "2001:db8::/32"))
    assert not allowed("garbage", ("0.0.0.0/0",))
