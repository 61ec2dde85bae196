"""Command and query handlers: load, decide, save, reply. Store calls run in a worker thread.

Every handler first resolves the project as the caller may see it (`_accessible`): another
account's project, one outside the key's `project_ids` and, for a member-bound key, one where
the member has no role are all the same 404. Role checks then give 403 `insufficient_role`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_contracts.events import Actor, Mode
from stratus_contracts.ids import decode_id, new_uuid
from stratus_contracts.projects import (
    CreateProject,
    DeleteProject,
    GetProject,
    GetProjectMember,
    ListProjectMembers,
    ListProjects,
    Project,
    ProjectMember,
    ProjectMemberPage,
    ProjectPage,
    PutProjectMember,
    RebuildResult,
    RebuildView,
    RemoveProjectMember,
    Role,
    UpdateProject,
)
from stratus_eventstore.idempotency import deferrable
from stratus_eventstore.relay import Relay
from stratus_eventstore.store import Store, retry_on_conflict
from stratus_eventstore.view import LocalView
from stratus_projects import domain, listing
from stratus_projects.publish import removed_member_view, to_member_view, to_view

_tracer = trace.get_tracer("stratus.projects")


@dataclass
class Partition:
    """One mode's event store, list view and outbox relay."""

    mode: Mode
    store: Store
    view: LocalView
    relay: Relay | None = None

    def load(self, aggregate_id: uuid.UUID) -> Any:
        return self.store.get_or_none(aggregate_id, domain.project)

    @deferrable  # under an Idempotency-Key, the index record joins this save (bootstrap)
    def save(self, events: list[Any]) -> None:
        if not events:
            return
        with _tracer.start_as_current_span("store.save") as span:
            span.set_attribute("stratus.events", len(events))
            self.store.save(*events)
        self.view.catch_up()
        if self.relay is not None:
            self.relay.wakeup.set()


def _after(state: domain.Project | None, events: list[Any]) -> domain.Project:
    """The project after the project's own events of a save (index events are other aggregates)."""
    mine = [e for e in events if isinstance(e, domain.ProjectEvent)]
    return domain.project(state, mine)  # type: ignore[return-value]


def _not_found(project_id: str) -> DomainError:
    return DomainError("project_not_found", f"No project {project_id!r} in this account.")


