"""Environment and variable handlers: `(message, state, now) → (events, reply)`; the kit saves.

Access follows the projects rules (`domain.visible`): an environment is visible when its project
is (account, mode, `project_ids`, team membership) and its name is inside the key's
`environments`; otherwise it is the same 404 as one that does not exist. Roles: any role reads,
`developer` creates, changes settings and variables, `admin` deletes; revealing secret values
needs the admin scope and the `developer` role, and is recorded (`SecretRevealed`) in the same
commit the kit makes before any value leaves the service.

Values are sealed before they reach a decision and opened only to build a reply. The handlers
that touch values take the process's `keyring` (bound in `handlers(keyring)`).

For deployments: `ResolveDeployTarget` applies the same access rules (and the `developer` role)
and resolves the effective build settings; `GetRuntimeVariables` (internal, no caller) opens a
config version for the runner and records the reveal first; `SetServingDeployment` (local, made
by the deployment consumer) records which deployment serves an environment.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from stratus_contracts import envs as c
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError, FieldError
from stratus_contracts.events import Actor, Mode
from stratus_contracts.ids import decode_id, encode_id, new_uuid
from stratus_contracts.messages import Command
from stratus_contracts.projects import Role
from stratus_kit import Decision, Handler, State
from stratus_kit.state import Later
from stratus_projects import domain as projects
from stratus_projects.environments import crypto, read_model, views
from stratus_projects.environments import domain as d
from stratus_projects.handlers import accessible

# Sealed value = 12-byte nonce + ciphertext + 16-byte tag: its plaintext is 28 bytes shorter.
_SEAL_OVERHEAD = crypto.NONCE_BYTES + 16
# Every variable of one environment, keys and values together: a config version must fit in one
# bus message and one response, so the whole map is bounded too.
MAX_TOTAL_BYTES = 512 * 1024


class SetServingDeployment(Command[bool], frozen=True, kw_only=True):
    """A deployment of the environment became ready (`deployment.succeeded` or `rolled_back`):
    it serves the environment at `url` unless a later-ready one already does. Local: made by the
    deployment consumer. The reply is whether the environment changed."""

    mode: Mode
    account: str
    project_id: str
    env_id: str
    deployment_id: str
    url: str | None
    ready_at: datetime
    actor: Actor | None = None


def _total_bytes(env: d.Environment) -> int:
    return sum(len(k) + len(v.sealed) - _SEAL_OVERHEAD for k, v in env.vars.items())


def _env(
    state: State, caller: Caller, env_id: str, needed: Role | None = None, action: str = ""
) -> tuple[d.Environment, projects.Project]:
    """The live environment and its project if the caller may see it (and holds `needed`)."""
    env = state.get(decode_id("env", env_id))
    project = state.get(env.project_id) if isinstance(env, d.Environment) else None
    if not d.visible(env, project, caller):
        raise d.not_found(env_id)
    if needed is not None:
        projects.require_role(project, caller, needed, action)
    return env, project


def _index(state: State, project_id: uuid.UUID, name: str) -> d.NameIndex | None:
    return state.get(d.name_index_id(project_id, name))


def _after(env: d.Environment | None, events: list[Any]) -> d.Environment:
    return d.project(env, [e for e in events if isinstance(e, d.ENV_EVENTS)])  # type: ignore[return-value]


# -- default environments ----------------------------------------------------------------------


def _seed_events(state: State, project: projects.Project, caller: Caller, now: datetime) -> list[Any]:
    """The default environments of a project made before environments existed, if still due."""
    if state.get(d.seeded_id(project.id)) is not None:
        return []
    indexes = {name: _index(state, project.id, name) for name in c.DEFAULT_ENVIRONMENTS}
    return d.seed(project.id, project.account, caller, None, indexes, iter(new_uuid, None), now)


# -- environments ------------------------------------------------------------------------------


def create_environment(cmd: c.CreateEnvironment, state: State, now: datetime) -> Decision:
    project = accessible(state, cmd.caller, cmd.project_id, "developer", "Creating environments")
    d.require_name_allowed(cmd.caller, cmd.name)
    seeded = _seed_events(state, project, cmd.caller, now)
    if any(isinstance(e, d.EnvironmentCreated) and e.name == cmd.name for e in seeded):
        raise DomainError(
            "environment_name_taken", f"An environment named {cmd.name!r} already exists in this project."
        )
    index = _index(state, project.id, cmd.name)
    # After the defaults made in this same commit (they are a microsecond apart), so that
    # "oldest first" lists them first.
    when = now + timedelta(microseconds=len(c.DEFAULT_ENVIRONMENTS)) if seeded else now
    events = d.create(new_uuid(), project.account, project.id, cmd, index, cmd.caller.actor(), when)
    return [*seeded, *events], views.environment(_after(None, events), state.name)


def _change_settings(
    state: State, cmd: Any, env: d.Environment, after: d.Settings, now: datetime
) -> Decision:
    new_index = old_index = None
    if after.name != env.name:
        new_index = _index(state, env.project_id, after.name)
        old_index = _index(state, env.project_id, env.name)
    events = d.replace(env, cmd.caller, after, cmd.expected_version, new_index, old_index, now)
    return events, views.environment(_after(env, events), state.name)


def replace_environment(cmd: c.ReplaceEnvironment, state: State, now: datetime) -> Decision:
    env, _ = _env(state, cmd.caller, cmd.env_id, "developer", "Changing environment settings")
    after = d.Settings(
        name=cmd.name,
        description=cmd.description,
        branch=cmd.branch,
        auto_deploy=cmd.auto_deploy,
        build=cmd.build,
    )
    return _change_settings(state, cmd, env, after, now)


def update_environment(cmd: c.UpdateEnvironment, state: State, now: datetime) -> Decision:
    env, _ = _env(state, cmd.caller, cmd.env_id, "developer", "Changing environment settings")
    return _change_settings(state, cmd, env, d.patched(env, cmd), now)


def delete_environment(cmd: c.DeleteEnvironment, state: State, now: datetime) -> Decision:
    env, _ = _env(state, cmd.caller, cmd.env_id, "admin", "Deleting an environment")
    index = _index(state, env.project_id, env.name)
    events = d.delete(env, index, cmd.caller.actor(), cmd.expected_version, now)
    return events, views.environment(_after(env, events), state.name)


def get_environment(q: c.GetEnvironment, state: State, now: datetime) -> Decision:
    env, _ = _env(state, q.caller, q.env_id)
    return (), views.environment(env, state.name)


def list_environments(q: c.ListEnvironments, state: State, now: datetime) -> Decision:
    project = accessible(state, q.caller, q.project_id)

    def page() -> c.EnvironmentPage:
        sql, params = read_model.list_sql(q)
        return read_model.page(state.read_model("environments").query(sql, params), q)

    seeded = _seed_events(state, project, q.caller, now)
    # A project from before environments gets its defaults on first sight; the list then shows
    # them, so it is read once they are committed.
    return (seeded, Later(page)) if seeded else ((), page())


# -- deployments -------------------------------------------------------------------------------


def _env_of_project(state: State, caller: Caller, project: projects.Project, ref: str) -> d.Environment:
    """The environment `ref` (an `env_…` id, or a name) of `project` as the caller may see it."""
    if ref.startswith("env_"):
        env = state.get(decode_id("env", ref))
    else:
        index = _index(state, project.id, ref)
        env = state.get(index.env_id) if index is not None else None
    if not d.visible(env, project, caller):  # also: another project's environment
        raise d.not_found(ref)
    return env


def resolve_deploy_target(q: c.ResolveDeployTarget, state: State, now: datetime) -> Decision:
    project = accessible(state, q.caller, q.project_id)
    env = _env_of_project(state, q.caller, project, q.env)
    projects.require_role(project, q.caller, "developer", "Deploying")
    return (), d.deploy_target(env, project, state.name)


def set_serving_deployment(cmd: SetServingDeployment, state: State, now: datetime) -> Decision:
    env_id, project_id = decode_id("env", cmd.env_id), decode_id("prj", cmd.project_id)
    env = state.get(env_id)
    project = state.get(project_id)
    if project_id is None or not isinstance(project, projects.Project) or project.deleted:
        return (), False  # unknown, or gone with its project: nothing to serve
    events = d.deployed(
        env, cmd.account, project_id, cmd.deployment_id, cmd.url, cmd.ready_at, cmd.actor, now
    )
    return events, bool(events)


def get_runtime_variables(
    q: c.GetRuntimeVariables, state: State, now: datetime, *, keyring: crypto.Keyring
) -> Decision:
    env = state.get(decode_id("env", q.env_id))
    project = state.get(env.project_id) if isinstance(env, d.Environment) else None
    if (
        not isinstance(env, d.Environment)
        or env.deleted
        or env.account != q.account
        or not isinstance(project, projects.Project)
        or project.deleted
    ):
        raise d.not_found(q.env_id)
    older = None
    if q.config_version != env.config_version:
        older = read_model.config_version(
            state.read_model("environments"), encode_id("env", env.id), q.config_version
        )
    info = d.version_info(env, q.config_version, older)
    at = env if info.at == env.version else state.at(env.id, info.at)
    items, revealed = _items(state, keyring, at, sorted(at.vars), reveal=True)
    # The values go into a process environment, where nothing redacts them: an audited reveal,
    # committed before they leave.
    events = d.reveal(
        new_uuid(),
        env,
        None,
        q.config_version,
        revealed,
        "deploy",
        now,
        actor=q.actor,
        deployment_id=q.deployment_id,
    )
    return events, {item.key: item.value for item in items}


# -- data keys -----------------------------------------------------------------------------------


def _data_key(state: State, keyring: crypto.Keyring, env: d.Environment) -> crypto.DataKey | None:
    key = state.get(d.data_key_id(env.id))
    if key is None:
        return None
    return crypto.DataKey(env.id, keyring.unwrap(key.id, key.kek_id, key.wrapped))


def _data_key_for_writing(
    state: State, keyring: crypto.Keyring, env: d.Environment, now: datetime
) -> tuple[crypto.DataKey, list[Any]]:
    """The environment's data key, made (and its creation returned for the commit) if it has none."""
    existing = _data_key(state, keyring, env)
    if existing is not None:
        return existing, []
    dek = crypto.new_data_key()
    kek, wrapped = keyring.wrap(d.data_key_id(env.id), dek)
    return crypto.DataKey(env.id, dek), [d.new_data_key(env, kek, wrapped, now)]


