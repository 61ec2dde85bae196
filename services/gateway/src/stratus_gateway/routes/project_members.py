"""`/v1/projects/{id}/members`: team access — which members may do what on a project.

Reading the team needs the `read` scope; changing it needs `admin` and, for a member-bound key,
the admin or owner role on the project (the projects service checks roles). Members belong to
identity, so PUT asks identity first whether the member exists: an unknown member is 404
`member_not_found`, never a role for nobody.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, put
from litestar.params import JSONBody, PathParameter

from stratus_bus import Bus
from stratus_contracts import identity
from stratus_contracts import projects as c
from stratus_gateway.auth import caller
from stratus_gateway.envelope import ListMeta, ProjectMemberEnvelope, ProjectMemberListEnvelope, meta, ok
from stratus_gateway.openapi_docs import problems
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
from stratus_gateway.schemas import ProjectMemberPut

Req = Request[Any, Any, Any]
ProjectId = Annotated[str, PathParameter(description="The project's id, `prj_…`.", max_length=64)]
MemberId = Annotated[str, PathParameter(description="The member's id, `mem_…`.", max_length=64)]
MANAGE = {"scope": "admin"}


def _bus(request: Req) -> Bus:
    return request.app.state["bus"]


class ProjectMemberController(Controller):
    path = "/projects/{project_id:str}/members"
    tags = ["projects"]

    @get(
        "/",
        operation_id="listProjectMembers",
        summary="List a project's members and their roles",
        responses=problems("project_not_found", "invalid_cursor", "validation_failed", "insufficient_scope"),
    )
    async def list_members(
        self,
        request: Req,
        project_id: ProjectId,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> Response[ProjectMemberListEnvelope]:
        q = c.ListProjectMembers(caller=caller(request), project_id=project_id, limit=limit, cursor=cursor)
        page = await _bus(request).call(q)
        list_meta = ListMeta(
            request_id=meta().request_id, has_more=page.has_more, next_cursor=page.next_cursor
        )
        return ok(ProjectMemberListEnvelope(data=page.data, meta=list_meta))

    @get(
        "/{member_id:str}",
        operation_id="getProjectMember",
        summary="A member's role on a project",
        response_headers=[ETAG_HEADER],
        responses=problems("project_not_found", "project_member_not_found", "insufficient_scope"),
    )
    async def get_member(
        self, request: Req, project_id: ProjectId, member_id: MemberId, if_none_match: IfNoneMatch = None
    ) -> Response[ProjectMemberEnvelope]:
        q = c.GetProjectMember(caller=caller(request), project_id=project_id, member_id=member_id)
        member = await _bus(request).call(q)
        if (not_modified := unchanged(if_none_match, member.version)) is not None:
            return not_modified
        return ok(ProjectMemberEnvelope(data=member, meta=meta()), headers=etag(member.version))

    @put(
        "/{member_id:str}",
        operation_id="putProjectMember",
        summary="Give a member a role on a project, or change it",
        status_code=200,
        opt=MANAGE,
        response_headers=[ETAG_HEADER],
        responses=problems(
            "project_not_found",
            "member_not_found",
            "insufficient_scope",
            "insufficient_role",
            "last_owner",
            *PRECONDITION_CODES,
            body=True,
        ),
    )
    async def put_member(
        self,
        request: Req,
        project_id: ProjectId,
        member_id: MemberId,
        data: JSONBody[ProjectMemberPut],
        if_match: IfMatch = None,
    ) -> Response[ProjectMemberEnvelope]:
        precondition = parse_if_match(if_match)
        who = caller(request)
        bus = _bus(request)
        # Both lookups at once; an invisible project answers first, so that a 404 about the
        # member never stands in for one about the project.
        project, member = await asyncio.gather(
            bus.call(c.GetProject(caller=who, project_id=project_id)),
            bus.call(identity.GetMember(caller=who, member_id=member_id)),
            return_exceptions=True,
        )
        for outcome in (project, member):
            if isinstance(outcome, BaseException):
                raise outcome
        cmd = c.PutProjectMember(
            caller=who,
            project_id=project_id,
            member_id=member_id,
            role=data.role,
            expected_version=precondition.version,
            must_exist=precondition.exists,
        )
        result = await bus.call(cmd)
        return ok(ProjectMemberEnvelope(data=result, meta=meta()), headers=etag(result.version))

    @delete(
        "/{member_id:str}",
        operation_id="removeProjectMember",
        summary="Take a member's access to a project away",
        status_code=200,
        opt=MANAGE,
        response_headers=[ETAG_HEADER],
        responses=problems(
            "project_not_found",
            "project_member_not_found",
            "insufficient_scope",
            "insufficient_role",
            "last_owner",
            *PRECONDITION_CODES,
        ),
    )
    async def remove_member(
        self, request: Req, project_id: ProjectId, member_id: MemberId, if_match: IfMatch = None
    ) -> Response[ProjectMemberEnvelope]:
        cmd = c.RemoveProjectMember(
            caller=caller(request),
            project_id=project_id,
            member_id=member_id,
            expected_version=parse_if_match(if_match).version,
        )
        result = await _bus(request).call(cmd)
        return ok(ProjectMemberEnvelope(data=result, meta=meta()), headers=etag(result.version))