class ProjectsHandlers:
    def __init__(self, partitions: dict[str, Partition]) -> None:
        self.partitions = partitions
        # More events for a new project's own save (its default environments: see bootstrap).
        self.on_create: list[Callable[[uuid.UUID, Caller], list[Any]]] = []
        self.on_rebuild: list[Callable[[], object]] = []

    def _accessible(
        self, part: Partition, caller: Caller, project_id: str, needed: Role | None = None, action: str = ""
    ) -> domain.Project:
        """The live project if the caller may see it (and holds `needed`), else 404 (or 403)."""
        key = decode_id("prj", project_id)
        state = part.load(key) if key else None
        if not domain.visible(state, caller):
            raise _not_found(project_id)
        if needed is not None:
            domain.require_role(state, caller, needed, action)
        return state

    def _index(self, part: Partition, account: str, name: str) -> domain.NameIndex | None:
        return part.load(domain.name_index_id(account, name))

    def create_sync(self, cmd: CreateProject) -> Project:
        part = self.partitions[cmd.caller.mode]
        project_id = new_uuid()

        def attempt() -> Project:
            index = self._index(part, cmd.caller.account_id, cmd.name)
            events = domain.create(
                project_id, cmd.caller.account_id, cmd.name, cmd.description, cmd.caller, index
            )
            events += [event for hook in self.on_create for event in hook(project_id, cmd.caller)]
            part.save(events)
            return to_view(_after(None, events), part.mode)

        return retry_on_conflict(attempt)

    def update_sync(self, cmd: UpdateProject) -> Project:
        part = self.partitions[cmd.caller.mode]

        def attempt() -> Project:
            state = self._accessible(
                part, cmd.caller, cmd.project_id, "developer", "Changing project settings"
            )
            domain.require_version(state.version, cmd.expected_version)
            new_index = old_index = None
            if cmd.name is not None and cmd.name != state.name:
                new_index = self._index(part, state.account, cmd.name)
                old_index = self._index(part, state.account, state.name)
            events = domain.update(state, cmd.name, cmd.description, new_index, old_index, cmd.caller.actor())
            part.save(events)
            return to_view(_after(state, events), part.mode)

        return retry_on_conflict(attempt)

    def delete_sync(self, cmd: DeleteProject) -> Project:
        part = self.partitions[cmd.caller.mode]

        def attempt() -> Project:
            # Deleting takes everything from every member, so it is the owners' decision.
            state = self._accessible(part, cmd.caller, cmd.project_id, "owner", "Deleting a project")
            domain.require_version(state.version, cmd.expected_version)
            index = self._index(part, state.account, state.name)
            events = domain.delete(state, index, cmd.caller.actor())
            part.save(events)
            return to_view(_after(state, events), part.mode)

        return retry_on_conflict(attempt)

    def get_sync(self, q: GetProject) -> Project:
        part = self.partitions[q.caller.mode]
        return to_view(self._accessible(part, q.caller, q.project_id), part.mode)

    def put_member_sync(self, cmd: PutProjectMember) -> ProjectMember:
        part = self.partitions[cmd.caller.mode]

        def attempt() -> ProjectMember:
            state = self._accessible(part, cmd.caller, cmd.project_id)
            events = domain.put_member(
                state, cmd.caller, cmd.member_id, cmd.role, cmd.expected_version, cmd.must_exist
            )
            part.save(events)
            return to_member_view(_after(state, events), cmd.member_id, part.mode)

        return retry_on_conflict(attempt)

    def remove_member_sync(self, cmd: RemoveProjectMember) -> ProjectMember:
        part = self.partitions[cmd.caller.mode]

        def attempt() -> ProjectMember:
            state = self._accessible(part, cmd.caller, cmd.project_id)
            events = domain.remove_member(state, cmd.caller, cmd.member_id, cmd.expected_version)
            part.save(events)
            return removed_member_view(state, cmd.member_id, part.mode, events[0].timestamp)

        return retry_on_conflict(attempt)

    def member_left_sync(self, mode: Mode, account: str, member_id: str, actor: Actor | None) -> int:
        """Remove a member who left the account from every project of that account and mode
        where they hold a role; how many memberships went."""
        part = self.partitions[mode]
        part.view.catch_up()
        rows = part.view.query(
            "SELECT m.project_id FROM project_members m JOIN projects p ON p.id = m.project_id"
            " WHERE m.member_id = ? AND p.account = ?",
            (member_id, account),
        )
        removed = 0
        for row in rows:
            key = decode_id("prj", row["project_id"])

            def attempt(key: uuid.UUID | None = key) -> int:
                state = part.load(key) if key else None
                if state is not None and state.account != account:
                    return 0  # the view is a cache; the aggregate decides (tenancy)
                events = domain.member_left_account(state, member_id, actor)
                part.save(events)
                return len(events)

            removed += retry_on_conflict(attempt)
        return removed

    def get_member_sync(self, q: GetProjectMember) -> ProjectMember:
        part = self.partitions[q.caller.mode]
        state = self._accessible(part, q.caller, q.project_id)
        if q.member_id not in state.members:
            raise domain.not_on_project(q.member_id)
        return to_member_view(state, q.member_id, part.mode)

    def list_members_sync(self, q: ListProjectMembers) -> ProjectMemberPage:
        part = self.partitions[q.caller.mode]
        state = self._accessible(part, q.caller, q.project_id)
        team = [(m.added_version, to_member_view(state, mid, part.mode)) for mid, m in state.members.items()]
        return listing.member_page(team, q)

    def list_sync(self, q: ListProjects) -> ProjectPage:
        part = self.partitions[q.caller.mode]
        # Another replica may have written since our last look: read our own writes.
        part.view.catch_up()
        sql, params = listing.list_sql(q)
        return listing.page(part.view.query(sql, params), q)

    def rebuild_sync(self, _: RebuildView) -> RebuildResult:
        counts = {}
        for hook in self.on_rebuild:
            hook()  # the other read models over this store (environments)
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

    async def put_member(self, cmd: PutProjectMember) -> ProjectMember:
        return await asyncio.to_thread(self.put_member_sync, cmd)

    async def remove_member(self, cmd: RemoveProjectMember) -> ProjectMember:
        return await asyncio.to_thread(self.remove_member_sync, cmd)

    async def member_left(self, mode: Mode, account: str, member_id: str, actor: Actor | None) -> int:
        return await asyncio.to_thread(self.member_left_sync, mode, account, member_id, actor)

    async def get_member(self, q: GetProjectMember) -> ProjectMember:
        return await asyncio.to_thread(self.get_member_sync, q)

    async def list_members(self, q: ListProjectMembers) -> ProjectMemberPage:
        return await asyncio.to_thread(self.list_members_sync, q)

    async def list(self, q: ListProjects) -> ProjectPage:
        return await asyncio.to_thread(self.list_sync, q)

    async def rebuild(self, q: RebuildView) -> RebuildResult:
        return await asyncio.to_thread(self.rebuild_sync, q)
