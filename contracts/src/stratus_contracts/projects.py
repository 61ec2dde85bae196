"""Projects service messages: commands, queries, the project and team replies, and the public
events about projects and their teams."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal, TypeVar

import msgspec

from stratus_contracts.auth import Caller
from stratus_contracts.events import Mode, event_type
from stratus_contracts.messages import Command, Query
from stratus_contracts.reply import RebuildResult

SERVICE = "projects"
T = TypeVar("T")
Sort = Literal["created", "-created", "name"]

# Team access roles, weakest first: each role may do everything the ones before it may.
Role = Literal["viewer", "developer", "admin", "owner"]
ROLES: tuple[Role, ...] = ("viewer", "developer", "admin", "owner")


class ProjectsCommand(Command[T], frozen=True, kw_only=True):
    service: ClassVar[str] = SERVICE


class ProjectsQuery(Query[T], frozen=True, kw_only=True):
    service: ClassVar[str] = SERVICE


# --- replies -----------------------------------------------------------------------------------


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


class ProjectMemberUpdate(ProjectMember, frozen=True, kw_only=True):
    """`project.member_updated`: the membership after the change, and the role before it."""

    previous_role: Role


class ProjectMemberPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[ProjectMember]
    has_more: bool
    next_cursor: str | None = None


# --- projects ----------------------------------------------------------------------------------


class CreateProject(ProjectsCommand[Project], frozen=True, kw_only=True):
    caller: Caller
    name: str
    description: str = ""


class UpdateProject(ProjectsCommand[Project], frozen=True, kw_only=True):
    caller: Caller
    project_id: str
    name: str | None = None
    description: str | None = None
    # The If-Match version: apply only if the project is still at it, else `precondition_failed`.
    expected_version: int | None = None


class DeleteProject(ProjectsCommand[Project], frozen=True, kw_only=True):
    caller: Caller
    project_id: str
    # The If-Match version: apply only if the project is still at it, else `precondition_failed`.
    expected_version: int | None = None


class GetProject(ProjectsQuery[Project], frozen=True, kw_only=True):
    caller: Caller
    project_id: str


class ListProjects(ProjectsQuery[ProjectPage], frozen=True, kw_only=True):
    caller: Caller
    limit: int = 20
    cursor: str | None = None
    sort: Sort = "-created"
    name: str | None = None
    owner: str | None = None  # a member id: projects where that member has the owner role


# --- team access -------------------------------------------------------------------------------


class PutProjectMember(ProjectsCommand[ProjectMember], frozen=True, kw_only=True):
    """Give a member a role on a project, or change it (the gateway has checked the member exists)."""

    caller: Caller
    project_id: str
    member_id: str
    role: Role
    # If-Match on the membership: a version (its ETag) or, with `must_exist`, any existing one.
    expected_version: int | None = None
    must_exist: bool = False


class RemoveProjectMember(ProjectsCommand[ProjectMember], frozen=True, kw_only=True):
    caller: Caller
    project_id: str
    member_id: str
    expected_version: int | None = None  # the membership's version (If-Match)


class GetProjectMember(ProjectsQuery[ProjectMember], frozen=True, kw_only=True):
    caller: Caller
    project_id: str
    member_id: str


class ListProjectMembers(ProjectsQuery[ProjectMemberPage], frozen=True, kw_only=True):
    caller: Caller
    project_id: str
    limit: int = 20
    cursor: str | None = None


# --- operator ----------------------------------------------------------------------------------


class RebuildReadModels(ProjectsCommand[RebuildResult], frozen=True, kw_only=True):
    """Drop the projects and environments read models and replay them from the event log
    (`stratus rebuild projects`)."""


# --- public events -----------------------------------------------------------------------------

PROJECT_CREATED = event_type("project.created", Project, "A project was created.")
PROJECT_UPDATED = event_type("project.updated", Project, "A project's name or description changed.")
PROJECT_DELETED = event_type("project.deleted", Project, "A project was deleted (its final state).")
PROJECT_MEMBER_ADDED = event_type(
    "project.member_added", ProjectMember, "A member was given a role on a project."
)
PROJECT_MEMBER_UPDATED = event_type(
    "project.member_updated", ProjectMemberUpdate, "A member's role on a project changed."
)
PROJECT_MEMBER_REMOVED = event_type(
    "project.member_removed",
    ProjectMember,
    "A member lost their access to a project (removed, or gone from the account).",
)
