"""Projects service messages: commands, queries and the project view they return."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from stratus_contracts.auth import Caller
from stratus_contracts.events import Mode

SERVICE = "projects"
Sort = Literal["created", "-created", "name"]


class CreateProject(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    name: str
    description: str = ""


class UpdateProject(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    project_id: str
    name: str | None = None
    description: str | None = None


class DeleteProject(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    project_id: str


class GetProject(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    project_id: str


class ListProjects(msgspec.Struct, frozen=True, kw_only=True):
    caller: Caller
    limit: int = 20
    cursor: str | None = None
    sort: Sort = "-created"
    name: str | None = None
    owner: str | None = None


class Project(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["project"] = "project"
    name: str
    description: str
    owner: str
    mode: Mode
    created: datetime
    updated: datetime
    version: int
    deleted: bool = False


class ProjectPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Project]
    has_more: bool
    next_cursor: str | None = None


class RebuildView(msgspec.Struct, frozen=True, kw_only=True):
    pass


class RebuildResult(msgspec.Struct, frozen=True, kw_only=True):
    modes: dict[str, int]  # mode -> rows in the rebuilt view
