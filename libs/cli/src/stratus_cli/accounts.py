"""Accounts from the operator's side: the bootstrap account of `stratus up` (fresh admin keys
once, and the operator's `STRATUS_ADMIN_KEY`), and `stratus accounts create|set-plan` for tenants.

Only hashes and hints cross the bus. The bootstrap keys go to `<data>/credentials` (0600) once,
when the account is created, and a restart finds the account and creates nothing; a tenant's
first keys are printed once by `stratus accounts create` and stored nowhere else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any, NamedTuple

from stratus_bus import Bus, RemoteError, ServiceTimeout
from stratus_cli import stackfile
from stratus_cli.rebuild import NotRunning, operator_bus
from stratus_contracts import keys
from stratus_contracts.identity import (
    PLANS,
    AccountCreatedResult,
    Bootstrap,
    BootstrapResult,
    CreateAccount,
    EnsureKey,
    NewKey,
    Plan,
    SetPlan,
    VerifyKey,
)

log = logging.getLogger("stratus.supervisor")

TIMEOUT = 10.0


class AdminKeyError(ValueError):
    """STRATUS_ADMIN_KEY is set but is not a Stratus API key."""


def check_admin_key(value: str | None) -> str | None:
    if value is None:
        return None
    if keys.mode_of(value) is None:
        raise AdminKeyError(
            "STRATUS_ADMIN_KEY is not a Stratus API key: it must look like sk_live_… or sk_test_… "
            "followed by at least 24 URL-safe characters (A-Z, a-z, 0-9, '_', '-')."
        )
    return value


def new_key(secret: str) -> NewKey:
    mode = keys.mode_of(secret)
    assert mode is not None, "only well-formed keys reach here"
    return NewKey(mode=mode, secret_hash=keys.hash_secret(secret), hint=keys.hint(secret))


class AdminKeys(NamedTuple):
    live: str
    test: str

    @classmethod
    def generate(cls) -> AdminKeys:
        return cls(live=keys.generate("live"), test=keys.generate("test"))


class PlanError(ValueError):
    """STRATUS_BOOTSTRAP_PLAN names no plan."""


def check_plan(value: str) -> Plan:
    """The bootstrap account's plan (STRATUS_BOOTSTRAP_PLAN), used when the account is created."""
    if value not in PLANS:
        raise PlanError(f"STRATUS_BOOTSTRAP_PLAN must be one of {', '.join(PLANS)}, got {value!r}.")
    return value  # type: ignore[return-value]


async def bootstrap(bus: Bus, data_dir: Path, admin: AdminKeys, plan: Plan = "free") -> BootstrapResult:
    """Create the account (on `plan`) with one live and one test key unless it exists; save new keys.

    Safe to repeat with the same `admin` keys: when an earlier attempt was applied but its reply
    was lost, the account already holds these keys, and they are saved then.
    """
    result = await bus.call(
        Bootstrap(keys=[new_key(admin.live), new_key(admin.test)], plan=plan), timeout=TIMEOUT
    )
    if result.created or (
        stackfile.read_credentials(data_dir) is None and await _holds(bus, result, admin.live)
    ):
        path = stackfile.write_credentials(data_dir, result.account_id, admin.live, admin.test)
        log.info("account created", extra={"account_id": result.account_id, "path": str(path)})
    else:
        log.info("account exists", extra={"account_id": result.account_id})
    return result


async def _holds(bus: Bus, account: BootstrapResult, secret: str) -> bool:
    """Whether `secret` is an active key of `account` (our own earlier bootstrap attempt)."""
    try:
        principal = await bus.call(VerifyKey(secret_hash=keys.hash_secret(secret)), timeout=TIMEOUT)
    except RemoteError:
        return False
    return principal.account_id == account.account_id


async def ensure_admin_key(bus: Bus, secret: str) -> BootstrapResult:
    result = await bus.call(EnsureKey(key=new_key(secret)), timeout=TIMEOUT)
    log.info(
        "STRATUS_ADMIN_KEY ensured",
        extra={"hint": keys.hint(secret), "key_created": result.created, "key_ids": result.key_ids},
    )
    return result


# --- `stratus accounts create|set-plan`: operator commands against a running stack -------------


async def _operate(message: Any) -> Any:
    """Send one identity command through the running stack's bus and return its result."""
    async with operator_bus("identity") as bus:
        return await bus.call(message, timeout=TIMEOUT)


async def create_account(name: str, plan: Plan) -> tuple[AccountCreatedResult, AdminKeys]:
    """A new tenant with one admin key per mode; the secrets exist only in the return value."""
    admin = AdminKeys.generate()
    message = CreateAccount(name=name, plan=plan, keys=[new_key(admin.live), new_key(admin.test)])
    return await _operate(message), admin


def _run(coro: Any) -> tuple[int, Any]:
    try:
        return 0, asyncio.run(coro)
    except NotRunning as exc:
        print(f"stratus: {exc}", file=sys.stderr)
    except ServiceTimeout:
        print(f"stratus: the identity service did not answer within {TIMEOUT:g}s", file=sys.stderr)
    except RemoteError as exc:
        print(f"stratus: {exc.error.message} ({exc.error.code})", file=sys.stderr)
    return 1, None


def main_create(name: str, plan: Plan, as_json: bool) -> int:
    code, made = _run(create_account(name, plan))
    if code:
        return code
    result, admin = made
    account = result.account
    if as_json:
        live_id, test_id = result.key_ids
        print(
            json.dumps(
                {
                    "id": account.id,
                    "name": account.name,
                    "plan": account.plan,
                    "keys": {"live": admin.live, "test": admin.test},
                    "key_ids": {"live": live_id, "test": test_id},
                }
            )
        )
    else:
        print(f"account {account.id} ({account.name}, plan {account.plan})")
        print(f"  live key: {admin.live}")
        print(f"  test key: {admin.test}")
        print("  these keys are shown only now: store them somewhere safe")
    return 0


def main_set_plan(account_id: str, plan: Plan) -> int:
    code, account = _run(_operate(SetPlan(account_id=account_id, plan=plan)))
    if code:
        return code
    print(json.dumps({"id": account.id, "name": account.name, "plan": account.plan}))
    return 0
