"""Bootstrap of the first account: fresh admin keys once, and the operator's `STRATUS_ADMIN_KEY`.

Only hashes and hints cross the bus; the plaintext keys go to `<data>/credentials` (0600) once,
when the account is created. A restart finds the account and creates nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

from stratus_bus import Bus, RemoteError
from stratus_cli import stackfile
from stratus_contracts import keys, subjects
from stratus_contracts.identity import (
    Bootstrap,
    BootstrapResult,
    EnsureKey,
    NewKey,
    Principal,
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


async def bootstrap(bus: Bus, data_dir: Path, admin: AdminKeys) -> BootstrapResult:
    """Create the account with one live and one test key unless it exists; save new keys.

    Safe to repeat with the same `admin` keys: when an earlier attempt was applied but its reply
    was lost, the account already holds these keys, and they are saved then.
    """
    result = await bus.request(
        subjects.command("identity", "bootstrap"),
        Bootstrap(keys=[new_key(admin.live), new_key(admin.test)]),
        BootstrapResult,
        timeout=TIMEOUT,
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
        principal = await bus.request(
            subjects.query("identity", "verify_key"),
            VerifyKey(secret_hash=keys.hash_secret(secret)),
            Principal,
            timeout=TIMEOUT,
        )
    except RemoteError:
        return False
    return principal.account_id == account.account_id


async def ensure_admin_key(bus: Bus, secret: str) -> BootstrapResult:
    result = await bus.request(
        subjects.command("identity", "ensure_key"),
        EnsureKey(key=new_key(secret)),
        BootstrapResult,
        timeout=TIMEOUT,
    )
    log.info(
        "STRATUS_ADMIN_KEY ensured",
        extra={"hint": keys.hint(secret), "key_created": result.created, "key_ids": result.key_ids},
    )
    return result
