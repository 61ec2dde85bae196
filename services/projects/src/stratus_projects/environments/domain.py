"""Environments, their versioned variables, data keys and reveals: state, decisions, events.

Pure: no I/O. An environment is an aggregate of its own (`env_…`) that names its project. Its
variables live in it as sealed values (AES-GCM ciphertext under the environment's data key, never
plaintext) with a keyed fingerprint; every change to them is one `EnvVarsChanged` event that
makes the next config version, so version `n` is the map replayed up to the event that made it.
Version 1 is the empty map an environment starts with. The aggregate holds only its current map
and what made its current version: the list of versions is a read model (`read_model`), so an
environment with ten thousand versions is as small, and as quick to load, as a new one.

Other aggregates here: the name index (names are unique per project, claimed in the same save as
the change), a per-project marker that the default environments were made, the environment's
data key (wrapped by a master key; re-wrapping records an event there, never on the environment,
so a master-key rotation leaves environment versions and ETags alone), and one aggregate per
secret reveal (so concurrent reveals never conflict).

An environment may override its project's build settings (`build`, set by create, PUT and
PATCH: `EnvironmentReplaced` carries every setting after the change), and records which
deployment serves it and where (`EnvironmentDeployed`, from the deployments service's events,
ordered by the deployments' ready times so that a late, older one never wins).

Sealing and fingerprinting are passed in (`Sealer`), and the clock as `now`: decisions stay pure
and testable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import singledispatch
from typing import Protocol, TypeGuard

import msgspec
from eventsourcing.utils import register_topic

from stratus_contracts import envs as c
from stratus_contracts.auth import Caller
from stratus_contracts.deployments import BuildSettings, DeployTarget
from stratus_contracts.errors import DomainError, FieldError
from stratus_contracts.events import Actor, Mode
from stratus_contracts.ids import encode_id
from stratus_contracts.projects import (
    BUILD_FIELDS,
    DEFAULT_BUILD_COMMAND,
    DEFAULT_HEALTH_CHECK_PATH,
)
from stratus_eventstore.model import DomainEvent, index_uuid
from stratus_projects import domain as projects


class Sealer(Protocol):
    def seal(self, name: str, value: str) -> bytes: ...

    def fingerprint(self, value: str) -> str: ...


# --- events ------------------------------------------------------------------------------------


class EnvEvent(DomainEvent, frozen=True, kw_only=True):
    """A change to an environment, with who made it."""

    actor: Actor | None = None


class EnvironmentCreated(EnvEvent, frozen=True, kw_only=True):
    account: str
    project_id: uuid.UUID
    name: str
    description: str = ""
    branch: str | None = None
    auto_deploy: bool = False
    build: BuildSettings | None = None  # overrides of the project's build settings


class EnvironmentReplaced(EnvEvent, frozen=True, kw_only=True):
    """PUT or PATCH: every setting as it is after the change, and the names of those that changed
    (`build.<field>` for an override)."""

    name: str
    description: str
    branch: str | None
    auto_deploy: bool
    changed: tuple[str, ...]
    # None: recorded before environments had build overrides (they had none, and keep none).
    build: BuildSettings | None = None


class EnvironmentDeployed(EnvEvent, frozen=True, kw_only=True):
    """A deployment now serves the environment (its `deployment.succeeded` or `rolled_back`)."""

    deployment_id: str
    url: str | None
    ready_at: datetime  # when that deployment became ready: orders late, out-of-order events
    changed: tuple[str, ...]  # `url`, `deployment_id`: what a reader sees change


class EnvironmentDeleted(EnvEvent, frozen=True, kw_only=True):
    pass


class SealedValue(msgspec.Struct, frozen=True, kw_only=True):
    secret: bool
    sealed: bytes  # nonce ‖ AES-256-GCM ciphertext ‖ tag, under the environment's data key
    fingerprint: str


class EnvVarsChanged(EnvEvent, frozen=True, kw_only=True):
    config_version: int  # the config version this change makes
    set: dict[str, SealedValue] = {}
    removed: tuple[str, ...] = ()


class EnvNameClaimed(DomainEvent, frozen=True, kw_only=True):
    env_id: uuid.UUID


class EnvNameReleased(DomainEvent, frozen=True, kw_only=True):
    env_id: uuid.UUID


class EnvironmentsSeeded(DomainEvent, frozen=True, kw_only=True):
    """The project's default environments were made (once; deleting one later is final)."""

    project_id: uuid.UUID