# -- variables -----------------------------------------------------------------------------------


def change_vars(cmd: c.ChangeVars, state: State, now: datetime, *, keyring: crypto.Keyring) -> Decision:
    env, _ = _env(state, cmd.caller, cmd.env_id, "developer", "Changing variables")
    key, events = _data_key_for_writing(state, keyring, env, now) if cmd.set else (None, [])
    changes = d.change_vars(env, cmd, key, now)
    if not changes:
        return (), _version(
            state, keyring, env, env.config_version, reveal=False, caller=cmd.caller, now=now
        )[1]
    after = _after(env, changes)
    if (total := _total_bytes(after)) > MAX_TOTAL_BYTES:
        raise DomainError(
            "validation_failed",
            f"An environment's keys and values add up to at most {MAX_TOTAL_BYTES} bytes; "
            f"this change would make {total}.",
            [FieldError(field="vars", message=f"Keys and values would total {total} bytes.")],
        )
    _, version = _version(
        state,
        keyring,
        after,
        after.config_version,
        reveal=False,
        caller=cmd.caller,
        now=now,
        key=key,
        new=True,
    )
    return [*events, *changes], version


def _items(
    state: State,
    keyring: crypto.Keyring,
    env: d.Environment,
    keys: Iterable[str],
    reveal: bool,
    key: crypto.DataKey | None = None,
) -> tuple[list[c.EnvVar], list[str]]:
    """The variables `keys` of `env` as the API shows them, and the secret keys shown."""
    opened: list[crypto.DataKey | None] = [key]

    def open_value(name: str, sealed: bytes) -> str:
        if opened[0] is None:
            opened[0] = _data_key(state, keyring, env)
            if opened[0] is None:
                raise crypto.unavailable("This environment's data key is missing.")
        return opened[0].open(name, sealed)

    items, revealed = [], []
    for name in keys:
        var = env.vars[name]
        hidden = var.secret and not reveal
        if var.secret and reveal:
            revealed.append(name)
        items.append(
            c.EnvVar(
                key=name,
                value=None if hidden else open_value(name, var.sealed),
                secret=var.secret,
                redacted=hidden,
                fingerprint=var.fingerprint,
                updated=var.updated,
            )
        )
    return items, revealed


