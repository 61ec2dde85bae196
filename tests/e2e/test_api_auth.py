"""Bearer authentication on every /v1 route: distinct 401 codes, modes, revocation."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from stratus_bus import Bus
from stratus_contracts import identity, keys
from stratus_testing import Stack, wait_until

from .conftest import EXTRA_ADMIN_KEY, problem

ROUTES = [
    ("GET", "/v1/me"),
    ("GET", "/v1/projects"),
    ("POST", "/v1/projects"),
    ("GET", "/v1/projects/prj_x"),
    ("PATCH", "/v1/projects/prj_x"),
    ("DELETE", "/v1/projects/prj_x"),
]


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_api_key"),
        ("Bearer", "malformed_api_key"),
        ("Basic dXNlcjpwYXNz", "malformed_api_key"),
        ("Bearer sk_live_short", "malformed_api_key"),
        ("Bearer pk_live_" + "a" * 40, "malformed_api_key"),
        ("Bearer sk_live_" + "a" * 5000, "malformed_api_key"),
        ("Bearer " + keys.generate("live"), "invalid_api_key"),
        ("Bearer " + keys.generate("test"), "invalid_api_key"),
    ],
)
def test_every_route_refuses_bad_credentials(anon: httpx.Client, header: str | None, code: str) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in ROUTES:
        response = anon.request(
            method, path, headers=headers, json={"name": "x"} if method != "GET" else None
        )
        problem(response, 401, code)
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_every_spelling_of_the_header_finds_the_same_key(stack: Stack, anon: httpx.Client) -> None:
    # The gateway hashes `Bearer sk_…` straight from the header bytes when the key is cached;
    # other spellings go through the full parser. Both must find the same key, cached or not.
    expected = anon.get("/v1/me", headers=stack.auth(stack.live_key)).json()["data"]["key_id"]
    for spelling in ("bearer {}", "Bearer  {}", "BEARER {}", "Bearer {}"):
        response = anon.get("/v1/me", headers={"Authorization": spelling.format(stack.live_key)})
        assert response.status_code == 200, (spelling, response.text)
        assert response.json()["data"]["key_id"] == expected
    tail = stack.live_key[:-1] + ("A" if stack.live_key[-1] != "A" else "B")  # cached prefix, other key
    problem(anon.get("/v1/me", headers={"Authorization": f"Bearer {tail}"}), 401, "invalid_api_key")


def test_me_describes_the_key(stack: Stack, live: httpx.Client, test_mode: httpx.Client) -> None:
    me = live.get("/v1/me").json()["data"]
    assert me["key_id"].startswith("key_") and me["account"] == stack.account_id
    assert me["mode"] == "live" and set(me["scopes"]) == {"read", "write", "admin"}
    assert test_mode.get("/v1/me").json()["data"]["mode"] == "test"
    assert stack.live_key not in live.get("/v1/me").text


def test_admin_key_from_environment_works_and_revocation_is_401(stack: Stack) -> None:
    with stack.client(EXTRA_ADMIN_KEY) as client:
        me = client.get("/v1/me").json()["data"]
        assert me["account"] == stack.account_id and me["mode"] == "live"

        async def revoke() -> None:
            bus = await Bus.connect(stack.nats_url, name="test-revoke")
            try:
                await bus.call(identity.RevokeKey(account_id=me["account"], key_id=me["key_id"]))
            finally:
                await bus.drain()

        asyncio.run(revoke())
        # Gateways cache verified keys and evict on identity's key events: within a second.
        wait_until(lambda: client.get("/v1/me").status_code == 401, timeout=1.0, message="revocation")
        for method, path in ROUTES:
            problem(
                client.request(method, path, json={"name": "x"} if method != "GET" else None),
                401,
                "api_key_revoked",
            )
