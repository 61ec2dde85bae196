"""Command and query handlers: load, decide, save, reply. Store calls run in a worker thread."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from opentelemetry import trace

from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_contracts.events import Mode
from stratus_contracts.ids import decode_id, new_uuid
from stratus_contracts.projects import (
    CreateProject,
    DeleteProject,
    GetProject,
    ListProjects,
    Project,
    ProjectPage,
    RebuildResult,
    RebuildView,
    UpdateProject,
)
from stratus_eventstore.relay import Relay
from stratus_eventstore.store import Store
from stratus_eventstore.view import LocalView
from stratus_projects import domain, listing
from stratus_projects.publish import to_view

_tracer = trace.get_tracer("stratus.projects")
CONFLICT_RETRIES = 5


@dataclass
class Partition:
    """One mode's event store, list view and outbox relay."""

    mode: Mode
    store: Store
    view: LocalView
    relay: Relay | None = None

    def load(self, aggregate_id: uuid.UUID) -> Any:
        try:
            return self.store.repository.get(aggregate_id, projector_func=domain.project)
        except AggregateNotFoundError:
            return None

    def save(self, events: list[Any]) -> None:
        if not events:
            return
        with _tracer.start_as_current_span("store.save") as span:
            span.set_attribute("stratus.events", len(events))
            self.store.save(*events)
        self.view.catch_up()
        if self.relay is not None:
            self.relay.wakeup.set()


def _not_found(project_id: str) -> DomainError:
    return DomainError("project_not_found", f"No project {project_id!r} in this account.")


class ProjectsHandlers:
    def __init__(self, partitions: dict[str, Partition]) -> None:
        self.partitions = partitions

    def _owned(self, part: Partition, caller: Caller, project_id: str) -> domain.Project:
        """The caller's live project, or 404: another account's project is indistinguishable."""
        key = decode_id("prj", project_id)
        state = part.load(key) if key else None
        if not isinstance(state, domain.Project) or state.account != caller.account_id or state.deleted:
            raise _not_found(project_id)
        return state

    def _index(self, part: Partition, account: str, name: str) -> domain.NameIndex | None:
        return part.load(domain.name_index_id(account, name))

    def _retrying(self, fn: Any) -> Any:
        # Optimistic concurrency: a racing writer makes our save fail; decide again on fresh state.
        for attempt in range(CONFLICT_RETRIES):
            try:
                return fn()
            except IntegrityError:
                if attempt == CONFLICT_RETRIES - 1:
                    raise
        return None

    def create_sync(self, cmd: CreateProject) -> Project:
        part = self.partitions[cmd.caller.mode]
        project_id = new_uuid()

        def attempt() -> Project:
            index = self._index(part, cmd.caller.account_id, cmd.name)
            events = domain.create(
                project_id,
                cmd.caller.account_id,
                cmd.name,
                cmd.description,
                cmd.caller.key_id,
                index,
            )
            part.save(events)
            return to_view(domain.project(None, events[:1]), part.mode)  # type: ignore[arg-type]

        return self._retrying(attempt)

    def update_sync(self, cmd: UpdateProject) -> Project:
        part = self.partitions[cmd.caller.mode]

        def attempt() -> Project:
            state = self._owned(part, cmd.caller, cmd.project_id)
            new_index = old_index = None
            if cmd.name is not None and cmd.name != state.name:
                new_index = self._index(part, state.account, cmd.name)
                old_index = self._index(part, state.account, state.name)
            events = domain.update(state, cmd.name, cmd.description, new_index, old_index)
            part.save(events)
            return to_view(domain.project(state, events[:1]), part.mode)  # type: ignore[arg-type]

        return self._retrying(attempt)

    def delete_sync(self, cmd: DeleteProject) -> Project:
        part = self.partitions[cmd.caller.mode]

        def attempt() -> Project:
            state = self._owned(part, cmd.caller, cmd.project_id)
            events = domain.delete(state, self._index(part, state.account, state.name))
            part.save(events)
            return to_view(domain.project(state, events[:1]), part.mode)  # type: ignore[arg-type]

        return self._retrying(attempt)

    def get_sync(self, q: GetProject) -> Project:
        part = self.partitions[q.caller.mode]
        return to_view(self._owned(part, q.caller, q.project_id), part.mode)

    def list_sync(self, q: ListProjects) -> ProjectPage:
        part = self.partitions[q.caller.mode]
        # Another replica may have written since our last look: read our own writes.
        part.view.catch_up()
        sql, params = listing.list_sql(q)
        return listing.page(part.view.query(sql, params), q)

    def rebuild_sync(self, _: RebuildView) -> RebuildResult:
        counts = {}
        for mode, part in self.partitions.items():
            part.view.rebuild()
            counts[mode] = part.view.query("SELECT count(*) AS n FROM projects")[0]["n"]
        return RebuildResult(modes=counts)

    # async faces for the bus: the store is synchronous, so it runs off the event loop.
    async def create(self, cmd: CreateProject) -> Project:
        return await asyncio.to_thread(self.create_sync, cmd)

    async def update(self, cmd: UpdateProject) -> Project:
        return await asyncio.to_thread(self.update_sync, cmd)

    async def delete(self, cmd: DeleteProject) -> Project:
        return await asyncio.to_thread(self.delete_sync, cmd)

    async def get(self, q: GetProject) -> Project:
        return await asyncio.to_thread(self.get_sync, q)

    async def list(self, q: ListProjects) -> ProjectPage:
        return await asyncio.to_thread(self.list_sync, q)

    async def rebuild(self, q: RebuildView) -> RebuildResult:
        return await asyncio.to_thread(self.rebuild_sync, q)
