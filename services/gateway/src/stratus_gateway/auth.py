"""Authentication and authorization for every `/v1` route.

A bearer value is an API key (`sk_live_…`/`sk_test_…`) or a short-lived token (`tok_…`). Keys
are verified by identity through the SHA-256 of the secret (the secret never crosses the bus),
and the answer is cached here until identity publishes a change to that key (`evt.*.*.key.>`,
acted on as it arrives) or a short TTL passes. Expiry, IP allowlists and scopes are then checked
locally, so an authenticated request normally costs no bus round trip.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import os
import time
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from nats.js.api import DeliverPolicy

from stratus_bus import Bus, RemoteError, ServiceTimeout, ServiceUnavailable
from stratus_contracts import identity, keys, subjects
from stratus_contracts.auth import Caller, Scope
from stratus_contracts.events import Event
from stratus_gateway import ratelimit
from stratus_gateway.clientip import allowed, client_ip
from stratus_gateway.envelope import RESPONSE_HEADERS
from stratus_gateway.middleware import AUTH_STATE, BEARER_STATE
from stratus_gateway.problems import ApiError
from stratus_gateway.tokens import TokenClaims, TokenSigner
from stratus_gateway.usage import KeyUsage
from stratus_telemetry import request_id_var

log = logging.getLogger("stratus.gateway.auth")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="stratus"'}
_AUTH_FAILURES = frozenset({"invalid_api_key", "api_key_revoked", "key_expired", "key_not_found"})
MAX_BEARER = 4096
_MAX_HEADER = len("Bearer ") + MAX_BEARER
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _fail(code: str, detail: str | None = None) -> ApiError:
    return ApiError(code, detail, headers=CHALLENGE)


class Verified:
    """A key's principal as cached, with the times every request compares against it turned
    into epoch seconds once, not per request."""

    __slots__ = ("at", "born", "expires", "principal")

    def __init__(self, principal: identity.Principal) -> None:
        self.principal = principal
        self.at = time.monotonic()
        self.expires = principal.expires_at.timestamp() if principal.expires_at else math.inf
        self.born = (principal.secret_created or principal.created).timestamp()

    def age(self, now: float) -> int:
        """Age in seconds of the presented secret (a rotation makes a key young again)."""
        return max(0, int(now - self.born))


class Authenticator:
    """Verifies bearer values; caches key principals and evicts them on key events."""

    def __init__(
        self,
        bus: Bus,
        signer: TokenSigner,
        usage: KeyUsage,
        limiter: ratelimit.RateLimiter,
        *,
        ttl: float | None = None,
    ) -> None:
        self.bus = bus
        self.signer = signer
        self.usage = usage  # when each key was last used
        self.limiter = limiter  # every authenticated request pays from its key's bucket
        self.ttl = ttl if ttl is not None else float(os.environ.get("STRATUS_AUTH_CACHE_TTL", "60"))
        self._by_hash: dict[str, Verified] = {}
        self._by_id: dict[str, Verified] = {}
        self._hashes: dict[str, set[str]] = {}
        self._decoder = msgspec.json.Decoder(Event)
        self._subscription: Any = None

    async def start(self) -> None:
        """Follow key changes from JetStream; a reconnect clears the cache (events may be missed)."""
        self._subscription = await self.bus.settled(
            lambda: self.bus.js.subscribe(
                subjects.event("*", "*", "key", ">"),
                cb=self._on_event,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.NEW,
            )
        )
        self.bus.on_reconnect(self.clear)

    async def stop(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()

    async def _on_event(self, msg: Any) -> None:
        try:
            key_id = self._decoder.decode(msg.data).data.get("id")
        except msgspec.DecodeError:
            return
        if isinstance(key_id, str):
            self.evict(key_id)

    def evict(self, key_id: str) -> None:
        self._by_id.pop(key_id, None)
        for secret_hash in self._hashes.pop(key_id, ()):
            self._by_hash.pop(secret_hash, None)

    def clear(self) -> None:
        self._by_hash.clear()
        self._by_id.clear()
        self._hashes.clear()

    def _fresh(self, entry: Verified | None) -> Verified | None:
        if entry is None or time.monotonic() - entry.at > self.ttl:
            return None
        return entry

    async def _ask(self, message: identity.VerifyKey | identity.GetKeyPrincipal) -> Verified:
        try:
            return Verified(await self.bus.call(message))
        except RemoteError as exc:
            if exc.error.code in _AUTH_FAILURES:
                code = "invalid_api_key" if exc.error.code == "key_not_found" else exc.error.code
                raise _fail(code) from None
            raise

    def cached(self, secret_hash: str) -> Verified | None:
        return self._fresh(self._by_hash.get(secret_hash))

    def cached_header(self, header: bytes) -> Verified | None:
        """The cached principal for an `Authorization` header written the usual way
        (`Bearer sk_…`, nothing after the key), hashed straight from its bytes; None for anything
        else, which `authenticate` then handles in full."""
        if header[:10] != b"Bearer sk_" or len(header) > _MAX_HEADER or not header[-1:].isalnum():
            return None
        return self.cached(keys.hash_secret_bytes(header[7:]))

    async def _verify(self, secret: str, secret_hash: str) -> Verified:
        """Ask identity about a key that is not cached, and cache the answer."""
        # Only a value that hashes to no cached key can be malformed: check it here.
        if keys.mode_of(secret) is None:
            raise _fail("malformed_api_key")
        verified = await self._ask(identity.VerifyKey(secret_hash=secret_hash))
        self._by_hash[secret_hash] = verified
        self._hashes.setdefault(verified.principal.key_id, set()).add(secret_hash)
        return verified

    async def key_by_id(self, key_id: str) -> Verified:
        verified = self._fresh(self._by_id.get(key_id))
        if verified is None:
            verified = await self._ask(identity.GetKeyPrincipal(key_id=key_id))
            self._by_id[key_id] = verified
        return verified

    async def authenticate(self, bearer: str, ip: str) -> Authenticated:
        """Resolve a bearer value to the caller, or raise the 401/403 problem. A key whose
        principal is cached is checked without suspending (the common case: no coroutines)."""
        if bearer.startswith("tok_"):
            claims = await self.signer.verify(bearer)  # raises invalid_token / token_expired
            return self.admit(await self.key_by_id(claims.key), claims, ip)
        secret_hash = keys.hash_secret(bearer)
        verified = self.cached(secret_hash) or await self._verify(bearer, secret_hash)
        return self.admit(verified, None, ip)

    async def charge_unrouted(self, scope: Any) -> ApiError | None:
        """See `charge_unrouted` (the outer layer cannot import this module)."""
        return await charge_unrouted(scope, self)

    def admit(self, verified: Verified, claims: TokenClaims | None, ip: str) -> Authenticated:
        """Expiry and IP allowlist of the key, and a token's narrowing of it; the caller."""
        now = time.time()
        if verified.expires <= now:
            raise _fail("key_expired")
        principal = verified.principal
        if principal.allowed_ips and not allowed(ip, principal.allowed_ips):
            raise ApiError("ip_not_allowed", f"Requests from {ip} are not allowed for this key.")
        scopes, project_ids, environments = principal.scopes, principal.project_ids, principal.environments
        if claims is not None:
            # A token never exceeds its parent as the parent is *now* (it may have been narrowed).
            scopes = tuple(s for s in claims.scopes if s in principal.scopes)
            project_ids = _narrow(project_ids, claims.project_ids)
            environments = _narrow(environments, claims.environments)
        caller = Caller(
            account_id=principal.account_id,
            mode=principal.mode,
            key_id=principal.key_id,
            scopes=scopes,
            project_ids=project_ids,
            environments=environments,
            member_id=principal.member_id,
            token_id=claims.jti if claims else None,
            ip=ip,
            request_id=request_id_var.get(),
        )
        return Authenticated(caller, principal, claims, verified.age(now))


