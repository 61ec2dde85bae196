"""Which domain events become public events on JetStream, and what they say.

Project events carry the whole project as it was right after the event; team events carry the
membership (`project_member`). Every public event carries the actor its domain event recorded.
Name-index events are internal.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from stratus_contracts import subjects
from stratus_contracts.events import Event, Mode
from stratus_contracts.ids import encode_id
from stratus_contracts.projects import Project, ProjectMember
from stratus_eventstore.model import DomainEvent, event_uuid
from stratus_eventstore.relay import Publisher
from stratus_eventstore.store import Store
from stratus_projects import domain

_TYPES = {
    domain.ProjectCreated: "created",
    domain.ProjectUpdated: "updated",
    domain.ProjectDeleted: "deleted",
    domain.ProjectMemberAdded: "member_added",
    domain.ProjectMemberUpdated: "member_updated",
    domain.ProjectMemberRemoved: "member_removed",
}


def to_view(state: domain.Project, mode: Mode) -> Project:
    return Project(
        id=encode_id("prj", state.id),
        name=state.name,
        description=state.description,
        owner=state.owner,
        mode=mode,
        created=state.created,
        updated=state.updated,
        version=state.version,
        deleted=state.deleted,
    )


def to_member_view(state: domain.Project, member_id: str, mode: Mode) -> ProjectMember:
    m = state.members[member_id]
    return ProjectMember(
        id=member_id,
        project_id=encode_id("prj", state.id),
        role=m.role,
        mode=mode,
        created=m.created,
        updated=m.updated,
        version=m.version,
    )


def removed_member_view(before: domain.Project, member_id: str, mode: Mode, when: datetime) -> ProjectMember:
    """The membership as it was, marked deleted: what DELETE answers and member_removed carries
    (its version is the removal's)."""
    view = to_member_view(before, member_id, mode)
    return msgspec.structs.replace(view, updated=when, deleted=True, version=before.version + 1)


def _data(store: Store, event: DomainEvent, mode: Mode) -> tuple[str, dict[str, object]]:
    def at(version: int) -> domain.Project:
        return store.repository.get(event.originator_id, version=version, projector_func=domain.project)

    match event:
        case domain.ProjectMemberRemoved():
            before = at(event.originator_version - 1)
            view = removed_member_view(before, event.member_id, mode, event.timestamp)
            return before.account, msgspec.to_builtins(view)
        case domain.ProjectMemberAdded() | domain.ProjectMemberUpdated():
            state = at(event.originator_version)
            data = msgspec.to_builtins(to_member_view(state, event.member_id, mode))
            if isinstance(event, domain.ProjectMemberUpdated):
                data["previous_role"] = event.previous_role
            return state.account, data
        case _:
            state = at(event.originator_version)
            return state.account, msgspec.to_builtins(to_view(state, mode))


def publisher(mode: Mode) -> Publisher:
    def to_public(store: Store, event: DomainEvent) -> tuple[str, Event] | None:
        name = _TYPES.get(type(event))
        if name is None or not isinstance(event, domain.ProjectEvent):
            return None
        account, data = _data(store, event, mode)
        public = Event(
            id=encode_id("evt", event_uuid(event.originator_id, event.originator_version)),
            type=f"project.{name}",
            created=event.timestamp,
            mode=mode,
            account=account,
            data=data,
            actor=event.actor,
        )
        return subjects.event(mode, account, "project", name), public

    return to_public
