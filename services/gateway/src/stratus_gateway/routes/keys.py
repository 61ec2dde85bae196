"""`/v1/keys`: create, list, get, update, revoke and rotate API keys (admin scope, keys only).

The gateway generates every secret (identity only ever sees its hash and hint) and returns it
exactly once, in the response that created it. Reads show a hint, never a secret.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import JSONBody, Parameter, PathParameter

from stratus_bus import Bus, replayed
from stratus_contracts import identity as c
from stratus_contracts import keys
from stratus_gateway.auth import caller
from stratus_gateway.envelope import (
    KeyEnvelope,
    KeyListEnvelope,
    KeyWithSecret,
    KeyWithSecretEnvelope,
    ListMeta,
    meta,
    ok,
)
from stratus_gateway.openapi_docs import LOCATION_HEADER, problems
from stratus_gateway.preconditions import (
    ETAG_HEADER,
    PRECONDITION_CODES,
    IfMatch,
    IfNoneMatch,
    etag,
    parse_if_match,
    unchanged,
)
from stratus_gateway.routes.params import Cursor, Limit
from stratus_gateway.schemas import KeyCreate, KeyRotate, KeyUpdate
from stratus_gateway.usage import KeyUsage

Req = Request[Any, Any, Any]
KeyId = Annotated[str, PathParameter(description="The key's id, `key_…`.", max_length=64)]
# Managing keys is an admin action, and a short-lived token may never mint or see keys.
ADMIN = {"scope": "admin", "keys_only": True}
DENIED = ("insufficient_scope", "token_not_allowed")


def _bus(request: Req) -> Bus:
    return request.app.state["bus"]


async def _with_usage(request: Req, views: list[c.KeyView]) -> list[c.KeyView]:
    usage: KeyUsage = request.app.state["key_usage"]
    used = await usage.last_used([v.id for v in views])
    return [msgspec.structs.replace(v, last_used=used.get(v.id)) for v in views]


def _with_secret(view: c.KeyView, secret: str) -> KeyWithSecret:
    # Identity answered from its record of an earlier request with this Idempotency-Key: the key
    # (or rotation) is that request's, whose secret this attempt never had. Never show ours.
    return KeyWithSecret(**msgspec.structs.asdict(view), secret=None if replayed() else secret)


def _etag(view: c.KeyView) -> dict[str, str]:
    return etag(view.version)


class KeyController(Controller):
    path = "/keys"
    tags = ["identity"]

    @post(
        "/",
        operation_id="createKey",
        summary="Create an API key (its secret is shown only in this response)",
        status_code=201,
        opt=ADMIN,
        response_headers=[ETAG_HEADER, LOCATION_HEADER],
        responses=problems("scope_not_held", "member_not_found", *DENIED, body=True),
    )
    async def create(self, request: Req, data: JSONBody[KeyCreate]) -> Response[KeyWithSecretEnvelope]:
        who = caller(request)
        secret = keys.generate(who.mode)
        cmd = c.CreateKey(
            caller=who,
            secret_hash=keys.hash_secret(secret),
            hint=keys.hint(secret),
            name=data.name,
            scopes=tuple(data.scopes),
            project_ids=None if data.project_ids is None else tuple(data.project_ids),
            environments=None if data.environments is None else tuple(data.environments),
            allowed_ips=tuple(data.allowed_ips),
            expires_at=data.expires_at,
            member_id=data.member_id,
        )
        view = await _bus(request).call(cmd)
        return ok(
            KeyWithSecretEnvelope(data=_with_secret(view, secret), meta=meta()),
            status=201,
            headers={"Location": f"/v1/keys/{view.id}", **_etag(view)},
        )

    @get(
        "/",
        operation_id="listKeys",
        summary="List API keys (newest first; never a secret)",
        opt=ADMIN,
        responses=problems("invalid_cursor", "validation_failed", *DENIED),
    )
    async def list_keys(
        self,
        request: Req,
        limit: Limit = 20,
        cursor: Cursor = None,
        revoked: Annotated[
            bool | None,
            Parameter(description="`true`: only revoked keys; `false`: only active ones; omitted: both."),
        ] = None,
    ) -> Response[KeyListEnvelope]:
        q = c.ListKeys(caller=caller(request), limit=limit, cursor=cursor, revoked=revoked)
        page = await _bus(request).call(q)
        list_meta = ListMeta(
            request_id=meta().request_id, has_more=page.has_more, next_cursor=page.next_cursor
        )
        return ok(KeyListEnvelope(data=await _with_usage(request, page.data), meta=list_meta))

    @get(
        "/{key_id:str}",
        operation_id="getKey",
        summary="Get an API key (never its secret)",
        opt=ADMIN,
        response_headers=[ETAG_HEADER],
        responses=problems("key_not_found", *DENIED),
    )
    async def get_key(
        self, request: Req, key_id: KeyId, if_none_match: IfNoneMatch = None
    ) -> Response[KeyEnvelope]:
        q = c.GetKey(caller=caller(request), key_id=key_id)
        view = await _bus(request).call(q)
        if (not_modified := unchanged(if_none_match, view.version)) is not None:
            return not_modified
        [view] = await _with_usage(request, [view])
        return ok(KeyEnvelope(data=view, meta=meta()), headers=_etag(view))

    @patch(
        "/{key_id:str}",
        operation_id="updateKey",
        summary="Change an API key's name, scopes, restrictions, allowlist or expiry",
        opt=ADMIN,
        response_headers=[ETAG_HEADER],
        responses=problems(
            "key_not_found", "key_revoked", "scope_not_held", *DENIED, *PRECONDITION_CODES, body=True
        ),
    )
    async def update(
        self, request: Req, key_id: KeyId, data: JSONBody[KeyUpdate], if_match: IfMatch = None
    ) -> Response[KeyEnvelope]:
        def tupled(value: Any) -> Any:
            return tuple(value) if isinstance(value, list) else value

        cmd = c.UpdateKey(
            caller=caller(request),
            key_id=key_id,
            name=data.name,
            scopes=tupled(data.scopes),
            project_ids=tupled(data.project_ids),
            environments=tupled(data.environments),
            allowed_ips=tupled(data.allowed_ips),
            expires_at=data.expires_at,
            expected_version=parse_if_match(if_match).version,
        )
        view = await _bus(request).call(cmd)
        [view] = await _with_usage(request, [view])
        return ok(KeyEnvelope(data=view, meta=meta()), headers=_etag(view))

    @delete(
        "/{key_id:str}",
        operation_id="revokeKey",
        summary="Revoke an API key (every gateway refuses it within a second)",
        status_code=200,
        opt=ADMIN,
        response_headers=[ETAG_HEADER],
        responses=problems("key_not_found", "scope_not_held", *DENIED, *PRECONDITION_CODES),
    )
    async def revoke(self, request: Req, key_id: KeyId, if_match: IfMatch = None) -> Response[KeyEnvelope]:
        who = caller(request)
        cmd = c.RevokeKey(
            caller=who,
            account_id=who.account_id,
            key_id=key_id,
            expected_version=parse_if_match(if_match).version,
        )
        view = await _bus(request).call(cmd)
        return ok(KeyEnvelope(data=view, meta=meta()), headers=_etag(view))

    @post(
        "/{key_id:str}/rotate",
        operation_id="rotateKey",
        summary="Give an API key a new secret; the old one works until the overlap ends",
        status_code=200,
        opt=ADMIN,
        response_headers=[ETAG_HEADER],
        responses=problems(
            "key_not_found", "key_revoked", "scope_not_held", *DENIED, *PRECONDITION_CODES, body=True
        ),
    )
    async def rotate(
        self,
        request: Req,
        key_id: KeyId,
        data: JSONBody[KeyRotate | None] = None,
        if_match: IfMatch = None,
    ) -> Response[KeyWithSecretEnvelope]:
        who = caller(request)
        secret = keys.generate(who.mode)
        cmd = c.RotateKey(
            caller=who,
            key_id=key_id,
            secret_hash=keys.hash_secret(secret),
            hint=keys.hint(secret),
            overlap_seconds=(data or KeyRotate()).overlap_seconds,
            expected_version=parse_if_match(if_match).version,
        )
        view = await _bus(request).call(cmd)
        return ok(KeyWithSecretEnvelope(data=_with_secret(view, secret), meta=meta()), headers=_etag(view))
