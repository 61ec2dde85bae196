"""An environment's variables: `/v1/envs/{id}/vars`, `/versions` and `/dotenv`.

Every change makes a new numbered config version and answers with it (secret values redacted).
Secret values are shown only with `?reveal=true`, which needs the `admin` scope (403
`insufficient_scope` otherwise, before anything is asked) and is recorded by the projects service
as `secret.revealed` before the values come back; such responses carry `Cache-Control: no-store`.
`/dotenv` is the one route family that speaks `text/plain` instead of JSON (route opt
`text_body`, which the JSON-only check in `app.py` honours).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, Response, delete, get, patch, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import JSONBody, Parameter, PathParameter

from stratus_bus import Bus
from stratus_contracts import envs as c
from stratus_gateway import dotenv
from stratus_gateway.auth import caller
from stratus_gateway.env_schemas import VarsPost, decode_patch, patch_schema
from stratus_gateway.envelope import ListMeta, Meta, meta, ok
from stratus_gateway.openapi_docs import LOCATION_HEADER, problems
from stratus_gateway.preconditions import ETAG_HEADER, PRECONDITION_CODES, IfMatch, etag, parse_if_match
from stratus_gateway.problems import ApiError
from stratus_gateway.routes.params import Cursor, Limit

Req = Request[Any, Any, Any]
EnvId = Annotated[str, PathParameter(description="The environment's id, `env_…`.", max_length=64)]
KeyPath = Annotated[
    str,
    PathParameter(
        description="The variable's key: letters, digits and `_`, not starting with a digit.",
        min_length=1,
        max_length=c.KEY_MAX,
        pattern=c.KEY_PATTERN,
    ),
]
Reveal = Annotated[
    bool,
    Parameter(description="Show secret values (needs the `admin` scope; recorded as `secret.revealed`)."),
]
TEXT = {"text_body": True}  # the JSON-only check lets this route's text/plain body through
NO_STORE = {"Cache-Control": "no-store"}
VAR_CODES = ("environment_not_found", "insufficient_scope", "insufficient_role", "encryption_unavailable")


class VarListMeta(msgspec.Struct, kw_only=True):
    request_id: str
    has_more: bool
    next_cursor: str | None
    config_version: int  # the version these variables belong to


class VarListEnvelope(msgspec.Struct, kw_only=True):
    data: list[c.EnvVar]
    meta: VarListMeta
    error: None = None


class ConfigVersionEnvelope(msgspec.Struct, kw_only=True):
    data: c.ConfigVersion
    meta: Meta
    error: None = None


class ConfigVersionListEnvelope(msgspec.Struct, kw_only=True):
    data: list[c.ConfigVersionSummary]
    meta: ListMeta
    error: None = None


@dataclass
class DotenvUpload(Operation):
    """The OpenAPI operation of a `text/plain` upload (Litestar documents JSON bodies only)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={MediaType.TEXT.value: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))},
            description="dotenv text: `KEY=value` lines; `# stratus:secret` marks the next "
            "variable secret, `# stratus:redacted KEY` keeps KEY as it is.",
            required=True,
        )


