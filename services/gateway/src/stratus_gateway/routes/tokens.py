"""`/v1/tokens`: short-lived bearer tokens for front ends, narrowed from the calling key."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, post
from litestar.params import JSONBody

from stratus_contracts.auth import Scope
from stratus_gateway.auth import caller, principal
from stratus_gateway.envelope import meta, ok
from stratus_gateway.openapi_docs import problems
from stratus_gateway.problems import ApiError
from stratus_gateway.schemas import EnvironmentNames, ProjectIds
from stratus_gateway.tokens import TokenClaims, TokenSigner

Req = Request[Any, Any, Any]
MAX_TTL = 86_400


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=3)] | None = None
    project_ids: ProjectIds | None = None
    environments: EnvironmentNames | None = None
    ttl_seconds: Annotated[int, msgspec.Meta(ge=1, le=MAX_TTL)] = 900
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


class Token(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["token"] = "token"
    # Shown in this response only: null in a replay (`Idempotent-Replayed: true`), whose stored
    # body never holds the credential.
    token: str | None
    key_id: str
    scopes: tuple[Scope, ...]
    project_ids: tuple[str, ...] | None
    environments: tuple[str, ...] | None
    subject: str | None
    expires_at: datetime


class TokenEnvelope(msgspec.Struct, kw_only=True):
    data: Token
    meta: Any
    error: None = None


def _subset(asked: list[str] | None, held: tuple[str, ...] | None, what: str) -> tuple[str, ...] | None:
    if asked is None:
        return held
    if held is not None and (extra := [x for x in asked if x not in held]):
        raise ApiError("token_widening", f"The key does not hold these {what}: {', '.join(extra)}.")
    return tuple(dict.fromkeys(asked))


@post(
    "/tokens",
    operation_id="createToken",
    summary="Create a short-lived token",
    tags=["identity"],
    status_code=201,
    opt={"scope": "read", "keys_only": True},
    responses=problems("token_widening", "token_not_allowed", body=True),
)
async def create_token(request: Req, data: JSONBody[TokenCreate]) -> Response[TokenEnvelope]:
    who, key = caller(request), principal(request)
    scopes = _subset(list(data.scopes) if data.scopes else None, who.scopes, "scopes") or ()
    project_ids = _subset(data.project_ids, who.project_ids, "projects")
    environments = _subset(data.environments, who.environments, "environments")
    signer: TokenSigner = request.app.state["authenticator"].signer
    now = signer.now()
    expires = now + data.ttl_seconds
    if key.expires_at is not None:
        # A token dies no later than the secret that made it.
        expires = min(expires, int(key.expires_at.timestamp()))
    claims = TokenClaims(
        kid="",
        jti="tok_" + secrets.token_urlsafe(12),
        key=who.key_id,
        account=who.account_id,
        mode=who.mode,
        scopes=scopes,
        project_ids=project_ids,
        environments=environments,
        sub=data.subject,
        iat=now,
        exp=expires,
    )
    token = Token(
        id=claims.jti,
        token=await signer.issue(claims),
        key_id=who.key_id,
        scopes=scopes,
        project_ids=project_ids,
        environments=environments,
        subject=data.subject,
        expires_at=datetime.fromtimestamp(expires, UTC),
    )
    return ok(TokenEnvelope(data=token, meta=meta()), status=201)
