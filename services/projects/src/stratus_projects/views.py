"""What the projects service shows of its aggregates: reply mappings (aggregate → reply Struct)
and which domain events become which public events.

Project events carry the whole project as it was right after the event; team events carry the
membership (`project_member`), and a removal the membership as it was, marked deleted. Every
public event carries the actor its domain event recorded. Name-index events are internal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from stratus_contracts import projects as c
from stratus_contracts.events import Mode
from stratus_contracts.ids import encode_id
from stratus_kit import Publisher
from stratus_projects import domain


def project(state: domain.Project, mode: Mode) -> c.Project:
    return c.Project(
        id=encode_id("prj", state.id),
        name=state.name,
        description=state.description,
        owner=state.owner,
        mode=mode,
        created=state.created,
        updated=state.updated,
        version=state.version,
        deleted=state.deleted,
        build=state.build,
    )


def member(state: domain.Project, member_id: str, mode: Mode) -> c.ProjectMember:
    m = state.members[member_id]
    return c.ProjectMember(
        id=member_id,
        project_id=encode_id("prj", state.id),
        role=m.role,
        mode=mode,
        created=m.created,
        updated=m.updated,
        version=m.version,
    )


def removed_member(before: domain.Project, member_id: str, mode: Mode, when: datetime) -> c.ProjectMember:
    """The membership as it was, marked deleted: what DELETE answers and member_removed carries
    (its version is the removal's)."""
    return msgspec.structs.replace(
        member(before, member_id, mode), updated=when, deleted=True, version=before.version + 1
    )


def _project(event: Any, before: Any, after: domain.Project, mode: Mode) -> tuple[Mode, str, c.Project]:
    return mode, after.account, project(after, mode)


def _added(event: Any, before: Any, after: domain.Project, mode: Mode) -> tuple[Mode, str, c.ProjectMember]:
    return mode, after.account, member(after, event.member_id, mode)


def _updated(
    event: domain.ProjectMemberUpdated, before: Any, after: domain.Project, mode: Mode
) -> tuple[Mode, str, c.ProjectMemberUpdate]:
    shown = msgspec.structs.asdict(member(after, event.member_id, mode))
    return mode, after.account, c.ProjectMemberUpdate(**shown, previous_role=event.previous_role)


def _removed(
    event: domain.ProjectMemberRemoved, before: domain.Project, after: Any, mode: Mode
) -> tuple[Mode, str, c.ProjectMember]:
    return mode, before.account, removed_member(before, event.member_id, mode, event.timestamp)


PUBLISHER = Publisher(
    {
        domain.ProjectCreated: (c.PROJECT_CREATED, _project),
        domain.ProjectUpdated: (c.PROJECT_UPDATED, _project),
        domain.ProjectDeleted: (c.PROJECT_DELETED, _project),
        domain.ProjectMemberAdded: (c.PROJECT_MEMBER_ADDED, _added),
        domain.ProjectMemberUpdated: (c.PROJECT_MEMBER_UPDATED, _updated),
        domain.ProjectMemberRemoved: (c.PROJECT_MEMBER_REMOVED, _removed),
    }
)
