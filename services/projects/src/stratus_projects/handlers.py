"""Project and team handlers: `(message, state, now) → (events, reply)`; the kit saves.

Every handler first resolves the project as the caller may see it (`accessible`): another
account's project, one outside the key's `project_ids` and, for a member-bound key, one where
the member has no role are all the same 404. Role checks then give 403 `insufficient_role`.
"""

from __future__ import annotations

from datetime import datetime

from stratus_contracts import projects as c
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_contracts.events import Actor, Mode
from stratus_contracts.ids import decode_id, new_uuid
from stratus_contracts.messages import Command
from stratus_kit import Decision, State
from stratus_projects import domain, read_model, views
from stratus_projects.environments import domain as environments


class MemberLeft(Command[int], frozen=True, kw_only=True):
    """A member was removed from the account (identity's `member.deleted`): take their roles away
    on every project of that account and mode. Local: made by the departures consumer."""

    mode: Mode
    account: str
    member_id: str
    actor: Actor | None = None


def not_found(project_id: str) -> DomainError:
    return DomainError("project_not_found", f"No project {project_id!r} in this account.")


def accessible(
    state: State, caller: Caller, project_id: str, needed: c.Role | None = None, action: str = ""
) -> domain.Project:
    """The live project if the caller may see it (and holds `needed`), else 404 (or 403)."""
    project = state.get(decode_id("prj", project_id))
    if not domain.visible(project, caller):
        raise not_found(project_id)
    if needed is not None:
        domain.require_role(project, caller, needed, action)
    return project


def _index(state: State, account: str, name: str) -> domain.NameIndex | None:
    return state.get(domain.name_index_id(account, name))


def create_project(cmd: c.CreateProject, state: State, now: datetime) -> Decision:
    caller = cmd.caller
    project_id = new_uuid()
    index = _index(state, caller.account_id, cmd.name)
    events = domain.create(project_id, caller.account_id, cmd.name, cmd.description, caller, index, now)
    # The default environments exist when the 201 arrives: made in the project's own commit.
    events += environments.seed(project_id, caller.account_id, caller, None, {}, iter(new_uuid, None), now)
    return events, views.project(domain.after(None, events), state.name)


def update_project(cmd: c.UpdateProject, state: State, now: datetime) -> Decision:
    project = accessible(state, cmd.caller, cmd.project_id, "developer", "Changing project settings")
    domain.require_version(project.version, cmd.expected_version)
    new_index = old_index = None
    if cmd.name is not None and cmd.name != project.name:
        new_index = _index(state, project.account, cmd.name)
        old_index = _index(state, project.account, project.name)
    build = domain.changed_build(project.build, domain.build_changes(cmd))
    events = domain.update(
        project, cmd.name, cmd.description, new_index, old_index, cmd.caller.actor(), now, build
    )
    return events, views.project(domain.after(project, events), state.name)


def delete_project(cmd: c.DeleteProject, state: State, now: datetime) -> Decision:
    # Deleting takes everything from every member, so it is the owners' decision.
    project = accessible(state, cmd.caller, cmd.project_id, "owner", "Deleting a project")
    domain.require_version(project.version, cmd.expected_version)
    index = _index(state, project.account, project.name)
    events = domain.delete(project, index, cmd.caller.actor(), now)
    return events, views.project(domain.after(project, events), state.name)


def get_project(q: c.GetProject, state: State, now: datetime) -> Decision:
    return (), views.project(accessible(state, q.caller, q.project_id), state.name)


def list_projects(q: c.ListProjects, state: State, now: datetime) -> Decision:
    sql, params = read_model.list_sql(q)
    return (), read_model.page(state.read_model("projects").query(sql, params), q)


def put_project_member(cmd: c.PutProjectMember, state: State, now: datetime) -> Decision:
    project = accessible(state, cmd.caller, cmd.project_id)
    events = domain.put_member(
        project, cmd.caller, cmd.member_id, cmd.role, now, cmd.expected_version, cmd.must_exist
    )
    return events, views.member(domain.after(project, events), cmd.member_id, state.name)


def remove_project_member(cmd: c.RemoveProjectMember, state: State, now: datetime) -> Decision:
    project = accessible(state, cmd.caller, cmd.project_id)
    events = domain.remove_member(project, cmd.caller, cmd.member_id, now, cmd.expected_version)
    return events, views.removed_member(project, cmd.member_id, state.name, now)


def get_project_member(q: c.GetProjectMember, state: State, now: datetime) -> Decision:
    project = accessible(state, q.caller, q.project_id)
    if q.member_id not in project.members:
        raise domain.not_on_project(q.member_id)
    return (), views.member(project, q.member_id, state.name)


def list_project_members(q: c.ListProjectMembers, state: State, now: datetime) -> Decision:
    project = accessible(state, q.caller, q.project_id)
    team = [(m.added_version, views.member(project, mid, state.name)) for mid, m in project.members.items()]
    return (), read_model.member_page(team, q)


def member_left(cmd: MemberLeft, state: State, now: datetime) -> Decision:
    """Every role the departed member held in that account and mode, removed in one commit; the
    reply is how many went (a redelivered event finds none left)."""
    rows = state.read_model("projects").query(
        "SELECT m.project_id FROM project_members m JOIN projects p ON p.id = m.project_id"
        " WHERE m.member_id = ? AND p.account = ?",
        (cmd.member_id, cmd.account),
    )
    events = []
    for row in rows:
        project = state.get(decode_id("prj", row["project_id"]))
        if isinstance(project, domain.Project) and project.account == cmd.account:  # the aggregate decides
            events += domain.member_left_account(project, cmd.member_id, cmd.actor, now)
    return events, len(events)


HANDLERS = {
    c.CreateProject: create_project,
    c.UpdateProject: update_project,
    c.DeleteProject: delete_project,
    c.GetProject: get_project,
    c.ListProjects: list_projects,
    c.PutProjectMember: put_project_member,
    c.RemoveProjectMember: remove_project_member,
    c.GetProjectMember: get_project_member,
    c.ListProjectMembers: list_project_members,
    MemberLeft: member_left,
}