def _version(
    state: State,
    keyring: crypto.Keyring,
    env: d.Environment,
    number: int,
    *,
    reveal: bool,
    caller: Caller,
    now: datetime,
    via: c.RevealVia = "version",
    key: crypto.DataKey | None = None,
    new: bool = False,
) -> tuple[list[Any], c.ConfigVersion]:
    """Config version `number` as the API shows it, and the reveal record it needs (if any)."""
    older = None
    if number != env.config_version:
        older = read_model.config_version(state.read_model("environments"), encode_id("env", env.id), number)
    info = d.version_info(env, number, older)
    at = env if info.at == env.version else state.at(env.id, info.at)
    items, revealed = _items(state, keyring, at, sorted(at.vars), reveal, key)
    # Recorded in the commit made before the values leave: no reveal without its audit record.
    events = d.reveal(new_uuid(), env, caller, number, revealed, via, now) if revealed else []
    return events, c.ConfigVersion(
        number=number,
        env_id=encode_id("env", env.id),
        project_id=encode_id("prj", env.project_id),
        environment=env.name,
        created=info.created,
        changed=list(info.changed),
        removed=list(info.removed),
        var_count=info.var_count,
        vars=items,
        env_version=env.version,
        current=number == env.config_version,
        new=new,
    )


def list_env_vars(q: c.ListEnvVars, state: State, now: datetime, *, keyring: crypto.Keyring) -> Decision:
    if q.reveal:
        d.require_reveal_scope(q.caller)
    env, _ = _env(state, q.caller, q.env_id, "developer" if q.reveal else None, "Revealing secret values")
    keys = sorted(env.vars)
    if q.cursor:
        after = read_model.decode_key_cursor(q.cursor)
        keys = [k for k in keys if k > after]
    has_more = len(keys) > q.limit
    keys = keys[: q.limit]
    items, revealed = _items(state, keyring, env, keys, q.reveal)
    events = (
        d.reveal(new_uuid(), env, q.caller, env.config_version, revealed, "vars", now) if revealed else []
    )
    return events, c.EnvVarPage(
        data=items,
        has_more=has_more,
        next_cursor=read_model.encode_key_cursor(keys[-1]) if has_more else None,
        config_version=env.config_version,
        env_version=env.version,
    )


