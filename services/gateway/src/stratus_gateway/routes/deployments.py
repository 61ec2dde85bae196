"""`/v1/deployments`: create, list, get, cancel, roll back, and the logs (pages or a live stream).

A create first asks projects to resolve the target (`ResolveDeployTarget`: the project and
environment as the caller may see them, a member's role, the effective build settings and the
environment's current config version), then sends the deployments service the resolved target.
The deployments service knows accounts, projects and key restrictions but not project teams,
so for a member-bound key the gateway asks projects about the deployment's project first
(reads: any role; cancel and rollback: `developer`).

`GET /v1/deployments/{id}/logs` with `Accept: text/event-stream` streams the log: one SSE
message per line, `id` its `seq`, so a client that reconnects with `Last-Event-ID` resumes after
the last line it saw, with no gap and no repeat. Lines come from the service's durable log (a
page at a time); a core NATS signal from the service says when there are new ones. The stream
ends (`event: end`) once the deployment left `queued`/`building`/`deploying` and every line is
sent, or, with `?follow=true`, follows the app's runtime lines until the deployment stops
serving.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, Parameter, PathParameter
from litestar.response import Stream

from stratus_bus import Bus
from stratus_contracts import deployments as c
from stratus_contracts import envs
from stratus_contracts import projects as p
from stratus_contracts.auth import Caller
from stratus_gateway import sse
from stratus_gateway.auth import caller
from stratus_gateway.envelope import ListMeta, Meta, meta, ok
from stratus_gateway.openapi_docs import LOCATION_HEADER, SSE_DOC, problems
from stratus_gateway.problems import ApiError
from stratus_gateway.routes.params import Cursor, Limit, aware
from stratus_gateway.schemas import REF_PATTERN

Req = Request[Any, Any, Any]
DeploymentId = Annotated[str, PathParameter(description="The deployment's id, `dep_…`.", max_length=64)]
_line = msgspec.json.Encoder()


class DeploymentCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    project: Annotated[str, msgspec.Meta(max_length=64, description="The project's id, `prj_…`.")]
    env: Annotated[
        str, msgspec.Meta(min_length=1, max_length=64, description="An environment's name or id (`env_…`).")
    ] = "production"
    ref: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=255,
                pattern=REF_PATTERN,
                description="A branch or tag; without it or `sha`, the repository's default branch.",
            ),
        ]
        | None
    ) = None
    sha: (
        Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{7,40}$", description="A commit (7–40 hex digits).")]
        | None
    ) = None


class DeploymentEnvelope(msgspec.Struct, kw_only=True):
    data: c.Deployment
    meta: Meta
    error: None = None


class DeploymentListEnvelope(msgspec.Struct, kw_only=True):
    data: list[c.Deployment]
    meta: ListMeta
    error: None = None


class LogListEnvelope(msgspec.Struct, kw_only=True):
    data: list[c.LogLine]
    meta: ListMeta
    error: None = None


def _bus(request: Req) -> Bus:
    return request.app.state["bus"]


async def _check_team(request: Req, who: Caller, deployment: c.Deployment, role_needed: bool) -> None:
    """For a member-bound key: the deployment's project as projects lets the member see it."""
    if who.member_id is None:
        return
    bus = _bus(request)
    try:
        if role_needed:
            await bus.call(
                envs.ResolveDeployTarget(caller=who, project_id=deployment.project, env=deployment.env_id)
            )
        else:
            await bus.call(p.GetProject(caller=who, project_id=deployment.project))
    except Exception as exc:
        code = getattr(getattr(exc, "error", None), "code", None)
        if code in ("project_not_found", "environment_not_found"):
            raise ApiError(
                "deployment_not_found", f"No deployment {deployment.id!r} in this account."
            ) from exc
        raise


async def _visible(
    request: Req, deployment_id: str, role_needed: bool = False
) -> tuple[Caller, c.Deployment]:
    who = caller(request)
    deployment = await _bus(request).call(c.GetDeployment(caller=who, deployment_id=deployment_id))
    await _check_team(request, who, deployment, role_needed)
    return who, deployment


async def _allowed(request: Req, deployment_id: str, role_needed: bool = False) -> Caller:
    """The caller, once it may act on the deployment. The deployments service checks account,
    mode and key restrictions itself; only a member-bound key needs its project checked first
    (with projects), which takes the deployment."""
    who = caller(request)
    if who.member_id is not None:
        await _visible(request, deployment_id, role_needed)
    return who