class DataKeyCreated(DomainEvent, frozen=True, kw_only=True):
    env_id: uuid.UUID
    account: str
    kek_id: str  # which master key wrapped it
    wrapped: bytes


class DataKeyRewrapped(DomainEvent, frozen=True, kw_only=True):
    kek_id: str
    previous_kek_id: str
    wrapped: bytes


class SecretRevealed(DomainEvent, frozen=True, kw_only=True):
    """Secret values were shown to a caller. Names only: the values are never in an event."""

    actor: Actor | None = None
    account: str
    env_id: uuid.UUID
    project_id: uuid.UUID
    environment: str
    config_version: int
    keys: tuple[str, ...]
    via: c.RevealVia
    deployment_id: str | None = None  # via `deploy`: whose app got the values


# Recorded before environments became a subpackage, under the flat module's name.
for _moved in (
    EnvironmentCreated,
    EnvironmentReplaced,
    EnvironmentDeleted,
    EnvVarsChanged,
    EnvNameClaimed,
    EnvNameReleased,
    EnvironmentsSeeded,
    DataKeyCreated,
    DataKeyRewrapped,
    SecretRevealed,
):
    register_topic(f"stratus_projects.envs_domain:{_moved.__name__}", _moved)

ENV_EVENTS = (
    EnvironmentCreated,
    EnvironmentReplaced,
    EnvironmentDeleted,
    EnvVarsChanged,
    EnvironmentDeployed,
)

# --- state -------------------------------------------------------------------------------------


class Var(msgspec.Struct, frozen=True, kw_only=True):
    secret: bool
    sealed: bytes
    fingerprint: str
    updated: datetime


class VersionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One config version: what made it, and where in the environment's history it is."""

    number: int
    at: int  # the environment's aggregate version right after this config version was made
    created: datetime
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    var_count: int