def get_config_version(
    q: c.GetConfigVersion, state: State, now: datetime, *, keyring: crypto.Keyring
) -> Decision:
    if q.reveal:
        d.require_reveal_scope(q.caller)
    env, _ = _env(state, q.caller, q.env_id, "developer" if q.reveal else None, "Revealing secret values")
    number = env.config_version if q.number is None else q.number
    return _version(state, keyring, env, number, reveal=q.reveal, caller=q.caller, now=now, via=q.via)


def list_config_versions(q: c.ListConfigVersions, state: State, now: datetime) -> Decision:
    env, _ = _env(state, q.caller, q.env_id)
    env_id, project_id = encode_id("env", env.id), encode_id("prj", env.project_id)
    before = read_model.decode_number_cursor(q.cursor) if q.cursor else env.config_version + 1
    # Paged in SQL (an index seek), so a page costs the same however long the history.
    infos = read_model.config_versions(state.read_model("environments"), env_id, before, q.limit + 1)
    has_more = len(infos) > q.limit
    infos = infos[: q.limit]
    items = [
        c.ConfigVersionSummary(
            number=i.number,
            env_id=env_id,
            project_id=project_id,
            created=i.created,
            changed=list(i.changed),
            removed=list(i.removed),
            var_count=i.var_count,
        )
        for i in infos
    ]
    cursor = read_model.encode_number_cursor(infos[-1].number) if has_more else None
    return (), c.ConfigVersionPage(data=items, has_more=has_more, next_cursor=cursor)


