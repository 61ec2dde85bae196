"""`/v1/projects`: create, list, get, update and delete projects.

The projects service decides who sees what: a key restricted to `project_ids`, or bound to a
member, sees only its projects (others are 404) and member roles gate writes (403
`insufficient_role`). The gateway has checked the route's scope already.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import JSONBody, Parameter, PathParameter

from stratus_bus import Bus
from stratus_contracts import projects as c
from stratus_gateway.auth import caller
from stratus_gateway.envelope import (
    ListMeta,
    ProjectEnvelope,
    ProjectListEnvelope,
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
from stratus_gateway.schemas import ProjectCreate, ProjectUpdate, build_changes

Req = Request[Any, Any, Any]
ProjectId = Annotated[str, PathParameter(description="The project's id, `prj_…`.", max_length=64)]


def _bus(request: Req) -> Bus:
    return request.app.state["bus"]


class ProjectController(Controller):
    path = "/projects"
    tags = ["projects"]

    @post(
        "/",
        operation_id="createProject",
        summary="Create a project",
        status_code=201,
        response_headers=[ETAG_HEADER, LOCATION_HEADER],
        responses=problems("project_name_taken", "insufficient_scope", "key_restricted", body=True),
    )
    async def create(self, request: Req, data: JSONBody[ProjectCreate]) -> Response[ProjectEnvelope]:
        cmd = c.CreateProject(caller=caller(request), name=data.name, description=data.description)
        project = await _bus(request).call(cmd)
        return ok(
            ProjectEnvelope(data=project, meta=meta()),
            status=201,
            headers={"Location": f"/v1/projects/{project.id}", **etag(project.version)},
        )

    @get(
        "/",
        operation_id="listProjects",
        summary="List projects",
        responses=problems("invalid_cursor", "validation_failed", "insufficient_scope"),
    )
    async def list_projects(
        self,
        request: Req,
        limit: Limit = 20,
        cursor: Cursor = None,
        sort: Annotated[
            c.Sort, Parameter(description="`created`, `-created` (default) or `name`.")
        ] = "-created",
        name: Annotated[
            str | None, Parameter(max_length=63, description="Only the project with this name.")
        ] = None,
        owner: Annotated[
            str | None,
            Parameter(
                max_length=64, description="Only projects where this member (`mem_…`) has the owner role."
            ),
        ] = None,
    ) -> Response[ProjectListEnvelope]:
        q = c.ListProjects(
            caller=caller(request), limit=limit, cursor=cursor, sort=sort, name=name, owner=owner
        )
        page = await _bus(request).call(q)
        list_meta = ListMeta(
            request_id=meta().request_id, has_more=page.has_more, next_cursor=page.next_cursor
        )
        return ok(ProjectListEnvelope(data=page.data, meta=list_meta))

    @get(
        "/{project_id:str}",
        operation_id="getProject",
        summary="Get a project",
        response_headers=[ETAG_HEADER],
        responses=problems("project_not_found", "insufficient_scope"),
    )
    async def get_project(
        self, request: Req, project_id: ProjectId, if_none_match: IfNoneMatch = None
    ) -> Response[ProjectEnvelope]:
        q = c.GetProject(caller=caller(request), project_id=project_id)
        project = await _bus(request).call(q)
        if (not_modified := unchanged(if_none_match, project.version)) is not None:
            return not_modified
        return ok(ProjectEnvelope(data=project, meta=meta()), headers=etag(project.version))

    @patch(
        "/{project_id:str}",
        operation_id="updateProject",
        summary="Update a project",
        description="Name, description and build settings (how deployments build and run it). "
        'In `build` an omitted setting stays and `null` clears it; `"build": null` clears all four.',
        response_headers=[ETAG_HEADER],
        responses=problems(
            "project_not_found",
            "project_name_taken",
            "insufficient_scope",
            "insufficient_role",
            *PRECONDITION_CODES,
            body=True,
        ),
    )
    async def update(
        self, request: Req, project_id: ProjectId, data: JSONBody[ProjectUpdate], if_match: IfMatch = None
    ) -> Response[ProjectEnvelope]:
        cmd = c.UpdateProject(
            caller=caller(request),
            project_id=project_id,
            name=data.name,
            description=data.description,
            **build_changes(data.build),
            expected_version=parse_if_match(if_match).version,
        )
        project = await _bus(request).call(cmd)
        return ok(ProjectEnvelope(data=project, meta=meta()), headers=etag(project.version))

    @delete(
        "/{project_id:str}",
        operation_id="deleteProject",
        summary="Delete a project",
        status_code=200,
        response_headers=[ETAG_HEADER],
        responses=problems(
            "project_not_found", "insufficient_scope", "insufficient_role", *PRECONDITION_CODES
        ),
    )
    async def remove(
        self, request: Req, project_id: ProjectId, if_match: IfMatch = None
    ) -> Response[ProjectEnvelope]:
        cmd = c.DeleteProject(
            caller=caller(request), project_id=project_id, expected_version=parse_if_match(if_match).version
        )
        project = await _bus(request).call(cmd)
        return ok(ProjectEnvelope(data=project, meta=meta()), headers=etag(project.version))