class Environment(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    account: str
    project_id: uuid.UUID
    name: str
    description: str
    branch: str | None
    auto_deploy: bool
    created: datetime
    updated: datetime
    deleted: bool = False
    vars: dict[str, Var] = {}
    latest: VersionInfo  # the current config version
    build: BuildSettings = msgspec.field(default_factory=BuildSettings)  # overrides
    url: str | None = None
    deployment_id: str | None = None
    served_since: datetime | None = None  # the serving deployment's ready time

    @property
    def config_version(self) -> int:
        return self.latest.number


class NameIndex(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    env_id: uuid.UUID | None


class Seeded(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int


class DataKeyState(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    env_id: uuid.UUID
    account: str
    kek_id: str
    wrapped: bytes


class Reveal(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int


def name_index_id(project_id: uuid.UUID, name: str) -> uuid.UUID:
    return index_uuid("env-name", str(project_id), name)


def seeded_id(project_id: uuid.UUID) -> uuid.UUID:
    return index_uuid("env-seeded", str(project_id))


def data_key_id(env_id: uuid.UUID) -> uuid.UUID:
    return index_uuid("env-data-key", str(env_id))


# --- applying events -------------------------------------------------------------------------


@singledispatch
def mutate(event: DomainEvent, state: object) -> object:
    raise NotImplementedError(type(event).__name__)


@mutate.register
def _(event: EnvironmentCreated, _: None) -> Environment:
    return Environment(
        id=event.originator_id,
        version=event.originator_version,
        account=event.account,
        project_id=event.project_id,
        name=event.name,
        description=event.description,
        branch=event.branch,
        auto_deploy=event.auto_deploy,
        created=event.timestamp,
        updated=event.timestamp,
        latest=first_version(event),
        build=event.build or BuildSettings(),
    )


@mutate.register
def _(event: EnvironmentReplaced, state: Environment) -> Environment:
    return msgspec.structs.replace(
        state,
        version=event.originator_version,
        name=event.name,
        description=event.description,
        branch=event.branch,
        auto_deploy=event.auto_deploy,
        build=state.build if event.build is None else event.build,
        updated=event.timestamp,
    )


@mutate.register
def _(event: EnvironmentDeployed, state: Environment) -> Environment:
    return msgspec.structs.replace(
        state,
        version=event.originator_version,
        url=event.url,
        deployment_id=event.deployment_id,
        served_since=event.ready_at,
        updated=event.timestamp,
    )


@mutate.register
def _(event: EnvironmentDeleted, state: Environment) -> Environment:
    return msgspec.structs.replace(
        state, version=event.originator_version, updated=event.timestamp, deleted=True
    )


@mutate.register
def _(event: EnvVarsChanged, state: Environment) -> Environment:
    variables = {k: v for k, v in state.vars.items() if k not in event.removed}
    for key, value in event.set.items():
        variables[key] = Var(
            secret=value.secret, sealed=value.sealed, fingerprint=value.fingerprint, updated=event.timestamp
        )
    info = VersionInfo(
        number=event.config_version,
        at=event.originator_version,
        created=event.timestamp,
        changed=tuple(sorted(event.set)),
        removed=tuple(sorted(event.removed)),
        var_count=len(variables),
    )
    return msgspec.structs.replace(
        state,
        version=event.originator_version,
        updated=event.timestamp,
        vars=variables,
        latest=info,
    )


@mutate.register
def _(event: EnvNameClaimed, _: NameIndex | None) -> NameIndex:
    return NameIndex(id=event.originator_id, version=event.originator_version, env_id=event.env_id)


@mutate.register
def _(event: EnvNameReleased, _: NameIndex) -> NameIndex:
    return NameIndex(id=event.originator_id, version=event.originator_version, env_id=None)


@mutate.register
def _(event: EnvironmentsSeeded, _: None) -> Seeded:
    return Seeded(id=event.originator_id, version=event.originator_version)


@mutate.register
def _(event: DataKeyCreated, _: None) -> DataKeyState:
    return DataKeyState(
        id=event.originator_id,
        version=event.originator_version,
        env_id=event.env_id,
        account=event.account,
        kek_id=event.kek_id,
        wrapped=event.wrapped,
    )


@mutate.register
def _(event: DataKeyRewrapped, state: DataKeyState) -> DataKeyState:
    return msgspec.structs.replace(
        state, version=event.originator_version, kek_id=event.kek_id, wrapped=event.wrapped
    )


@mutate.register
def _(event: SecretRevealed, _: None) -> Reveal:
    return Reveal(id=event.originator_id, version=event.originator_version)


def project(state: object, events: Iterable[DomainEvent]) -> object:
    for event in events:
        state = mutate(event, state)
    return state


# --- who may see what ------------------------------------------------------------------------


def may_see_name(caller: Caller, name: str) -> bool:
    return caller.environments is None or name in caller.environments


def visible(state: object, project_state: object, caller: Caller) -> TypeGuard[Environment]:
    """Whether the caller may know the environment exists: its project is visible to the caller
    (account, `project_ids`, team membership: the projects rules) and its name is inside the
    key's `environments`. Anything else is a 404 like an environment that does not exist."""
    if not isinstance(state, Environment) or state.deleted or state.account != caller.account_id:
        return False
    if not isinstance(project_state, projects.Project) or project_state.id != state.project_id:
        return False
    return projects.visible(project_state, caller) and may_see_name(caller, state.name)


def require_name_allowed(caller: Caller, name: str) -> None:
    """A key restricted to environments cannot make or rename one outside them: it would lose it."""
    if not may_see_name(caller, name):
        raise DomainError(
            "key_restricted",
            f"This key is restricted to specific environments, so it cannot use the name {name!r}.",
        )


def not_found(env_id: str) -> DomainError:
    return DomainError("environment_not_found", f"No environment {env_id!r} in this account.")


# --- decisions: environments -----------------------------------------------------------------


def _claim(
    index: NameIndex | None, project_id: uuid.UUID, name: str, env_id: uuid.UUID, now: datetime
) -> EnvNameClaimed:
    if index is not None and index.env_id is not None and index.env_id != env_id:
        raise DomainError(
            "environment_name_taken", f"An environment named {name!r} already exists in this project."
        )
    return EnvNameClaimed(
        originator_id=name_index_id(project_id, name),
        originator_version=(index.version + 1) if index else 1,
        timestamp=now,
        env_id=env_id,
    )


def _release(index: NameIndex, env_id: uuid.UUID, now: datetime) -> EnvNameReleased:
    return EnvNameReleased(
        originator_id=index.id, originator_version=index.version + 1, timestamp=now, env_id=env_id
    )


def create(
    env_id: uuid.UUID,
    account: str,
    project_id: uuid.UUID,
    settings: c.CreateEnvironment,
    index: NameIndex | None,
    actor: Actor | None,
    now: datetime,
) -> list[DomainEvent]:
    projects.validate_build(settings.build)
    created = EnvironmentCreated(
        originator_id=env_id,
        originator_version=1,
        timestamp=now,
        actor=actor,
        account=account,
        project_id=project_id,
        name=settings.name,
        description=settings.description,
        branch=settings.branch,
        auto_deploy=settings.auto_deploy,
        # None when there are none, as in the events recorded before overrides existed.
        build=None if settings.build == BuildSettings() else settings.build,
    )
    return [created, _claim(index, project_id, settings.name, env_id, now)]


def seed(
    project_id: uuid.UUID,
    account: str,
    caller: Caller,
    marker: Seeded | None,
    indexes: dict[str, NameIndex | None],
    new_id: Iterable[uuid.UUID],
    now: datetime,
) -> list[DomainEvent]:
    """The project's default environments (`production`, then `staging`), once per project.

    A name already taken (an environment made before the defaults, which can only happen by
    hand) is left alone."""
    if marker is not None:
        return []
    ids = iter(new_id)
    events: list[DomainEvent] = []
    for offset, name in enumerate(c.DEFAULT_ENVIRONMENTS):
        index = indexes.get(name)
        if index is not None and index.env_id is not None:
            continue
        settings = c.CreateEnvironment(caller=caller, project_id="", name=name)
        # One microsecond apart, so that "oldest first" lists production before staging.
        when = now + timedelta(microseconds=offset)
        events += create(next(ids), account, project_id, settings, index, caller.actor(), when)
    events.append(
        EnvironmentsSeeded(
            originator_id=seeded_id(project_id), originator_version=1, timestamp=now, project_id=project_id
        )
    )
    return events


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting of an environment a PUT or PATCH decides (what `EnvironmentReplaced` holds)."""

    name: str
    description: str
    branch: str | None
    auto_deploy: bool
    build: BuildSettings


def settings_of(state: Environment) -> Settings:
    return Settings(
        name=state.name,
        description=state.description,
        branch=state.branch,
        auto_deploy=state.auto_deploy,
        build=state.build,
    )


def replace(
    state: Environment,
    caller: Caller,
    after: Settings,
    expected_version: int | None,
    new_index: NameIndex | None,
    old_index: NameIndex | None,
    now: datetime,
) -> list[DomainEvent]:
    """The environment's settings become `after` (PUT; PATCH with what it leaves merged in)."""
    projects.require_version(state.version, expected_version, "This environment")
    require_name_allowed(caller, after.name)
    before = settings_of(state)
    new_build = {f: v for f in BUILD_FIELDS if (v := getattr(after.build, f)) != getattr(before.build, f)}
    # Only what changes is checked: a setting stored under older rules does not block the rest.
    projects.build_changes(BuildSettings(**new_build))
    changed = tuple(
        field
        for field in ("name", "description", "branch", "auto_deploy")
        if getattr(before, field) != getattr(after, field)
    ) + tuple(f"build.{field}" for field in new_build)
    if not changed:
        return []
    events: list[DomainEvent] = [
        EnvironmentReplaced(
            originator_id=state.id,
            originator_version=state.version + 1,
            timestamp=now,
            actor=caller.actor(),
            name=after.name,
            description=after.description,
            branch=after.branch,
            auto_deploy=after.auto_deploy,
            changed=changed,
            build=after.build,
        )
    ]
    if "name" in changed:
        events.append(_claim(new_index, state.project_id, after.name, state.id, now))
        if old_index is not None and old_index.env_id == state.id:
            events.append(_release(old_index, state.id, now))
    return events


def patched(state: Environment, cmd: c.UpdateEnvironment) -> Settings:
    """The settings after a PATCH: what it names, merged into what the environment has."""
    before = settings_of(state)
    return Settings(
        name=before.name if cmd.name is None else cmd.name,
        description=before.description if cmd.description is None else cmd.description,
        branch=before.branch if cmd.branch is msgspec.UNSET else cmd.branch,
        auto_deploy=before.auto_deploy if cmd.auto_deploy is None else cmd.auto_deploy,
        build=msgspec.structs.replace(before.build, **projects.build_changes(cmd)),
    )


# --- decisions: the deployment serving an environment ----------------------------------------


def deployed(
    state: object,
    account: str,
    project_id: uuid.UUID,
    deployment_id: str,
    url: str | None,
    ready_at: datetime,
    actor: Actor | None,
    now: datetime,
) -> list[DomainEvent]:
    """`deployment_id` (ready at `ready_at`) serves the environment at `url` now, unless a
    deployment that became ready later already does: events arrive late and out of order, and
    the newest ready deployment is the one serving (ties: the greater id, so every replica and
    every redelivery agrees). A deleted environment, or one of another account or project,
    ignores it; so does a redelivery (nothing changes)."""
    if not isinstance(state, Environment) or state.deleted:
        return []
    if state.account != account or state.project_id != project_id:
        return []
    if state.served_since is not None and (ready_at, deployment_id) <= (
        state.served_since,
        state.deployment_id or "",
    ):
        return []
    changed = tuple(
        field
        for field, value in (("url", url), ("deployment_id", deployment_id))
        if getattr(state, field) != value
    )
    if not changed:
        return []
    return [
        EnvironmentDeployed(
            originator_id=state.id,
            originator_version=state.version + 1,
            timestamp=now,
            actor=actor,
            deployment_id=deployment_id,
            url=url,
            ready_at=ready_at,
            changed=changed,
        )
    ]


def effective_build(project: BuildSettings, env: BuildSettings) -> BuildSettings:
    """Each build setting from the environment's override, else the project's."""
    return BuildSettings(
        **{
            field: getattr(env, field) if getattr(env, field) is not None else getattr(project, field)
            for field in BUILD_FIELDS
        }
    )


def deploy_target(env: Environment, project: projects.Project, mode: Mode) -> DeployTarget:
    """What a new deployment of `env` builds and runs; 422 `deploy_settings_missing` naming the
    settings that are set nowhere."""
    build = effective_build(project.build, env.build)
    missing = [field for field in ("repo_url", "start_command") if getattr(build, field) is None]
    if missing:
        names = " and ".join(f"`{field}`" for field in missing)
        raise DomainError(
            "deploy_settings_missing",
            f"Neither the project nor environment {env.name!r} sets {names}: set "
            f"{'it' if len(missing) == 1 else 'them'} with "
            f"`PATCH /v1/projects/{encode_id('prj', env.project_id)}` (or override them on the "
            "environment) first.",
            [
                FieldError(field=f"build.{field}", message="Set it on the project or the environment.")
                for field in missing
            ],
        )
    assert build.repo_url is not None
    assert build.start_command is not None
    return DeployTarget(
        account=env.account,
        mode=mode,
        project_id=encode_id("prj", env.project_id),
        env_id=encode_id("env", env.id),
        env_name=env.name,
        config_version=env.config_version,
        repo_url=build.repo_url,
        build_command=DEFAULT_BUILD_COMMAND if build.build_command is None else build.build_command,
        start_command=build.start_command,
        health_check_path=(
            DEFAULT_HEALTH_CHECK_PATH if build.health_check_path is None else build.health_check_path
        ),
    )


def delete(
    state: Environment, index: NameIndex | None, actor: Actor, expected_version: int | None, now: datetime
) -> list[DomainEvent]:
    projects.require_version(state.version, expected_version, "This environment")
    # Once deployments exist (#6): refuse with 409 while the environment has an active deployment.
    # The handler will ask the deployments read model and pass the answer in; nothing to ask yet.
    events: list[DomainEvent] = [
        EnvironmentDeleted(
            originator_id=state.id, originator_version=state.version + 1, timestamp=now, actor=actor
        )
    ]
    if index is not None and index.env_id == state.id:
        events.append(_release(index, state.id, now))
    return events


# --- decisions: variables --------------------------------------------------------------------


def _invalid(errors: list[FieldError]) -> DomainError:
    return DomainError("validation_failed", errors[0].message, errors)


def validate_changes(changes: Sequence[c.VarChange], remove: Sequence[str], keep: Sequence[str]) -> None:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for change in changes:
        if (problem := c.key_problem(change.key)) is not None:
            errors.append(FieldError(field=change.key[:300] or "key", message=problem))
        elif change.key in seen:
            errors.append(FieldError(field=change.key, message="This key is given more than once."))
        if (problem := c.value_problem(change.value)) is not None:
            errors.append(FieldError(field=change.key[:300] or "value", message=problem))
        seen.add(change.key)
    for key in (*remove, *keep):
        if (problem := c.key_problem(key)) is not None:
            errors.append(FieldError(field=key[:300] or "key", message=problem))
    for key in remove:
        if key in seen:
            errors.append(FieldError(field=key, message="This key is both set and removed."))
    if errors:
        raise _invalid(errors)


def change_vars(
    state: Environment,
    cmd: c.ChangeVars,
    sealer: Sealer | None,
    now: datetime,
) -> list[DomainEvent]:
    """One new config version with the changes, or nothing when nothing would change.

    A value whose fingerprint and secret flag equal the current ones is no change (fingerprints
    are keyed HMACs, so equal fingerprints mean equal values). `sealer` may be None only when
    nothing is set."""
    projects.require_version(state.version, cmd.expected_version, "This environment")
    validate_changes(cmd.set, cmd.remove, cmd.keep)
    missing = [key for key in cmd.remove if key not in state.vars]
    if missing and not cmd.missing_ok:
        raise DomainError("env_var_not_found", f"No variable named {missing[0]!r} in this environment.")
    removed = {key for key in cmd.remove if key in state.vars}
    if cmd.prune:
        wanted = {change.key for change in cmd.set} | set(cmd.keep)
        removed |= {key for key in state.vars if key not in wanted}
    sealed: dict[str, SealedValue] = {}
    for change in cmd.set:
        current = state.vars.get(change.key)
        secret = change.secret if change.secret is not None else (current.secret if current else False)
        assert sealer is not None, "values are set, so the handler passed a sealer"
        fingerprint = sealer.fingerprint(change.value)
        if current is not None and current.fingerprint == fingerprint and current.secret == secret:
            continue
        sealed[change.key] = SealedValue(
            secret=secret, sealed=sealer.seal(change.key, change.value), fingerprint=fingerprint
        )
    if not sealed and not removed:
        return []
    count = len((set(state.vars) - removed) | set(sealed))
    if count > c.MAX_VARS:
        raise _invalid(
            [
                FieldError(
                    field="vars",
                    message=f"An environment holds at most {c.MAX_VARS} variables; "
                    f"this change would make {count}.",
                )
            ]
        )
    return [
        EnvVarsChanged(
            originator_id=state.id,
            originator_version=state.version + 1,
            timestamp=now,
            actor=cmd.caller.actor(),
            config_version=state.config_version + 1,
            set=sealed,
            removed=tuple(sorted(removed)),
        )
    ]


def first_version(event: EnvironmentCreated) -> VersionInfo:
    """Version 1: the empty map an environment starts with."""
    return VersionInfo(
        number=1, at=event.originator_version, created=event.timestamp, changed=(), removed=(), var_count=0
    )


def version_info(state: Environment, number: int, older: VersionInfo | None) -> VersionInfo:
    """Config version `number` of `state`: its current one, or `older` (from the read model)."""
    if number == state.config_version:
        return state.latest
    if older is None or not 1 <= number < state.config_version:
        raise DomainError("config_version_not_found", f"This environment has no config version {number}.")
    return older


# --- decisions: data keys and reveals --------------------------------------------------------


def new_data_key(env: Environment, kek_id: str, wrapped: bytes, now: datetime) -> DataKeyCreated:
    return DataKeyCreated(
        originator_id=data_key_id(env.id),
        originator_version=1,
        timestamp=now,
        env_id=env.id,
        account=env.account,
        kek_id=kek_id,
        wrapped=wrapped,
    )


def rewrap(state: DataKeyState, kek_id: str, wrapped: bytes, now: datetime) -> list[DomainEvent]:
    if state.kek_id == kek_id:
        return []
    return [
        DataKeyRewrapped(
            originator_id=state.id,
            originator_version=state.version + 1,
            timestamp=now,
            kek_id=kek_id,
            previous_kek_id=state.kek_id,
            wrapped=wrapped,
        )
    ]


def require_reveal_scope(caller: Caller) -> None:
    """Secret values are shown only to keys with the admin scope (the gateway checks it first)."""
    if "admin" not in caller.scopes:
        raise DomainError("insufficient_scope", "Revealing secret values needs the `admin` scope.")


def reveal(
    reveal_id: uuid.UUID,
    env: Environment,
    caller: Caller | None,
    config_version: int,
    keys: Iterable[str],
    via: c.RevealVia,
    now: datetime,
    *,
    actor: Actor | None = None,
    deployment_id: str | None = None,
) -> list[DomainEvent]:
    """The record of a reveal, saved before any value is shown (nothing secret shown: nothing).
    `caller` None: the deployments runner's (`actor` is who asked for the deployment)."""
    names = tuple(sorted(keys))
    if not names:
        return []
    return [
        SecretRevealed(
            originator_id=reveal_id,
            originator_version=1,
            timestamp=now,
            actor=caller.actor() if caller is not None else actor,
            account=env.account,
            env_id=env.id,
            project_id=env.project_id,
            environment=env.name,
            config_version=config_version,
            keys=names,
            via=via,
            deployment_id=deployment_id,
        )
    ]
