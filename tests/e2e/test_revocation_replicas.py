"""Revocation is fast everywhere: with two gateway replicas that both cached a key, a revoked
key is refused by each of them within one second."""

from __future__ import annotations

import asyncio
import time

import httpx

from stratus_bus import Bus
from stratus_contracts import identity, keys
from stratus_testing import Stack, wait_until


async def _ensure(stack: Stack, secret: str) -> str:
    bus = await Bus.connect(stack.nats_url, name="test-replicas")
    try:
        spec = identity.NewKey(mode="live", secret_hash=keys.hash_secret(secret), hint=keys.hint(secret))
        result = await bus.call(identity.EnsureKey(key=spec))
        return result.key_ids[0]
    finally:
        await bus.drain()


async def _revoke(stack: Stack, key_id: str) -> None:
    bus = await Bus.connect(stack.nats_url, name="test-replicas")
    try:
        await bus.call(identity.RevokeKey(account_id=stack.account_id, key_id=key_id))
    finally:
        await bus.drain()


def test_revoked_key_is_refused_by_every_replica_within_a_second(stack: Stack) -> None:
    secret = keys.generate("live")
    key_id = asyncio.run(_ensure(stack, secret))
    headers = {"Authorization": f"Bearer {secret}"}
    with stack.extra_gateway() as second:
        gateways = [stack.base_url, second]
        for url in gateways:
            # Warm each replica's cache: it now answers without asking identity.
            for _ in range(3):
                assert httpx.get(f"{url}/v1/me", headers=headers, trust_env=False).status_code == 200
        asyncio.run(_revoke(stack, key_id))
        revoked_at = time.monotonic()
        for url in gateways:
            wait_until(
                lambda url=url: (
                    httpx.get(f"{url}/v1/me", headers=headers, trust_env=False).status_code == 401
                ),
                timeout=max(0.05, 1.0 - (time.monotonic() - revoked_at)),
                message=f"{url} refuses the revoked key",
            )
        assert time.monotonic() - revoked_at < 1.0
        for url in gateways:
            body = httpx.get(f"{url}/v1/me", headers=headers, trust_env=False).json()
            assert body["code"] == "api_key_revoked"