class DeploymentController(Controller):
    path = "/deployments"
    tags = ["deployments"]

    @post(
        "/",
        operation_id="createDeployment",
        summary="Deploy a project's environment",
        description="Queues a build of `ref` (or `sha`) with the environment's current config version; "
        "202 with the deployment, whose `status` then moves `queued → building → deploying → ready` "
        "(or `failed`, `canceled`).",
        status_code=202,
        response_headers=[LOCATION_HEADER],
        responses=problems(
            "project_not_found",
            "environment_not_found",
            "deploy_settings_missing",
            "insufficient_scope",
            "insufficient_role",
            body=True,
        ),
    )
    async def create(self, request: Req, data: JSONBody[DeploymentCreate]) -> Response[DeploymentEnvelope]:
        if data.ref is not None and data.sha is not None:
            raise ApiError("validation_failed", "Give `ref` or `sha`, not both.")
        who = caller(request)
        bus = _bus(request)
        target = await bus.call(envs.ResolveDeployTarget(caller=who, project_id=data.project, env=data.env))
        deployment = await bus.call(c.CreateDeployment(caller=who, target=target, ref=data.ref, sha=data.sha))
        return ok(
            DeploymentEnvelope(data=deployment, meta=meta()),
            status=202,
            headers={"Location": f"/v1/deployments/{deployment.id}"},
        )

    @get(
        "/",
        operation_id="listDeployments",
        summary="List deployments",
        description="Newest first. A member-bound key must name a `project`.",
        responses=problems("project_not_found", "invalid_cursor", "validation_failed", "insufficient_scope"),
    )
    async def list_deployments(
        self,
        request: Req,
        limit: Limit = 20,
        cursor: Cursor = None,
        project: Annotated[str | None, Parameter(max_length=64, description="Only this project's.")] = None,
        env: Annotated[
            str | None, Parameter(max_length=64, description="Only this environment's (a name or `env_…`).")
        ] = None,
        status: Annotated[c.Status | None, Parameter(description="Only deployments in this status.")] = None,
    ) -> Response[DeploymentListEnvelope]:
        who = caller(request)
        if who.member_id is not None:
            if project is None:
                raise ApiError(
                    "validation_failed", "A member-bound key lists one project's deployments: add `project`."
                )
            await _bus(request).call(p.GetProject(caller=who, project_id=project))
        q = c.ListDeployments(
            caller=who, project_id=project, env=env, status=status, limit=limit, cursor=cursor
        )
        page = await _bus(request).call(q)
        list_meta = ListMeta(
            request_id=meta().request_id, has_more=page.has_more, next_cursor=page.next_cursor
        )
        return ok(DeploymentListEnvelope(data=page.data, meta=list_meta))

    @get(
        "/{deployment_id:str}",
        operation_id="getDeployment",
        summary="Get a deployment",
        responses=problems("deployment_not_found", "insufficient_scope"),
    )
    async def get_deployment(self, request: Req, deployment_id: DeploymentId) -> Response[DeploymentEnvelope]:
        _, deployment = await _visible(request, deployment_id)
        return ok(DeploymentEnvelope(data=deployment, meta=meta()))

    @post(
        "/{deployment_id:str}/cancel",
        operation_id="cancelDeployment",
        summary="Cancel a deployment",
        description="Stops a `queued`, `building` or `deploying` deployment (409 once it finished).",
        status_code=200,
        responses=problems(
            "deployment_not_found", "deployment_not_cancelable", "insufficient_scope", "insufficient_role"
        ),
    )
    async def cancel(self, request: Req, deployment_id: DeploymentId) -> Response[DeploymentEnvelope]:
        who = await _allowed(request, deployment_id, role_needed=True)
        deployment = await _bus(request).call(c.CancelDeployment(caller=who, deployment_id=deployment_id))
        return ok(DeploymentEnvelope(data=deployment, meta=meta()))

    @post(
        "/{deployment_id:str}/rollback",
        operation_id="rollbackDeployment",
        summary="Roll back to a deployment",
        description="A new deployment of this one's built artifact and pinned config version, without a "
        "rebuild; once ready it serves the environment (`deployment.rolled_back`). 409 for a deployment "
        "that never became ready.",
        status_code=202,
        response_headers=[LOCATION_HEADER],
        responses=problems(
            "deployment_not_found", "deployment_not_ready", "insufficient_scope", "insufficient_role"
        ),
    )
    async def rollback(self, request: Req, deployment_id: DeploymentId) -> Response[DeploymentEnvelope]:
        who = await _allowed(request, deployment_id, role_needed=True)
        deployment = await _bus(request).call(c.RollbackDeployment(caller=who, deployment_id=deployment_id))
        return ok(
            DeploymentEnvelope(data=deployment, meta=meta()),
            status=202,
            headers={"Location": f"/v1/deployments/{deployment.id}"},
        )

    @get(
        "/{deployment_id:str}/logs",
        operation_id="listDeploymentLogs",
        summary="A deployment's log",
        description="Build and runtime lines, oldest first: `seq`, `ts`, `stream` (`stdout`, `stderr`, "
        "`system`), `text`. With `Accept: text/event-stream`, a live stream: one event per line, its "
        "`id` the line's `seq` (reconnect with `Last-Event-ID` to resume), ending with `event: end` "
        "when the build ends, or following the app's lines with `follow=true`.",
        responses={
            200: ResponseSpec(
                data_container=LogListEnvelope,
                description="A page of log lines (JSON), or with `Accept: text/event-stream` the live "
                f"stream. {SSE_DOC}",
                generate_examples=False,
            ),
            **problems("deployment_not_found", "invalid_cursor", "validation_failed", "insufficient_scope"),
        },
    )
    async def logs(
        self,
        request: Req,
        deployment_id: DeploymentId,
        limit: Annotated[
            int, Parameter(ge=1, le=c.LOG_PAGE_MAX, description="Lines per page, 1–1000.")
        ] = 100,
        cursor: Cursor = None,
        since: Annotated[
            datetime | None,
            Parameter(description="Only lines at or after this time (RFC 3339, with an offset)."),
        ] = None,
        follow: Annotated[
            bool, Parameter(description="Stream: keep following the app's runtime lines.")
        ] = False,
    ) -> Response[Any]:
        aware("since", since)
        after = _seq(cursor, "cursor")
        if _wants_stream(request):
            # Found first: an unknown id is a 404 now, not a stream that breaks.
            who, deployment = await _visible(request, deployment_id)
            resume = request.headers.get("last-event-id")
            if resume is not None:
                after = _seq(resume, "Last-Event-ID")
            stream = _follow(_bus(request), who, deployment, after, since, follow)
            return Stream(
                stream,
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        who = await _allowed(request, deployment_id)
        q = c.ListDeploymentLogs(
            caller=who, deployment_id=deployment_id, after=after, since=since, limit=limit
        )
        page = await _bus(request).call(q)
        list_meta = ListMeta(
            request_id=meta().request_id, has_more=page.has_more, next_cursor=page.next_cursor
        )
        return ok(LogListEnvelope(data=page.data, meta=list_meta))


def _wants_stream(request: Req) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def _seq(value: str | None, what: str) -> int:
    if value is None or value == "":
        return 0
    if not value.isdigit() or len(value) > 12:
        raise ApiError("invalid_cursor", f"`{what}` is a line's `seq` (a whole number) from this log.")
    return int(value)


def _event(line: c.LogLine) -> bytes:
    body = _line.encode({"seq": line.seq, "ts": line.ts, "stream": line.stream, "text": line.text})
    return b"id: %d\nevent: log\ndata: %s\n\n" % (line.seq, body)


def _follow(
    bus: Bus, who: Caller, deployment: c.Deployment, after: int, since: datetime | None, follow: bool
) -> AsyncIterator[bytes]:
    position = after

    async def read() -> sse.Page:
        nonlocal position
        q = c.ListDeploymentLogs(
            caller=who, deployment_id=deployment.id, after=position, since=since, limit=c.LOG_PAGE_MAX
        )
        page = await bus.call(q)
        chunk = b"".join(_event(line) for line in page.data)
        if page.data:
            position = page.data[-1].seq
        if page.has_more:
            return chunk, True, False
        if page.status not in c.ACTIVE and (not follow or page.status != "ready"):
            return chunk + b"event: end\ndata: %s\n\n" % _line.encode({"status": page.status}), False, True
        return chunk, False, False

    return sse.follow(bus, c.log_subject(deployment.mode, deployment.id), read)
