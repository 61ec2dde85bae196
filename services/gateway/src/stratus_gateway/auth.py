"""Bearer authentication: every `/v1` route needs a live, unrevoked API key.

The secret never leaves the gateway: identity is asked about its SHA-256 hash only.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from stratus_bus import Bus, RemoteError
from stratus_contracts import identity, keys, subjects
from stratus_contracts.projects import Tenant
from stratus_gateway.problems import ApiError

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="stratus"'}
_VERIFY = subjects.query(identity.SERVICE, "verify_key")


def _fail(code: str, detail: str | None = None) -> ApiError:
    return ApiError(code, detail, headers=CHALLENGE)


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: verify the bearer key and leave the principal on the connection state."""
    header = connection.headers.get("authorization")
    if not header:
        raise _fail("missing_api_key")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise _fail("malformed_api_key", "Use the `Authorization: Bearer <key>` scheme.")
    if keys.mode_of(secret) is None:
        raise _fail("malformed_api_key")
    bus: Bus = connection.app.state.bus
    try:
        principal = await bus.request(
            _VERIFY, identity.VerifyKey(secret_hash=keys.hash_secret(secret)), identity.Principal
        )
    except RemoteError as exc:
        if exc.error.code in {"invalid_api_key", "api_key_revoked"}:
            raise _fail(exc.error.code) from None
        raise
    connection.state.principal = principal


def principal(connection: ASGIConnection[Any, Any, Any, Any]) -> identity.Principal:
    return connection.state.principal


def tenant(connection: ASGIConnection[Any, Any, Any, Any]) -> Tenant:
    p = principal(connection)
    return Tenant(account_id=p.account_id, mode=p.mode, actor=p.key_id)