# -- operator commands -----------------------------------------------------------------------


def rewrap_data_keys(
    cmd: c.RewrapDataKeys, state: State, now: datetime, *, keyring: crypto.Keyring
) -> Decision:
    """Every data key of this partition not yet under the current master key, re-wrapped in one
    commit (the kit runs this on each partition and merges the counts)."""
    current = keyring.current_id
    if current is None:
        raise crypto.unavailable("This replica has no master key (STRATUS_MASTER_KEY).")
    if cmd.expected_kek_id is not None and cmd.expected_kek_id != current:
        raise DomainError(
            "master_key_mismatch",
            f"This replica's master key is {current}, not {cmd.expected_kek_id}: restart it with "
            "the new STRATUS_MASTER_KEY (and the old one in STRATUS_MASTER_KEY_PREVIOUS) first.",
        )
    model = state.read_model("environments")
    events: list[Any] = []
    unavailable = 0
    for text in read_model.stale_data_keys(model, current):
        key: d.DataKeyState = state.get(uuid.UUID(text))
        if key is None or key.kek_id == current:
            continue
        if not keyring.holds(key.kek_id):
            unavailable += 1
            continue
        kek, wrapped = keyring.wrap(key.id, keyring.unwrap(key.id, key.kek_id, key.wrapped))
        events += d.rewrap(key, kek, wrapped, now)
    count = c.RewrapCount(
        total=read_model.count_data_keys(model), rewrapped=len(events), unavailable=unavailable
    )
    return events, c.RewrapResult(kek_id=current, modes={state.name: count})


def merge_rewraps(results: dict[str, c.RewrapResult]) -> c.RewrapResult:
    modes = {mode: count for result in results.values() for mode, count in result.modes.items()}
    return c.RewrapResult(kek_id=next(iter(results.values())).kek_id, modes=modes)


def handlers(keyring: crypto.Keyring) -> dict[type, Handler]:
    with_keys = functools.partial
    return {
        c.CreateEnvironment: create_environment,
        c.ReplaceEnvironment: replace_environment,
        c.UpdateEnvironment: update_environment,
        c.DeleteEnvironment: delete_environment,
        c.GetEnvironment: get_environment,
        c.ListEnvironments: list_environments,
        c.ChangeVars: with_keys(change_vars, keyring=keyring),
        c.ListEnvVars: with_keys(list_env_vars, keyring=keyring),
        c.GetConfigVersion: with_keys(get_config_version, keyring=keyring),
        c.ListConfigVersions: list_config_versions,
        c.RewrapDataKeys: with_keys(rewrap_data_keys, keyring=keyring),
        c.ResolveDeployTarget: resolve_deploy_target,
        c.GetRuntimeVariables: with_keys(get_runtime_variables, keyring=keyring),
        SetServingDeployment: set_serving_deployment,
    }
