"""Projects service messages: commands, queries and the project and team views they return."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from stratus_contracts.auth import Caller
from stratus_contracts.events import Mode
from stratus_contracts.reply import RebuildResult, RebuildView  # noqa: F401 - part of this contract

SERVICE = "projects"
Sort = Literal["created", "-created", "name"]

# Team access roles, weakest first: each role may do everything the ones before it may.
Role = Literal["viewer", "developer", "admin", "owner"]
ROLES: tuple[Role, ...] = ("viewer", "developer", "admin", "owner")


class CreateProject(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    name: str
    description: str = ""


class UpdateProject(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    project_id: str
    name: str | None = None
    description: str | None = None
    # The If-Match version: apply only if the project is still at it, else `precondition_failed`.
    expected_version: int | None = None


class DeleteProject(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    project_id: str
    # The If-Match version: apply only if the project is still at it, else `precondition_failed`.
    expected_version: int | None = None


class GetProject(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    project_id: str


class ListProjects(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    limit: int = 20
    cursor: str | None = None
    sort: Sort = "-created"
    name: str | None = None
    owner: str | None = None  # a member id: projects where that member has the owner role


class Project(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["project"] = "project"
    name: str
    description: str
    # The member that owns the project: its creator while they hold the owner role, else the
    # longest-standing member with that role; null when no member has it.
    owner: str | None
    mode: Mode
    created: datetime
    updated: datetime
    version: int
    deleted: bool = False


class ProjectPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Project]
    has_more: bool
    next_cursor: str | None = None


# --- team access -------------------------------------------------------------------------------


class PutProjectMember(msgspec.Struct, frozen=True, kw_only=True):
    """Give a member a role on a project, or change it (the gateway has checked the member exists)."""

    caller: Caller
    project_id: str
    member_id: str
    role: Role
    # If-Match on the membership: a version (its ETag) or, with `must_exist`, any existing one.
    expected_version: int | None = None
    must_exist: bool = False


class RemoveProjectMember(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    project_id: str
    member_id: str
    expected_version: int | None = None  # the membership's version (If-Match)


class GetProjectMember(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    project_id: str
    member_id: str


class ListProjectMembers(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    project_id: str
    limit: int = 20
    cursor: str | None = None


class ProjectMember(msgspec.Struct, frozen=True, kw_only=True):
    """A member's access to one project. `id` is the member's id (`mem_…`)."""

    id: str
    object: Literal["project_member"] = "project_member"
    project_id: str
    role: Role
    mode: Mode
    created: datetime  # when the member got access to this project
    updated: datetime  # when their role last changed
    deleted: bool = False
    # The project version that last changed this membership: its ETag (other members' changes
    # leave it alone).
    version: int = 1


class ProjectMemberPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[ProjectMember]
    has_more: bool
    next_cursor: str | None = None
