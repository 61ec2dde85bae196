"""The project aggregate (with its team) and the project-name index: state, decisions, events.

Pure: no I/O, and the clock comes in as `now`. Decisions take state and a command's values and
return events, or raise a DomainError. Names are unique within an account and mode through a
name-index aggregate whose id is derived from (account, name); saving the claim with the project
lets the store's optimistic concurrency reject a second claim of the same name.

Team access lives in the project aggregate itself, so that rules spanning the whole team (a
project that has an owner keeps at least one) are checked against one consistent version.

Build settings (how deployments build and run the project) are project settings too: a change
is a `ProjectUpdated` carrying every build setting after it (events recorded before build
settings existed carry none and leave them as they are).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import singledispatch
from typing import Any, TypeGuard

import msgspec

from stratus_contracts.auth import Caller
from stratus_contracts.deployments import BuildSettings
from stratus_contracts.errors import DomainError, FieldError
from stratus_contracts.events import Actor
from stratus_contracts.ids import encode_id
from stratus_contracts.projects import BUILD_FIELDS, ROLES, Role, build_setting_problem
from stratus_eventstore import preconditions
from stratus_eventstore.model import DomainEvent, index_uuid

RANK: dict[Role, int] = {role: rank for rank, role in enumerate(ROLES)}


class Membership(msgspec.Struct, frozen=True, kw_only=True):
    role: Role
    added_version: int  # the project version that gave the member access: orders the team
    created: datetime
    updated: datetime
    version: int = 0  # the project version that last changed this membership: its ETag


class Project(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    account: str
    name: str
    description: str
    owner: str | None
    created: datetime
    updated: datetime
    deleted: bool = False
    members: dict[str, Membership] = {}
    build: BuildSettings = msgspec.field(default_factory=BuildSettings)


class NameIndex(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    project_id: uuid.UUID | None


class ProjectEvent(DomainEvent, frozen=True, kw_only=True):
    """A change to a project, with who made it (the audit trail is derived from these)."""

    actor: Actor | None = None


class ProjectCreated(ProjectEvent, frozen=True, kw_only=True):
    account: str
    name: str
    description: str
    # The creating member, made owner in the same save; None when an unbound key created it.
    # Events recorded before team access carry `owner` (the creating key's id) instead, which is
    # deliberately not read: a key is not a member, so those projects have no owner.
    owner_member: str | None = None


class ProjectUpdated(ProjectEvent, frozen=True, kw_only=True):
    name: str | None = None
    description: str | None = None
    # Every build setting after the change; None: this change left them alone (and every
    # ProjectUpdated recorded before build settings existed).
    build: BuildSettings | None = None


class ProjectDeleted(ProjectEvent, frozen=True, kw_only=True):
    pass


class ProjectMemberAdded(ProjectEvent, frozen=True, kw_only=True):
    member_id: str
    role: Role


class ProjectMemberUpdated(ProjectEvent, frozen=True, kw_only=True):
    member_id: str
    role: Role
    previous_role: Role


class ProjectMemberRemoved(ProjectEvent, frozen=True, kw_only=True):
    member_id: str
    role: Role  # the role the member had


class ProjectNameClaimed(DomainEvent, frozen=True, kw_only=True):
    project_id: uuid.UUID


class ProjectNameReleased(DomainEvent, frozen=True, kw_only=True):
    project_id: uuid.UUID


MEMBER_EVENTS = (ProjectMemberAdded, ProjectMemberUpdated, ProjectMemberRemoved)


def name_index_id(account: str, name: str) -> uuid.UUID:
    return index_uuid("project-name", account, name)


def primary_owner(members: dict[str, Membership]) -> str | None:
    """The project's `owner`: the earliest-added member holding the owner role (the creator, as
    long as they keep it). A pure function of the team, so the list view computes it the same way."""
    owners = [(m.added_version, member_id) for member_id, m in members.items() if m.role == "owner"]
    return min(owners)[1] if owners else None


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
        owner=event.owner_member,
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
        build=state.build if event.build is None else event.build,
        updated=event.timestamp,
    )


@mutate.register
def _(event: ProjectDeleted, state: Project) -> Project:
    return msgspec.structs.replace(
        state, version=event.originator_version, updated=event.timestamp, deleted=True
    )


def _with_members(state: Project, event: ProjectEvent, members: dict[str, Membership]) -> Project:
    # Team changes are changes to the project: they move its version (its ETag) and `updated`.
    return msgspec.structs.replace(
        state,
        version=event.originator_version,
        updated=event.timestamp,
        members=members,
        owner=primary_owner(members),
    )


@mutate.register
def _(event: ProjectMemberAdded, state: Project) -> Project:
    added = Membership(
        role=event.role,
        added_version=event.originator_version,
        created=event.timestamp,
        updated=event.timestamp,
        version=event.originator_version,
    )
    return _with_members(state, event, {**state.members, event.member_id: added})


@mutate.register
def _(event: ProjectMemberUpdated, state: Project) -> Project:
    changed = msgspec.structs.replace(
        state.members[event.member_id],
        role=event.role,
        updated=event.timestamp,
        version=event.originator_version,
    )
    return _with_members(state, event, {**state.members, event.member_id: changed})


@mutate.register
def _(event: ProjectMemberRemoved, state: Project) -> Project:
    members = {k: v for k, v in state.members.items() if k != event.member_id}
    return _with_members(state, event, members)


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


def after(state: Project | None, events: Iterable[DomainEvent]) -> Project:
    """The project after the project's own events of a decision (index events are other
    aggregates, and so are the default environments made with it)."""
    return project(state, [e for e in events if isinstance(e, ProjectEvent)])  # type: ignore[return-value]


# --- who may do what -------------------------------------------------------------------------


def visible(state: object, caller: Caller) -> TypeGuard[Project]:
    """Whether the caller may know the project exists. Anything else is a 404, indistinguishable
    from a project that does not exist: another account's, outside the key's `project_ids`, or
    (for a member-bound key) one where the member has no role."""
    if not isinstance(state, Project) or state.deleted or state.account != caller.account_id:
        return False
    if not caller.may_see_project(encode_id("prj", state.id)):
        return False
    return caller.member_id is None or caller.member_id in state.members


def require_role(state: Project, caller: Caller, needed: Role, action: str) -> None:
    """403 unless a member-bound caller's role reaches `needed`. Unbound keys are account-wide:
    their scopes (checked by the gateway) bound them, not roles. Call after `visible`."""
    if caller.member_id is None:
        return
    have = state.members[caller.member_id].role
    if RANK[have] < RANK[needed]:
        raise DomainError(
            "insufficient_role",
            f"{action} needs the `{needed}` role on this project; this key's member has `{have}`.",
        )


def require_version(version: int, expected: int | None, what: str = "This project") -> None:
    preconditions.require_version(version, expected, what)


def require_unrestricted(caller: Caller) -> None:
    if caller.project_ids is not None:
        raise DomainError(
            "key_restricted",
            "This key is restricted to specific projects, so it cannot create projects.",
        )


# --- decisions -------------------------------------------------------------------------------


def _claim(
    index: NameIndex | None, account: str, name: str, project_id: uuid.UUID, now: datetime
) -> ProjectNameClaimed:
    if index is not None and index.project_id is not None and index.project_id != project_id:
        raise DomainError("project_name_taken", f"A project named {name!r} already exists in this account.")
    return ProjectNameClaimed(
        originator_id=name_index_id(account, name),
        originator_version=(index.version + 1) if index else 1,
        timestamp=now,
        project_id=project_id,
    )


def _release(index: NameIndex, project_id: uuid.UUID, now: datetime) -> ProjectNameReleased:
    return ProjectNameReleased(
        originator_id=index.id, originator_version=index.version + 1, timestamp=now, project_id=project_id
    )


def create(
    project_id: uuid.UUID,
    account: str,
    name: str,
    description: str,
    caller: Caller,
    index: NameIndex | None,
    now: datetime,
) -> list[DomainEvent]:
    """A new project; a member-bound creator becomes its owner member in the same save."""
    require_unrestricted(caller)
    actor = caller.actor()
    events: list[DomainEvent] = [
        ProjectCreated(
            originator_id=project_id,
            originator_version=1,
            timestamp=now,
            actor=actor,
            account=account,
            name=name,
            description=description,
            owner_member=caller.member_id,
        )
    ]
    if caller.member_id is not None:
        events.append(
            ProjectMemberAdded(
                originator_id=project_id,
                originator_version=2,
                timestamp=now,  # one moment: a new project's `updated` equals its `created`
                actor=actor,
                member_id=caller.member_id,
                role="owner",
            )
        )
    return [*events, _claim(index, account, name, project_id, now)]


def build_changes(message: Any) -> dict[str, str | None]:
    """The build settings a PATCH-like message changes, by field: a string sets, None clears,
    UNSET (left out) is no change. 422 naming each invalid one (`build.<field>`)."""
    changes = {f: v for f in BUILD_FIELDS if (v := getattr(message, f)) is not msgspec.UNSET}
    errors = [
        FieldError(field=f"build.{f}", message=problem)
        for f, v in changes.items()
        if v is not None and (problem := build_setting_problem(f, v)) is not None
    ]
    if errors:
        raise DomainError("validation_failed", f"{errors[0].field}: {errors[0].message}", errors)
    return changes


def validate_build(settings: BuildSettings) -> None:
    """422 unless every setting `settings` sets is valid (a PUT's or a create's overrides)."""
    build_changes(settings)


def changed_build(current: BuildSettings, changes: Mapping[str, str | None]) -> BuildSettings | None:
    """The build settings after `changes`, or None when they change nothing."""
    after = msgspec.structs.replace(current, **changes)
    return None if after == current else after


def update(
    state: Project,
    name: str | None,
    description: str | None,
    new_index: NameIndex | None,
    old_index: NameIndex | None,
    actor: Actor,
    now: datetime,
    build: BuildSettings | None = None,
) -> list[DomainEvent]:
    """`build`: every build setting after the change (None: no change to them)."""
    if name == state.name:
        name = None
    if description == state.description:
        description = None
    if build == state.build:
        build = None
    if name is None and description is None and build is None:
        return []
    events: list[DomainEvent] = [
        ProjectUpdated(
            originator_id=state.id,
            originator_version=state.version + 1,
            timestamp=now,
            actor=actor,
            name=name,
            description=description,
            build=build,
        )
    ]
    if name is not None:
        events.append(_claim(new_index, state.account, name, state.id, now))
        if old_index is not None and old_index.project_id == state.id:
            events.append(_release(old_index, state.id, now))
    return events


def delete(state: Project, index: NameIndex | None, actor: Actor, now: datetime) -> list[DomainEvent]:
    events: list[DomainEvent] = [
        ProjectDeleted(
            originator_id=state.id, originator_version=state.version + 1, timestamp=now, actor=actor
        )
    ]
    if index is not None and index.project_id == state.id:
        events.append(_release(index, state.id, now))
    return events


def not_on_project(member_id: str) -> DomainError:
    return DomainError("project_member_not_found", f"Member {member_id!r} has no role on this project.")


def _check_keeps_an_owner(state: Project, member_id: str) -> None:
    owners = [m for m, ms in state.members.items() if ms.role == "owner"]
    if owners == [member_id]:
        raise DomainError(
            "last_owner",
            f"Member {member_id!r} is this project's last owner; make another member owner first.",
        )


def put_member(
    state: Project,
    caller: Caller,
    member_id: str,
    role: Role,
    now: datetime,
    expected_version: int | None = None,
    must_exist: bool = False,
) -> list[DomainEvent]:
    """Give `member_id` the role, or change theirs. Admins manage the team, but only an owner may
    grant the owner role or change an owner's: otherwise an admin could take the project over.
    `expected_version`/`must_exist` (If-Match) hold against the membership, absent = no match."""
    current = state.members.get(member_id)
    require_role(state, caller, "admin", "Managing team access")
    if current is None and (must_exist or expected_version is not None):
        raise DomainError(
            "precondition_failed", f"Member {member_id!r} has no role on this project yet (If-Match)."
        )
    if current is not None:
        require_version(current.version, expected_version, "This membership")
    if role == "owner" or (current is not None and current.role == "owner"):
        require_role(state, caller, "owner", "Granting or changing the owner role")
    if current is None:
        return [
            ProjectMemberAdded(
                originator_id=state.id,
                originator_version=state.version + 1,
                timestamp=now,
                actor=caller.actor(),
                member_id=member_id,
                role=role,
            )
        ]
    if current.role == role:
        return []
    if current.role == "owner":
        _check_keeps_an_owner(state, member_id)
    return [
        ProjectMemberUpdated(
            originator_id=state.id,
            originator_version=state.version + 1,
            timestamp=now,
            actor=caller.actor(),
            member_id=member_id,
            role=role,
            previous_role=current.role,
        )
    ]


def member_left_account(
    state: Project | None, member_id: str, actor: Actor | None, now: datetime
) -> list[DomainEvent]:
    """The member was removed from the account (identity's `member.deleted`): their role here
    goes, whatever it is. The last-owner rule does not apply: nobody can act as a member who is
    gone, and the account's unbound admin keys still manage the project."""
    if not isinstance(state, Project) or state.deleted:
        return []
    current = state.members.get(member_id)
    if current is None:
        return []  # never on this team, or removed already (a redelivered event)
    return [
        ProjectMemberRemoved(
            originator_id=state.id,
            originator_version=state.version + 1,
            timestamp=now,
            actor=actor,
            member_id=member_id,
            role=current.role,
        )
    ]


def remove_member(
    state: Project, caller: Caller, member_id: str, now: datetime, expected_version: int | None = None
) -> list[DomainEvent]:
    require_role(state, caller, "admin", "Managing team access")
    current = state.members.get(member_id)
    if current is None:
        raise not_on_project(member_id)
    require_version(current.version, expected_version, "This membership")
    if current.role == "owner":
        require_role(state, caller, "owner", "Removing an owner")
        _check_keeps_an_owner(state, member_id)
    return [
        ProjectMemberRemoved(
            originator_id=state.id,
            originator_version=state.version + 1,
            timestamp=now,
            actor=caller.actor(),
            member_id=member_id,
            role=current.role,
        )
    ]
