"""Projects service messages: commands, queries, the project and team replies, and the public
events about projects and their teams.

A project also holds its build settings (`BuildSettings`: how deployments build and run it),
which its environments may override; `build_setting_problem` is the one validation of them, used
by the gateway and the service alike.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

import msgspec
from msgspec import UNSET, UnsetType

from stratus_contracts.auth import Caller
from stratus_contracts.deployments import BuildSettings
from stratus_contracts.events import Mode, event_type
from stratus_contracts.messages import Command, Query
from stratus_contracts.reply import RebuildResult

SERVICE = "projects"
T = TypeVar("T")
Sort = Literal["created", "-created", "name"]

# Team access roles, weakest first: each role may do everything the ones before it may.
Role = Literal["viewer", "developer", "admin", "owner"]
ROLES: tuple[Role, ...] = ("viewer", "developer", "admin", "owner")

# --- build settings ----------------------------------------------------------------------------

BuildField = Literal["repo_url", "build_command", "start_command", "health_check_path"]
BUILD_FIELDS: tuple[BuildField, ...] = ("repo_url", "build_command", "start_command", "health_check_path")
REPO_URL_MAX = 2048
COMMAND_MAX = 4096
HEALTH_CHECK_PATH_MAX = 1024
# What a deployment uses when neither the environment nor the project sets them.
DEFAULT_BUILD_COMMAND = ""  # no build step
DEFAULT_HEALTH_CHECK_PATH = "/"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A host name or address as git and ssh take it. Never starting with `-`: ssh would read a host
# such as `-oProxyCommand=…` as an option (CVE-2017-1000117).
_HOST = r"(?:[A-Za-z0-9_](?:[A-Za-z0-9._-]*)|\[[0-9A-Fa-f:.]+\])"
# scp-like `[user@]host:path`. A path starting with `:` is refused: `host::address` is git's
# remote-helper syntax (`ext::sh -c …` runs a command).
_SCP = re.compile(rf"^(?:[A-Za-z0-9._~-]+@)?{_HOST}:(?!:)\S+$")
_HOSTNAME = re.compile(r"^(?!-)[A-Za-z0-9._:-]+$")  # as urlsplit gives it (no brackets)
REPO_URL_FORMS = "https://…, ssh://…, git@host:path, file:///… or an absolute local path"


def _repo_url_problem(url: str) -> str | None:
    if url.startswith("/"):
        return None  # an absolute local path (control characters were refused already)
    if "://" not in url:
        if _SCP.match(url) and "/" not in url.split(":", 1)[0]:
            return None
        return f"A git URL: {REPO_URL_FORMS}."
    if any(ch.isspace() for ch in url):
        return "A URL cannot contain whitespace."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"Not a valid URL; a git URL is {REPO_URL_FORMS}."
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            return "A file URL names an absolute local path: file:///path/to/repo."
        return None
    if scheme not in ("https", "ssh"):
        return f"Only https, ssh and file URLs are taken (a git URL is {REPO_URL_FORMS})."
    host = parts.hostname
    if not host or not _HOSTNAME.match(host):
        return "The URL needs a host name."
    if parts.password is not None or (scheme == "https" and parts.username is not None):
        # Settings are shown to every viewer of the project and carried by its events: a token
        # belongs in a secret variable, never here.
        return "Credentials do not belong in the URL (every viewer sees build settings)."
    if not parts.path.strip("/"):
        return "The URL needs the repository's path."
    return None


def build_setting_problem(field: BuildField, value: str) -> str | None:
    """Why `value` is not a valid `field` build setting, or None when it is."""
    if field in ("build_command", "start_command"):
        if len(value) > COMMAND_MAX:
            return f"Commands are at most {COMMAND_MAX} characters."
        if "\x00" in value:
            return "Commands cannot contain NUL characters."
        if field == "start_command" and not value.strip():
            return "The start command cannot be empty (null clears it)."
        return None
    limit = REPO_URL_MAX if field == "repo_url" else HEALTH_CHECK_PATH_MAX
    if len(value) > limit:
        return f"At most {limit} characters."
    if not value:
        return "Cannot be empty (null clears it)."
    if _CONTROL.search(value):
        return "Cannot contain control characters (NUL, newlines, tabs…)."
    if field == "repo_url":
        return _repo_url_problem(value)
    if not value.startswith("/"):
        return "A path on the app's own server, starting with `/` (e.g. `/healthz`)."
    if any(ch.isspace() for ch in value):
        return "A path cannot contain whitespace."
    return None


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
    # How deployments build and run the project (environments may override each one). Unset
    # settings are absent here (`BuildSettings` omits them); the HTTP API shows them as null.
    build: BuildSettings = msgspec.field(default_factory=BuildSettings)


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
    # Build settings: UNSET leaves one as it is, None clears it, a string sets it.
    repo_url: str | UnsetType | None = UNSET
    build_command: str | UnsetType | None = UNSET
    start_command: str | UnsetType | None = UNSET
    health_check_path: str | UnsetType | None = UNSET
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
PROJECT_UPDATED = event_type(
    "project.updated", Project, "A project's name, description or build settings changed."
)
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