def _narrow(parent: tuple[str, ...] | None, child: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if child is None:
        return parent
    if parent is None:
        return child
    return tuple(x for x in child if x in parent)


AGE_WARNING_DAYS = float(os.environ.get("STRATUS_KEY_AGE_WARNING_DAYS", "90"))
AGE_WARNING_SECONDS = AGE_WARNING_DAYS * 86400


class Authenticated(msgspec.Struct, frozen=True):
    caller: Caller
    principal: identity.Principal
    token: TokenClaims | None
    age_seconds: int  # of the presented secret, when the request was authenticated


def required_scope(method: str, handler: BaseRouteHandler) -> Scope:
    """A route's scope: its `opt["scope"]`, else `read` for reads and `write` for writes."""
    scope = handler.opt.get("scope")
    if scope is not None:
        return scope
    return "write" if method in _WRITE_METHODS else "read"


def _bearer(scope: Any) -> str:
    header = scope.get(BEARER_STATE)  # found by the outer middleware
    if header is None:
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
    if not header:
        raise _fail("missing_api_key")
    scheme, _, bearer = header.decode("latin-1").partition(" ")
    bearer = bearer.strip()
    if scheme.lower() != "bearer" or not bearer:
        raise _fail("malformed_api_key", "Use the `Authorization: Bearer <key>` scheme.")
    if len(bearer) > MAX_BEARER:
        raise _fail("malformed_api_key")
    return bearer


async def authorize(scope: Any) -> Authenticated:
    """Authenticate the request and check the route's scope, once per request (the idempotency
    middleware on write routes runs it first, `before_request` otherwise); 401/403/429 problems.

    It runs after routing, so the route's `opt` is known, and not as a Litestar guard, because
    guards copy the handler on every request. Its errors go through the app's exception handlers.
    """
    done = scope.get(AUTH_STATE)
    if done is not None:
        return done  # type: ignore[no-any-return]
    handler: BaseRouteHandler = scope["route_handler"]
    # state["…"], not state.…: Litestar's State finds attributes through a failed lookup and
    # __getattr__, which costs an exception per access.
    authn: Authenticator = scope["app"].state["authenticator"]
    try:
        header = scope.get(BEARER_STATE)
        verified = authn.cached_header(header) if header is not None else None
        if verified is not None:
            done = authn.admit(verified, None, client_ip(scope))
        else:
            done = await authn.authenticate(_bearer(scope), client_ip(scope))
    except ApiError:
        await ratelimit.refuse_failed_auth(scope)  # per client address; 429 once over
        raise
    remember(scope, done)
    who = done.caller
    # Every authenticated request pays, from its key's bucket (a token's parent key's).
    if (charging := ratelimit.charge_key(scope, authn.limiter, who.key_id, done.principal.plan)) is not None:
        await charging
    authn.usage.record(who.key_id)
    if done.age_seconds > AGE_WARNING_SECONDS:
        warning = (
            f'299 stratus "API key is {done.age_seconds // 86400} days old; '
            'rotate it (POST /v1/keys/{id}/rotate)"'
        )
        scope.setdefault(RESPONSE_HEADERS, []).append((b"warning", warning.encode()))
    if done.token is not None and handler.opt.get("keys_only"):
        raise ApiError("token_not_allowed")
    needed = required_scope(scope["method"], handler)
    if needed not in who.scopes:
        raise ApiError("insufficient_scope", f"This route needs the `{needed}` scope, which this key lacks.")
    return done


async def charge_unrouted(scope: Any, authn: Authenticator) -> ApiError | None:
    """A request with credentials that no route took (404, 405): when they are valid, the key's
    bucket pays and the response carries its `X-RateLimit-*`, as any authenticated response
    does; the 429 to send instead when the key is over its limit. Invalid credentials leave the
    request to the client address's bucket (the outer layer charges it afterwards)."""
    try:
        header = scope.get(BEARER_STATE)
        verified = authn.cached_header(header) if header is not None else None
        if verified is not None:
            done = authn.admit(verified, None, client_ip(scope))
        else:
            done = await authn.authenticate(_bearer(scope), client_ip(scope))
    except (ApiError, RemoteError, ServiceUnavailable, ServiceTimeout):
        return None
    charging = ratelimit.charge_key(scope, authn.limiter, done.caller.key_id, done.principal.plan)
    if charging is not None:
        try:
            await charging
        except ApiError as exc:
            return exc
    return None


# The same value as the scope's AUTH_STATE, for handlers that take no `request`: Litestar's
# parameter injection costs a cheap route more than its own work (docs/performance.md). Each
# request runs in its own task, so the value never leaks from one request to the next.
_current: contextvars.ContextVar[Authenticated] = contextvars.ContextVar("stratus_authenticated")


def remember(scope: Any, value: Authenticated) -> None:
    """Record the request's credential (authorize, and idempotency when it adds its key)."""
    scope[AUTH_STATE] = value
    _current.set(value)


def current() -> Authenticated:
    """The credential of the request being handled (after `authorize`)."""
    return _current.get()


def authenticated(connection: ASGIConnection[Any, Any, Any, Any]) -> Authenticated:
    return connection.scope[AUTH_STATE]  # type: ignore[literal-required]


def caller(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    return authenticated(connection).caller


def principal(connection: ASGIConnection[Any, Any, Any, Any]) -> identity.Principal:
    return authenticated(connection).principal


def token(connection: ASGIConnection[Any, Any, Any, Any]) -> TokenClaims | None:
    return authenticated(connection).token


async def start(app: Any, bus: Bus, limiter: ratelimit.RateLimiter) -> Authenticator:
    app.state.key_usage = usage = await KeyUsage.open(bus)
    signer = await TokenSigner.open(bus)
    authn = Authenticator(bus, signer, usage, limiter)
    await authn.start()
    app.state.authenticator = authn
    return authn


__all__ = [
    "Authenticator",
    "authorize",
    "caller",
    "current",
    "principal",
    "remember",
    "required_scope",
    "start",
    "token",
]
