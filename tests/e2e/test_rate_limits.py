"""Rate limits against a running stack: per-key buckets from the account's plan (shared with the
key's tokens, and across gateway replicas), per-address limits without a valid key, 429 with
`Retry-After`, plan changes, and the unlimited `internal` plan.

The plans here refill over a day, so a test's few seconds add no meaningful tokens and counts are
exact whatever the machine's speed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stratus_cli.config import from_env
from stratus_contracts import keys
from stratus_contracts.ids import new_id
from stratus_testing import Stack, stratus_command, wait_until

from .conftest import problem

DAY = 86_400
PLANS = {
    "free": {"limit": 20, "period": DAY},
    "pro": {"limit": 1000, "period": DAY},
    "anonymous": {"limit": 30, "period": DAY},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"STRATUS_PLANS": json.dumps(PLANS), "STRATUS_REQUEST_TIMEOUT": "5"}
    with Stack(tmp_path_factory.mktemp("ratelimits"), env=env) as running:
        yield running


def account(stack: Stack, plan: str) -> dict:
    done = stack.cli("accounts", "create", f"rl-{plan}", "--plan", plan, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def budget(response: httpx.Response) -> tuple[int, int, int]:
    h = response.headers
    return int(h["x-ratelimit-limit"]), int(h["x-ratelimit-remaining"]), int(h["x-ratelimit-reset"])


def test_every_response_of_a_key_counts_down_one_bucket_shared_with_its_tokens(stack: Stack) -> None:
    made = account(stack, "free")
    with stack.client(made["keys"]["live"]) as key:
        minted = key.post("/v1/tokens", json={"scopes": ["read"], "ttl_seconds": 600})
        assert minted.status_code == 201, minted.text
        seen = [budget(minted)]
        with stack.client(minted.json()["data"]["token"]) as token:
            for n in range(19):
                client = token if n % 2 else key
                # Errors after authentication carry the headers too, and they cost a request.
                path = f"/v1/projects/{new_id('prj')}" if n == 5 else "/v1/me"
                response = client.get(path)
                assert response.status_code == (404 if n == 5 else 200), response.text
                seen.append(budget(response))
            assert [remaining for _, remaining, _ in seen] == list(range(19, -1, -1))
            assert {limit for limit, _, _ in seen} == {20}
            assert all(0 < reset <= DAY for _, _, reset in seen)
            assert [reset for _, _, reset in seen] == sorted(reset for _, _, reset in seen)

            for client in (key, token):
                refused = client.get("/v1/me")
                body = problem(refused, 429, "rate_limited")
                retry = int(refused.headers["retry-after"])
                assert DAY / 20 - 5 <= retry <= DAY / 20 + 1  # one token's refill time
                assert str(retry) in body["detail"]
                assert budget(refused)[:2] == (20, 0)


def test_a_plan_change_applies_at_once(stack: Stack) -> None:
    made = account(stack, "free")
    with stack.client(made["keys"]["test"]) as client:
        for _ in range(20):
            assert client.get("/v1/me").status_code == 200
        assert client.get("/v1/me").status_code == 429

        assert stack.cli("accounts", "set-plan", made["id"], "pro").returncode == 0
        upgraded = wait_until(
            lambda: (r := client.get("/v1/me")).status_code == 200 and r,
            timeout=10,
            message="the pro plan to apply",
        )
        # A bigger plan adds its extra capacity at once; what was spent stays spent.
        limit, remaining, _ = budget(upgraded)
        assert limit == 1000 and 1000 - 20 - 5 <= remaining <= 1000 - 21

        assert stack.cli("accounts", "set-plan", made["id"], "internal").returncode == 0
        wait_until(
            lambda: "x-ratelimit-limit" not in client.get("/v1/me").headers,
            timeout=10,
            message="the internal plan to apply",
        )


def test_the_internal_plan_is_unlimited_and_sends_no_budget(stack: Stack) -> None:
    # Stack runs the bootstrap account on `internal` (STRATUS_BOOTSTRAP_PLAN).
    with stack.client(stack.live_key) as client:
        for _ in range(60):  # three times the free plan here
            response = client.get("/v1/me")
            assert response.status_code == 200
            assert not any(name.startswith("x-ratelimit") for name in response.headers)


def test_requests_without_a_valid_key_are_limited_per_address(stack: Stack) -> None:
    bad = {"Authorization": f"Bearer {keys.generate('live')}"}
    with httpx.Client(base_url=stack.base_url, trust_env=False, timeout=10.0) as anon:
        remaining = []
        for n in range(30):
            match n % 3:
                case 0:
                    response = anon.get("/v1/projects")  # no key
                    assert response.status_code == 401
                case 1:
                    response = anon.get("/v1/projects", headers=bad)  # a key nobody issued
                    assert response.status_code == 401
                case _:
                    response = anon.get("/errors/rate_limited")  # a public page
                    assert response.status_code == 200
            remaining.append(budget(response)[1])
        assert remaining == list(range(29, -1, -1))

        for headers in ({}, bad):
            refused = anon.get("/v1/projects", headers=headers)
            problem(refused, 429, "rate_limited")
            assert int(refused.headers["retry-after"]) >= DAY / 30 - 5
        problem(anon.get("/openapi.json"), 429, "rate_limited")
        # Probes are never limited, and a valid key from the same address is its own budget.
        assert anon.get("/healthz").status_code == 200
        assert anon.get("/v1/me", headers=stack.auth(stack.test_key)).status_code == 200


async def _hammer(url: str, secret: str, deadline: float) -> tuple[int, int]:
    """Requests from 8 connections until each has been refused 20 times in a row."""
    served = refused_total = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal served, refused_total
        refused_in_a_row = 0
        while refused_in_a_row < 20 and time.monotonic() < deadline:
            status = (await client.get("/v1/me")).status_code
            assert status in (200, 429), status
            if status == 200:
                served += 1
                refused_in_a_row = 0
            else:
                refused_total += 1
                refused_in_a_row += 1

    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, trust_env=False, timeout=10.0) as client:
        await asyncio.gather(*(worker(client) for _ in range(8)))
    return served, refused_total


def test_two_replicas_sharing_a_key_serve_the_limit_within_one_percent(stack: Stack) -> None:
    made = account(stack, "pro")
    limit, period = PLANS["pro"]["limit"], PLANS["pro"]["period"]
    with stack.extra_gateway() as second:
        started = time.monotonic()
        deadline = started + 90

        async def both() -> list[tuple[int, int]]:
            secret = made["keys"]["live"]
            return await asyncio.gather(
                _hammer(stack.base_url, secret, deadline), _hammer(second, secret, deadline)
            )

        results = asyncio.run(both())
        elapsed = time.monotonic() - started
    assert time.monotonic() < deadline, "the hammering did not finish"
    served = [ok for ok, _ in results]
    refill = limit / period * elapsed  # under 0.1 token for this plan
    assert limit - limit * 0.01 <= sum(served) <= limit + limit * 0.01 + refill, (served, elapsed)
    assert min(served) > 50, served  # both replicas really served the key
    assert all(refused >= 8 * 20 for _, refused in results)


def test_the_bootstrap_plan_is_free_unless_configured_and_must_be_a_plan(tmp_path: Path) -> None:
    assert from_env({}).bootstrap_plan == "free"
    assert from_env({"STRATUS_BOOTSTRAP_PLAN": "pro"}).bootstrap_plan == "pro"
    env = {**os.environ, "STRATUS_DATA_DIR": str(tmp_path), "STRATUS_BOOTSTRAP_PLAN": "gold"}
    env.pop("NATS_URL", None)
    done = subprocess.run(
        stratus_command("up"), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "STRATUS_BOOTSTRAP_PLAN must be one of free, pro, internal" in done.stderr
