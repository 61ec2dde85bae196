"""Environments: `/v1/projects/{id}/envs` (list, create) and `/v1/envs/{id}` (get, replace,
update, delete).

The projects service decides who sees what, as for projects: a key restricted to `project_ids`
or `environments` (names), or bound to a member without a role on the project, gets 404 for
anything outside; member roles gate writes (403 `insufficient_role`). A project made before
environments existed gets `production` and `staging` on its first environment access.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.params import JSONBody, PathParameter

from stratus_bus import Bus
from stratus_contracts import envs as c
from stratus_gateway.auth import caller
from stratus_gateway.env_schemas import EnvCreate, EnvReplace, EnvUpdate, overrides
from stratus_gateway.envelope import ListMeta, Meta, meta, ok
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
from stratus_gateway.schemas import build_changes

Req = Request[Any, Any, Any]
ProjectId = Annotated[str, PathParameter(description="The project's id, `prj_…`.", max_length=64)]
EnvId = Annotated[str, PathParameter(description="The environment's id, `env_…`.", max_length=64)]


class EnvEnvelope(msgspec.Struct, kw_only=True):
    data: c.Environment
    meta: Meta
    error: None = None


class EnvListEnvelope(msgspec.Struct, kw_only=True):
    data: list[c.Environment]
    meta: ListMeta
    error: None = None


def _bus(request: Req) -> Bus:
    return request.app.state["bus"]


class ProjectEnvController(Controller):
    path = "/projects/{project_id:str}/envs"
    tags = ["environments"]

    @get(
        "/",
        operation_id="listEnvironments",
        summary="List a project's environments",
        description="Oldest first: every project starts with `production` and `staging`.",
        responses=problems("project_not_found", "invalid_cursor", "validation_failed", "insufficient_scope"),
    )
    async def list_envs(
        self,
        request: Req,
        project_id: ProjectId,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> Response[EnvListEnvelope]:
        q = c.ListEnvironments(caller=caller(request), project_id=project_id, limit=limit, cursor=cursor)
        page = await _bus(request).call(q)
        list_meta = ListMeta(
            request_id=meta().request_id, has_more=page.has_more, next_cursor=page.next_cursor
        )
        return ok(EnvListEnvelope(data=page.data, meta=list_meta))

    @post(
        "/",
        operation_id="createEnvironment",
        summary="Create an environment",
        status_code=201,
        response_headers=[ETAG_HEADER, LOCATION_HEADER],
        responses=problems(
            "project_not_found",
            "environment_name_taken",
            "insufficient_scope",
            "insufficient_role",
            "key_restricted",
            body=True,
        ),
    )
    async def create(
        self, request: Req, project_id: ProjectId, data: JSONBody[EnvCreate]
    ) -> Response[EnvEnvelope]:
        cmd = c.CreateEnvironment(
            caller=caller(request),
            project_id=project_id,
            name=data.name,
            description=data.description,
            branch=data.branch,
            auto_deploy=data.auto_deploy,
            build=overrides(data.build),
        )
        env = await _bus(request).call(cmd)
        return ok(
            EnvEnvelope(data=env, meta=meta()),
            status=201,
            headers={"Location": f"/v1/envs/{env.id}", **etag(env.version)},
        )


class EnvController(Controller):
    path = "/envs"
    tags = ["environments"]

    @get(
        "/{env_id:str}",
        operation_id="getEnvironment",
        summary="Get an environment",
        response_headers=[ETAG_HEADER],
        responses=problems("environment_not_found", "insufficient_scope"),
    )
    async def get_env(
        self, request: Req, env_id: EnvId, if_none_match: IfNoneMatch = None
    ) -> Response[EnvEnvelope]:
        q = c.GetEnvironment(caller=caller(request), env_id=env_id)
        env = await _bus(request).call(q)
        if (not_modified := unchanged(if_none_match, env.version)) is not None:
            return not_modified
        return ok(EnvEnvelope(data=env, meta=meta()), headers=etag(env.version))

    @put(
        "/{env_id:str}",
        operation_id="replaceEnvironment",
        summary="Replace an environment's settings",
        description="Name, description, branch, auto-deploy flag and build overrides become exactly "
        "the body's (omitted fields take their defaults: no override).",
        status_code=200,
        response_headers=[ETAG_HEADER],
        responses=problems(
            "environment_not_found",
            "environment_name_taken",
            "insufficient_scope",
            "insufficient_role",
            "key_restricted",
            *PRECONDITION_CODES,
            body=True,
        ),
    )
    async def replace(
        self, request: Req, env_id: EnvId, data: JSONBody[EnvReplace], if_match: IfMatch = None
    ) -> Response[EnvEnvelope]:
        cmd = c.ReplaceEnvironment(
            caller=caller(request),
            env_id=env_id,
            name=data.name,
            description=data.description,
            branch=data.branch,
            auto_deploy=data.auto_deploy,
            build=overrides(data.build),
            expected_version=parse_if_match(if_match).version,
        )
        env = await _bus(request).call(cmd)
        return ok(EnvEnvelope(data=env, meta=meta()), headers=etag(env.version))

    @patch(
        "/{env_id:str}",
        operation_id="updateEnvironment",
        summary="Change some of an environment's settings",
        description="Omitted fields stay. `null` clears `branch`; in `build` it drops an override, so "
        'the project\'s setting applies again (`"build": null` drops them all).',
        response_headers=[ETAG_HEADER],
        responses=problems(
            "environment_not_found",
            "environment_name_taken",
            "insufficient_scope",
            "insufficient_role",
            "key_restricted",
            *PRECONDITION_CODES,
            body=True,
        ),
    )
    async def update(
        self, request: Req, env_id: EnvId, data: JSONBody[EnvUpdate], if_match: IfMatch = None
    ) -> Response[EnvEnvelope]:
        cmd = c.UpdateEnvironment(
            caller=caller(request),
            env_id=env_id,
            name=data.name,
            description=data.description,
            branch=data.branch,
            auto_deploy=data.auto_deploy,
            **build_changes(data.build),
            expected_version=parse_if_match(if_match).version,
        )
        env = await _bus(request).call(cmd)
        return ok(EnvEnvelope(data=env, meta=meta()), headers=etag(env.version))

    @delete(
        "/{env_id:str}",
        operation_id="deleteEnvironment",
        summary="Delete an environment",
        description="Returns the final state. Needs the `admin` role on the project for a member-bound key.",
        status_code=200,
        response_headers=[ETAG_HEADER],
        responses=problems(
            "environment_not_found", "insufficient_scope", "insufficient_role", *PRECONDITION_CODES
        ),
    )
    async def remove(self, request: Req, env_id: EnvId, if_match: IfMatch = None) -> Response[EnvEnvelope]:
        cmd = c.DeleteEnvironment(
            caller=caller(request), env_id=env_id, expected_version=parse_if_match(if_match).version
        )
        env = await _bus(request).call(cmd)
        return ok(EnvEnvelope(data=env, meta=meta()), headers=etag(env.version))
