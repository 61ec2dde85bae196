"""Short-lived bearer tokens: `tok_<claims>.<signature>`, HMAC-SHA256 with a daily signing key.

Signing keys live in the JetStream KV bucket `stratus_token_keys` (kid = UTC date), so every
gateway replica can verify every other's tokens without a store round trip; the first replica
that issues a token on a new day creates that day's key. Keys expire from the bucket after three
days, which outlives the longest token (24 h).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from stratus_bus import Bus, kv_create, kv_get_written
from stratus_contracts.auth import Scope
from stratus_contracts.events import Mode
from stratus_gateway.problems import ApiError

BUCKET = "stratus_token_keys"
KEY_TTL = 3 * 86400
PREFIX = "tok_"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="stratus", error="invalid_token"'}


class TokenClaims(msgspec.Struct, frozen=True, kw_only=True):
    kid: str
    jti: str
    key: str  # the parent API key id
    account: str
    mode: Mode
    scopes: tuple[Scope, ...]
    project_ids: tuple[str, ...] | None = None
    environments: tuple[str, ...] | None = None
    sub: str | None = None
    iat: int
    exp: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, kv: KeyValue, clock: Callable[[], float] = time.time) -> None:
        self.kv = kv
        self.clock = clock
        self._keys: dict[str, bytes] = {}
        self._decoder = msgspec.json.Decoder(TokenClaims)

    @classmethod
    async def open(cls, bus: Bus, clock: Callable[[], float] = time.time) -> TokenSigner:
        kv = await bus.key_value(KeyValueConfig(bucket=BUCKET, history=1, ttl=KEY_TTL))
        return cls(kv, clock)

    def now(self) -> int:
        return int(self.clock())

    async def _secret(self, kid: str, *, create: bool) -> bytes | None:
        if kid in self._keys:
            return self._keys[kid]
        try:
            secret = (await self.kv.get(kid)).value
        except KeyNotFoundError:
            if not create:
                return None
            # KeyWrongLastSequenceError: another replica created today's key first; use theirs.
            with contextlib.suppress(KeyWrongLastSequenceError):
                await kv_create(self.kv, kid, secrets.token_bytes(32))
            secret = (await kv_get_written(self.kv, kid)).value
        if secret:
            self._keys[kid] = secret
        return secret

    async def issue(self, claims: TokenClaims) -> str:
        kid = datetime.fromtimestamp(self.now(), UTC).strftime("k%Y%m%d")
        secret = await self._secret(kid, create=True)
        assert secret is not None
        body = _b64(msgspec.json.encode(msgspec.structs.replace(claims, kid=kid)))
        signature = hmac.new(secret, (PREFIX + body).encode(), hashlib.sha256).digest()
        return f"{PREFIX}{body}.{_b64(signature)}"

    async def verify(self, token: str) -> TokenClaims:
        """The token's claims, or 401 `invalid_token` / `token_expired`."""
        invalid = ApiError("invalid_token", headers=CHALLENGE)
        body, dot, signature = token[len(PREFIX) :].partition(".")
        if not token.startswith(PREFIX) or not dot or not body or not signature:
            raise invalid
        try:
            claims = self._decoder.decode(_unb64(body))
            given = _unb64(signature)
        except (ValueError, msgspec.DecodeError):
            raise invalid from None
        secret = await self._secret(claims.kid, create=False) if claims.kid.isalnum() else None
        if secret is None:
            raise invalid
        expected = hmac.new(secret, (PREFIX + body).encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, given):
            raise invalid
        if claims.exp <= self.now():
            raise ApiError("token_expired", headers=CHALLENGE)
        return claims