@dataclass
class VarsPatchOperation(Operation):
    """The OpenAPI operation of PATCH /vars, whose map body the route decodes itself."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=patch_schema())}, required=True
        )


def _bus(request: Req) -> Bus:
    return request.app.state["bus"]


def _check_reveal(request: Req, reveal: bool) -> None:
    if reveal and "admin" not in caller(request).scopes:
        raise ApiError(
            "insufficient_scope", "Revealing secret values needs the `admin` scope, which this key lacks."
        )


async def _change(request: Req, cmd: c.ChangeVars) -> c.ConfigVersion:
    return await _bus(request).call(cmd)


def _version_response(version: c.ConfigVersion, *, created: bool = False) -> Response[Any]:
    status = 201 if created and version.new else 200
    headers = etag(version.env_version)
    if status == 201:
        headers["Location"] = f"/v1/envs/{version.env_id}/versions/{version.number}"
    return ok(ConfigVersionEnvelope(data=version, meta=meta()), status=status, headers=headers)


class EnvVarController(Controller):
    path = "/envs/{env_id:str}"
    tags = ["environments"]

    @get(
        "/vars",
        operation_id="listEnvVars",
        summary="List an environment's variables",
        description="By key. Secret values are `null` with `redacted: true` unless `reveal=true`.",
        response_headers=[ETAG_HEADER],
        responses=problems(*VAR_CODES, "invalid_cursor", "validation_failed"),
    )
    async def list_vars(
        self,
        request: Req,
        env_id: EnvId,
        limit: Limit = 20,
        cursor: Cursor = None,
        reveal: Reveal = False,
    ) -> Response[VarListEnvelope]:
        _check_reveal(request, reveal)
        q = c.ListEnvVars(caller=caller(request), env_id=env_id, limit=limit, cursor=cursor, reveal=reveal)
        page = await _bus(request).call(q)
        list_meta = VarListMeta(
            request_id=meta().request_id,
            has_more=page.has_more,
            next_cursor=page.next_cursor,
            config_version=page.config_version,
        )
        headers = {**etag(page.env_version), **(NO_STORE if reveal else {})}
        return ok(VarListEnvelope(data=page.data, meta=list_meta), headers=headers)

    @post(
        "/vars",
        operation_id="setEnvVars",
        summary="Create or update variables",
        description="One (`{key, value, secret}`) or many (`{vars: [...]}`). 201 with the new "
        "config version; 200 with the current one when nothing changed.",
        status_code=201,
        response_headers=[ETAG_HEADER, LOCATION_HEADER],
        responses={
            200: ResponseSpec(
                data_container=ConfigVersionEnvelope,
                description="Nothing changed: the current config version.",
                generate_examples=False,
            ),
            **problems(*VAR_CODES, *PRECONDITION_CODES, body=True),
        },
    )
    async def set_vars(
        self, request: Req, env_id: EnvId, data: JSONBody[VarsPost], if_match: IfMatch = None
    ) -> Response[ConfigVersionEnvelope]:
        cmd = c.ChangeVars(
            caller=caller(request),
            env_id=env_id,
            set=data.changes(),
            expected_version=parse_if_match(if_match).version,
        )
        return _version_response(await _change(request, cmd), created=True)

    @patch(
        "/vars",
        operation_id="patchEnvVars",
        summary="Change variables by map",
        description='`{"KEY": "value", "OTHER": {"value": "…", "secret": true}, "OLD": null}`: set, '
        "set with a secret flag, delete (a missing key is ignored). A plain value keeps the key's "
        "secret flag. Answers with the resulting config version.",
        operation_class=VarsPatchOperation,
        response_headers=[ETAG_HEADER],
        responses=problems(*VAR_CODES, *PRECONDITION_CODES, body=True),
    )
    async def patch_vars(
        self, request: Req, env_id: EnvId, if_match: IfMatch = None
    ) -> Response[ConfigVersionEnvelope]:
        changes, removed = decode_patch(await request.body())
        cmd = c.ChangeVars(
            caller=caller(request),
            env_id=env_id,
            set=changes,
            remove=removed,
            missing_ok=True,
            expected_version=parse_if_match(if_match).version,
        )
        return _version_response(await _change(request, cmd))

    @delete(
        "/vars/{key:str}",
        operation_id="deleteEnvVar",
        summary="Delete a variable",
        description="Answers with the resulting config version.",
        status_code=200,
        response_headers=[ETAG_HEADER],
        responses=problems(*VAR_CODES, "env_var_not_found", "validation_failed", *PRECONDITION_CODES),
    )
    async def delete_var(
        self, request: Req, env_id: EnvId, key: KeyPath, if_match: IfMatch = None
    ) -> Response[ConfigVersionEnvelope]:
        cmd = c.ChangeVars(
            caller=caller(request),
            env_id=env_id,
            remove=[key],
            expected_version=parse_if_match(if_match).version,
        )
        return _version_response(await _change(request, cmd))

    @get(
        "/versions",
        operation_id="listConfigVersions",
        summary="List an environment's config versions",
        description="Newest first; each names the keys it set and removed (never values).",
        responses=problems(
            "environment_not_found", "insufficient_scope", "invalid_cursor", "validation_failed"
        ),
    )
    async def list_versions(
        self,
        request: Req,
        env_id: EnvId,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> Response[ConfigVersionListEnvelope]:
        q = c.ListConfigVersions(caller=caller(request), env_id=env_id, limit=limit, cursor=cursor)
        page = await _bus(request).call(q)
        list_meta = ListMeta(
            request_id=meta().request_id, has_more=page.has_more, next_cursor=page.next_cursor
        )
        return ok(ConfigVersionListEnvelope(data=page.data, meta=list_meta))

    @get(
        "/versions/{number:int}",
        operation_id="getConfigVersion",
        summary="Get one config version",
        description="Every variable as it was in that version (a deployment pins one); secret "
        "values redacted unless `reveal=true`. The `ETag` is the environment's version.",
        response_headers=[ETAG_HEADER],
        responses=problems(*VAR_CODES, "config_version_not_found"),
    )
    async def get_version(
        self,
        request: Req,
        env_id: EnvId,
        number: Annotated[int, PathParameter(ge=1, le=2**31, description="The version number.")],
        reveal: Reveal = False,
    ) -> Response[ConfigVersionEnvelope]:
        _check_reveal(request, reveal)
        q = c.GetConfigVersion(caller=caller(request), env_id=env_id, number=number, reveal=reveal)
        version = await _bus(request).call(q)
        headers = {**etag(version.env_version), **(NO_STORE if reveal else {})}
        return ok(ConfigVersionEnvelope(data=version, meta=meta()), headers=headers)

    @get(
        "/dotenv",
        operation_id="exportDotenv",
        summary="Export the variables as a .env file",
        description="`text/plain`. Secret values are redacted (a `# stratus:redacted KEY` line) "
        "unless `reveal=true`; then each secret follows a `# stratus:secret` line.",
        media_type=MediaType.TEXT,
        response_headers=[ETAG_HEADER],
        responses=problems(*VAR_CODES),
    )
    async def export_dotenv(self, request: Req, env_id: EnvId, reveal: Reveal = False) -> Response[str]:
        _check_reveal(request, reveal)
        q = c.GetConfigVersion(caller=caller(request), env_id=env_id, reveal=reveal, via="dotenv")
        version = await _bus(request).call(q)
        headers = {**etag(version.env_version), **(NO_STORE if reveal else {})}
        return Response(dotenv.render(version), media_type=MediaType.TEXT, headers=headers)

    @put(
        "/dotenv",
        operation_id="importDotenv",
        summary="Import variables from a .env file",
        description="Send `Content-Type: text/plain`. Sets every variable in the file (a variable "
        "already there keeps its secret flag unless a `# stratus:secret` line marks it); with "
        "`prune=true` also deletes every variable the file neither sets nor keeps. Answers with "
        "the resulting config version.",
        status_code=200,
        opt=TEXT,
        operation_class=DotenvUpload,
        response_headers=[ETAG_HEADER],
        responses=problems(*VAR_CODES, *PRECONDITION_CODES, body=True),
    )
    async def import_dotenv(
        self,
        request: Req,
        env_id: EnvId,
        prune: Annotated[
            bool, Parameter(description="Delete variables the file neither sets nor keeps.")
        ] = False,
        if_match: IfMatch = None,
    ) -> Response[ConfigVersionEnvelope]:
        media = request.content_type[0]
        if media != "text/plain":
            raise ApiError("unsupported_media_type", f"Got {media or 'no content type'}; send text/plain.")
        try:
            text = (await request.body()).decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError("bad_request", "The body is not UTF-8 text.") from None
        parsed = dotenv.parse(text)
        cmd = c.ChangeVars(
            caller=caller(request),
            env_id=env_id,
            set=parsed.vars,
            keep=parsed.keep,
            prune=prune,
            expected_version=parse_if_match(if_match).version,
        )
        return _version_response(await _change(request, cmd))
