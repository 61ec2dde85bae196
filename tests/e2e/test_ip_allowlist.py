"""IP allowlists: a key answers only from its CIDRs; which address counts is the peer, or the
forwarded client when the peer is a trusted proxy (a second gateway is configured so)."""

from __future__ import annotations

import httpx

from stratus_testing import Stack

from .conftest import problem


def _key(stack: Stack, cidrs: list[str]) -> str:
    with stack.client(stack.live_key) as admin:
        made = admin.post("/v1/keys", json={"name": "ip", "scopes": ["read"], "allowed_ips": cidrs})
        assert made.status_code == 201, made.text
        return made.json()["data"]["secret"]


def test_requests_from_outside_the_allowlist_are_403(stack: Stack) -> None:
    inside, outside = _key(stack, ["127.0.0.0/8", "::1/128"]), _key(stack, ["203.0.113.0/24"])
    with stack.client(inside) as client:
        assert client.get("/v1/me").status_code == 200
    with stack.client(outside) as client:
        body = problem(client.get("/v1/me"), 403, "ip_not_allowed")
        assert "127.0.0.1" in body["detail"]
        # X-Forwarded-For from an untrusted peer changes nothing.
        spoofed = client.get("/v1/me", headers={"X-Forwarded-For": "203.0.113.5"})
        problem(spoofed, 403, "ip_not_allowed")


def test_a_trusted_proxy_forwards_the_client_address(stack: Stack) -> None:
    outside = _key(stack, ["203.0.113.0/24"])
    with stack.extra_gateway(env={"STRATUS_TRUSTED_PROXIES": "127.0.0.0/8"}) as behind_proxy:
        headers = {**stack.auth(outside), "X-Forwarded-For": "198.51.100.1, 203.0.113.5"}
        assert httpx.get(f"{behind_proxy}/v1/me", headers=headers, trust_env=False).status_code == 200
        headers["X-Forwarded-For"] = "203.0.113.5, 198.51.100.1"
        denied = httpx.get(f"{behind_proxy}/v1/me", headers=headers, trust_env=False)
        assert denied.status_code == 403 and "198.51.100.1" in denied.json()["detail"]
