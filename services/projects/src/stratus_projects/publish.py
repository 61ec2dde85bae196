"""Which domain events become public events on JetStream, and what they say."""

from __future__ import annotations

import msgspec

from stratus_contracts import subjects
from stratus_contracts.events import Event, Mode
from stratus_contracts.ids import encode_id
from stratus_contracts.projects import Project
from stratus_eventstore.model import DomainEvent, event_uuid
from stratus_eventstore.relay import Publisher
from stratus_eventstore.store import Store
from stratus_projects import domain

_TYPES = {
    domain.ProjectCreated: "created",
    domain.ProjectUpdated: "updated",
    domain.ProjectDeleted: "deleted",
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


def publisher(mode: Mode) -> Publisher:
    def to_public(store: Store, event: DomainEvent) -> tuple[str, Event] | None:
        name = _TYPES.get(type(event))
        if name is None:
            return None
        # The public event carries the whole project as it was right after this event.
        state = store.repository.get(
            event.originator_id, version=event.originator_version, projector_func=domain.project
        )
        public = Event(
            id=encode_id("evt", event_uuid(event.originator_id, event.originator_version)),
            type=f"project.{name}",
            created=event.timestamp,
            mode=mode,
            account=state.account,
            data=msgspec.to_builtins(to_view(state, mode)),
        )
        return subjects.event(mode, state.account, "project", name), public

    return to_public
