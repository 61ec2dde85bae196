"""Short-lived tokens: narrowed from the calling key, verified without a store round trip,
never wider than their parent, and dead with it."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest

from stratus_bus import Bus
from stratus_contracts import identity, keys
from stratus_testing import Stack, wait_until

from .conftest import problem


def token_client(stack: Stack, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {token}"}, trust_env=False
    )


def test_token_is_narrowed_and_works(stack: Stack, live: httpx.Client) -> None:
    made = live.post("/v1/tokens", json={"scopes": ["read"], "ttl_seconds": 120, "subject": "user_42"})
    assert made.status_code == 201, made.text
    body = made.json()["data"]
    assert body["token"].startswith("tok_") and body["scopes"] == ["read"] and body["subject"] == "user_42"
    with token_client(stack, body["token"]) as client:
        me = client.get("/v1/me").json()["data"]
        assert me["scopes"] == ["read"] and me["token"]["subject"] == "user_42"
        assert me["key_id"] == live.get("/v1/me").json()["data"]["key_id"]
        assert client.get("/v1/projects").status_code == 200
        problem(client.post("/v1/projects", json={"name": "nope"}), 403, "insufficient_scope")
        # Tokens cannot mint tokens.
        problem(client.post("/v1/tokens", json={}), 403, "token_not_allowed")


def test_token_validation(live: httpx.Client) -> None:
    for body in (
        {"ttl_seconds": 0},
        {"ttl_seconds": 86_401},
        {"scopes": ["root"]},
        {"scopes": []},
        {"extra": 1},
    ):
        problem(live.post("/v1/tokens", json=body), 422, "validation_failed")
    assert live.post("/v1/tokens", json={}).json()["data"]["scopes"] == ["read", "write", "admin"]


def test_token_cannot_widen(stack: Stack, live: httpx.Client) -> None:
    read_only = live.post("/v1/tokens", json={"scopes": ["read"]}).json()["data"]["token"]
    restricted = live.post("/v1/tokens", json={"project_ids": ["prj_aaaaaaaaaaaaaaaaaaaaaaaaaa"]}).json()[
        "data"
    ]
    assert restricted["project_ids"] == ["prj_aaaaaaaaaaaaaaaaaaaaaaaaaa"]
    with token_client(stack, read_only) as client:
        problem(client.post("/v1/projects", json={"name": "x"}), 403, "insufficient_scope")
    # Forging wider claims breaks the signature.
    head, _, sig = read_only[len("tok_") :].partition(".")
    claims = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    claims["scopes"] = ["read", "write", "admin"]
    forged_head = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with token_client(stack, f"tok_{forged_head}.{sig}") as client:
        problem(client.get("/v1/me"), 401, "invalid_token")


@pytest.mark.parametrize(
    "bad", ["tok_", "tok_abc", "tok_abc.def", "tok_" + "A" * 3000 + ".x", "tok_e30.AAAA"]
)
def test_malformed_tokens_are_401(stack: Stack, bad: str) -> None:
    with token_client(stack, bad) as client:
        response = client.get("/v1/me")
        assert response.status_code == 401
        assert response.json()["code"] in {"invalid_token", "malformed_api_key"}


def test_token_dies_with_its_parent_key(stack: Stack) -> None:
    parent = keys.generate("test")

    async def ensure_and_later_revoke(revoke_id: str | None) -> str:
        bus = await Bus.connect(stack.nats_url, name="test-token-parent")
        try:
            if revoke_id is None:
                spec = identity.NewKey(
                    mode="test", secret_hash=keys.hash_secret(parent), hint=keys.hint(parent)
                )
                result = await bus.call(identity.EnsureKey(key=spec))
                return result.key_ids[0]
            await bus.call(identity.RevokeKey(account_id=stack.account_id, key_id=revoke_id))
            return revoke_id
        finally:
            await bus.drain()

    key_id = asyncio.run(ensure_and_later_revoke(None))
    with stack.client(parent) as client:
        token = client.post("/v1/tokens", json={"ttl_seconds": 600}).json()["data"]["token"]
    with token_client(stack, token) as client:
        assert client.get("/v1/me").status_code == 200
        asyncio.run(ensure_and_later_revoke(key_id))
        wait_until(lambda: client.get("/v1/me").status_code == 401, timeout=1.0, message="token dies")
        problem(client.get("/v1/me"), 401, "api_key_revoked")
