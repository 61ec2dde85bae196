"""`stratus accounts create|set-plan` against a running stack: new tenants with working keys,
plan changes that reach identity's answers, and clear failures."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import msgspec
from nats.js.api import DeliverPolicy

from stratus_bus import Bus
from stratus_contracts import identity, keys, subjects
from stratus_contracts.events import Event
from stratus_testing import Stack, stratus_command, wait_until

from .conftest import problem


def plan_of(stack: Stack, secret: str) -> str:
    """What identity tells gateways about a key's plan (the gateway does not show it)."""

    async def ask() -> str:
        bus = await Bus.connect(stack.nats_url, name="test-plan")
        try:
            principal = await bus.call(identity.VerifyKey(secret_hash=keys.hash_secret(secret)))
        finally:
            await bus.drain()
        return principal.plan

    return asyncio.run(ask())


def published(stack: Stack, account: str, kind: str, name: str) -> list[Event]:
    """The events of one account on one subject so far, from the EVENTS stream."""

    async def read() -> list[Event]:
        bus = await Bus.connect(stack.nats_url, name="test-events")
        found: list[Event] = []
        try:
            subject = subjects.event("*", account, kind, name)
            sub = await bus.js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
            while True:
                try:
                    msg = await sub.next_msg(timeout=0.5)
                except TimeoutError:
                    return found
                found.append(msgspec.json.decode(msg.data, type=Event))
        finally:
            await bus.drain()

    return asyncio.run(read())


def test_create_prints_a_tenant_with_working_keys(stack: Stack) -> None:
    done = stack.cli("accounts", "create", "acme", "--json", "--plan", "pro")
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["id"].startswith("acct_") and made["id"] != stack.account_id
    assert (made["name"], made["plan"]) == ("acme", "pro")
    for mode in ("live", "test"):
        secret = made["keys"][mode]
        assert secret.startswith(f"sk_{mode}_")
        with stack.client(secret) as client:
            me = client.get("/v1/me").json()["data"]
            assert (me["account"], me["mode"], me["key_id"]) == (made["id"], mode, made["key_ids"][mode])
            assert set(me["scopes"]) == {"read", "write", "admin"}
            # A new tenant starts empty.
            assert client.get("/v1/projects").json()["data"] == []
    assert plan_of(stack, made["keys"]["live"]) == "pro"
    # The secrets never reach the logs.
    logs = stack.stderr_path.read_text() + stack.stdout_path.read_text()
    assert made["keys"]["live"] not in logs and made["keys"]["test"] not in logs


def test_set_plan_changes_what_identity_answers(stack: Stack) -> None:
    made = json.loads(stack.cli("accounts", "create", "planned", "--json").stdout)
    assert made["plan"] == "free" and plan_of(stack, made["keys"]["test"]) == "free"
    with stack.client(made["keys"]["live"]) as client:
        assert client.get("/v1/me").status_code == 200
    done = stack.cli("accounts", "set-plan", made["id"], "pro")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"id": made["id"], "name": "planned", "plan": "pro"}
    assert plan_of(stack, made["keys"]["test"]) == "pro"
    # Each of the account's keys was announced as changed, so every gateway drops its cached
    # principal of it (and with it the old plan) at once.
    changed = wait_until(lambda: published(stack, made["id"], "key", "updated"), timeout=5.0)
    assert {e.data["id"] for e in changed} == set(made["key_ids"].values())
    assert [e.data["plan"] for e in published(stack, made["id"], "account", "updated")] == ["pro"]
    with stack.client(made["keys"]["live"]) as client:
        assert client.get("/v1/me").status_code == 200


def test_human_output_and_failures(stack: Stack, tmp_path: Path) -> None:
    done = stack.cli("accounts", "create", "readable")
    assert done.returncode == 0 and done.stdout.startswith("account acct_")
    assert "sk_live_" in done.stdout and "sk_test_" in done.stdout
    unknown = stack.cli("accounts", "set-plan", "acct_" + "z" * 26, "pro")
    assert unknown.returncode == 1 and "account_not_found" in unknown.stderr
    assert stack.cli("accounts", "set-plan", stack.account_id, "gold").returncode == 2
    # Without a running stack the command says so instead of hanging. (A NATS_URL would name
    # one: the session stack's, when it runs on a cluster of its own.)
    env = {k: v for k, v in stack.env.items() if k != "NATS_URL"} | {"STRATUS_DATA_DIR": str(tmp_path)}
    down = subprocess.run(
        stratus_command("accounts", "create", "x", "--json"),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert down.returncode == 1 and "not running" in down.stderr and down.stdout == ""


def test_bootstrap_account_is_internal(stack: Stack) -> None:
    assert plan_of(stack, stack.live_key) == "internal"
    with stack.client(stack.live_key) as client:
        problem(client.get("/v1/keys/key_nope"), 404, "key_not_found")
