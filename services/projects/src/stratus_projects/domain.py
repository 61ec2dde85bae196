"""The project aggregate and the project-name index: state, decisions and event application.

Pure: no I/O. Decisions take state and a command's values and return events, or raise a
DomainError. Names are unique within an account and mode through a name-index aggregate whose id
is derived from (account, name); saving the claim with the project lets the store's optimistic
concurrency reject a second claim of the same name.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from functools import singledispatch

import msgspec

from stratus_contracts.errors import DomainError
from stratus_eventstore.model import DomainEvent, index_uuid


class Project(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    account: str
    name: str
    description: str
    owner: str
    created: datetime
    updated: datetime
    deleted: bool = False


class NameIndex(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    project_id: uuid.UUID | None


class ProjectCreated(DomainEvent, frozen=True, kw_only=True):
    account: str
    name: str
    description: str
    owner: str


class ProjectUpdated(DomainEvent, frozen=True, kw_only=True):
    name: str | None = None
    description: str | None = None


class ProjectDeleted(DomainEvent, frozen=True, kw_only=True):
    pass


class ProjectNameClaimed(DomainEvent, frozen=True, kw_only=True):
    project_id: uuid.UUID


class ProjectNameReleased(DomainEvent, frozen=True, kw_only=True):
    project_id: uuid.UUID


def name_index_id(account: str, name: str) -> uuid.UUID:
    return index_uuid("project-name", account, name)


# --- applying events -------------------------------------------------------------------------


@singledispatch
def mutate(event: DomainEvent, state: object) -> object:
    raise NotImplementedError(type(event).__name__)


@mutate.register
def _(event: ProjectCreated, _: None) -> Project:
    return Project(
        id=event.originator_id,
        version=event.originator_version,
        account=event.account,
        name=event.name,
        description=event.description,
        owner=event.owner,
        created=event.timestamp,
        updated=event.timestamp,
    )


@mutate.register
def _(event: ProjectUpdated, state: Project) -> Project:
    return msgspec.structs.replace(
        state,
        version=event.originator_version,
        name=state.name if event.name is None else event.name,
        description=state.description if event.description is None else event.description,
        updated=event.timestamp,
    )


@mutate.register
def _(event: ProjectDeleted, state: Project) -> Project:
    return msgspec.structs.replace(
        state, version=event.originator_version, updated=event.timestamp, deleted=True
    )


@mutate.register
def _(event: ProjectNameClaimed, _: NameIndex | None) -> NameIndex:
    return NameIndex(id=event.originator_id, version=event.originator_version, project_id=event.project_id)


@mutate.register
def _(event: ProjectNameReleased, _: NameIndex) -> NameIndex:
    return NameIndex(id=event.originator_id, version=event.originator_version, project_id=None)


def project(state: object, events: Iterable[DomainEvent]) -> object:
    for event in events:
        state = mutate(event, state)
    return state


# --- decisions -------------------------------------------------------------------------------


def _claim(index: NameIndex | None, account: str, name: str, project_id: uuid.UUID) -> ProjectNameClaimed:
    if index is not None and index.project_id is not None and index.project_id != project_id:
        raise DomainError("project_name_taken", f"A project named {name!r} already exists in this account.")
    return ProjectNameClaimed(
        originator_id=name_index_id(account, name),
        originator_version=(index.version + 1) if index else 1,
        project_id=project_id,
    )


def _release(index: NameIndex, project_id: uuid.UUID) -> ProjectNameReleased:
    return ProjectNameReleased(
        originator_id=index.id, originator_version=index.version + 1, project_id=project_id
    )


def create(
    project_id: uuid.UUID,
    account: str,
    name: str,
    description: str,
    owner: str,
    index: NameIndex | None,
) -> list[DomainEvent]:
    created = ProjectCreated(
        originator_id=project_id,
        originator_version=1,
        account=account,
        name=name,
        description=description,
        owner=owner,
    )
    return [created, _claim(index, account, name, project_id)]


def update(
    state: Project,
    name: str | None,
    description: str | None,
    new_index: NameIndex | None,
    old_index: NameIndex | None,
) -> list[DomainEvent]:
    if name == state.name:
        name = None
    if description == state.description:
        description = None
    if name is None and description is None:
        return []
    events: list[DomainEvent] = [
        ProjectUpdated(
            originator_id=state.id,
            originator_version=state.version + 1,
            name=name,
            description=description,
        )
    ]
    if name is not None:
        events.append(_claim(new_index, state.account, name, state.id))
        if old_index is not None and old_index.project_id == state.id:
            events.append(_release(old_index, state.id))
    return events


def delete(state: Project, index: NameIndex | None) -> list[DomainEvent]:
    events: list[DomainEvent] = [ProjectDeleted(originator_id=state.id, originator_version=state.version + 1)]
    if index is not None and index.project_id == state.id:
        events.append(_release(index, state.id))
    return events
