"""Environments and their variables (served by the projects service): commands, queries, replies
and public events.

A project owns its environments (`env_…`); an environment owns a versioned map of variables.
Every change to the map makes a new numbered config version (version 1 is the empty map the
environment starts with). Values cross the bus in plaintext only inside commands and revealed
replies; secret values are otherwise `redacted` (value null) and identified by a keyed
`fingerprint`.

An environment may override any of its project's build settings (`build`), and shows where it is
served (`url`) and by which deployment (`deployment_id`) once one succeeded. Two queries serve
the deployments service: `ResolveDeployTarget` (access checks and the effective settings for a
new deployment) and `GetRuntimeVariables` (a config version's decrypted values for the app's
process, audited as a reveal).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from stratus_contracts.auth import Caller
from stratus_contracts.deployments import BuildSettings, DeployTarget
from stratus_contracts.events import Actor, Mode, event_type
from stratus_contracts.projects import SERVICE as SERVICE  # environments live in projects
from stratus_contracts.projects import ProjectsCommand, ProjectsQuery

# Environments every project starts with, in this order.
DEFAULT_ENVIRONMENTS: tuple[str, ...] = ("production", "staging")
# Names follow project names: a DNS label (lowercase letters, digits, hyphens).
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
NAME_MAX = 63
KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
KEY_MAX = 256
VALUE_MAX_BYTES = 64 * 1024  # UTF-8 bytes of one value
MAX_VARS = 500  # variables per environment
BRANCH_MAX = 255
DESCRIPTION_MAX = 1000

_KEY = re.compile(KEY_PATTERN)

# How a reveal reached the values (recorded on `secret.revealed`): a route's, or `deploy` for a
# deployment's runner (`GetRuntimeVariables`).
RevealVia = Literal["vars", "version", "dotenv", "deploy"]


def key_problem(key: str) -> str | None:
    """Why `key` is not a valid variable name, or None when it is."""
    if not key or len(key) > KEY_MAX:
        return f"Keys are 1–{KEY_MAX} characters long."
    if not _KEY.match(key):
        return "Keys start with a letter or `_` and contain only letters, digits and `_`."
    return None


def value_problem(value: str) -> str | None:
    """Why `value` is not a valid variable value, or None when it is."""
    if len(value) > VALUE_MAX_BYTES or len(value.encode("utf-8", "surrogatepass")) > VALUE_MAX_BYTES:
        return f"Values are at most {VALUE_MAX_BYTES} bytes (UTF-8)."
    return None


# --- replies -----------------------------------------------------------------------------------


class Environment(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["environment"] = "environment"
    project_id: str
    name: str
    description: str
    branch: str | None  # the git branch this environment deploys from, if any
    auto_deploy: bool  # deploy on every push to `branch` (used once deployments exist)
    config_version: int  # the current config version of its variables
    mode: Mode
    created: datetime
    updated: datetime
    version: int  # the environment's own version (its ETag): settings and variable changes
    deleted: bool = False
    # Overrides of the project's build settings (only those the environment sets).
    build: BuildSettings = msgspec.field(default_factory=BuildSettings)
    url: str | None = None  # where the environment is served: null until a deployment succeeds
    deployment_id: str | None = None  # the deployment (`dep_…`) serving it


class EnvironmentUpdate(Environment, frozen=True, kw_only=True):
    """`env.updated`: the environment after a change, and what changed (`name`, …,
    `build.repo_url`, …, and `url`/`deployment_id` when a deployment serves it)."""

    changed: list[str]


class EnvironmentPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Environment]
    has_more: bool
    next_cursor: str | None = None


class EnvVar(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["env_var"] = "env_var"
    key: str
    value: str | None  # null when redacted
    secret: bool
    redacted: bool  # true: a secret whose value this response does not show
    fingerprint: str  # keyed HMAC-SHA256 of the value: equal values, equal fingerprints (per env)
    updated: datetime


class EnvVarPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[EnvVar]
    has_more: bool
    next_cursor: str | None = None
    config_version: int
    env_version: int  # the environment's version (ETag)


class ConfigVersionSummary(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["config_version"] = "config_version"
    number: int
    env_id: str
    project_id: str
    created: datetime
    changed: list[str]  # keys set by this version (names only)
    removed: list[str]  # keys deleted by this version
    var_count: int


class ConfigVersion(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["config_version"] = "config_version"
    number: int
    env_id: str
    project_id: str
    environment: str  # the environment's name now
    created: datetime
    changed: list[str]
    removed: list[str]
    var_count: int
    vars: list[EnvVar]  # the whole map at this version, by key
    env_version: int  # the environment's version now (ETag)
    current: bool  # whether this is the environment's current config version
    new: bool = False  # set on a change's reply: this version was made by that change


class ConfigVersionPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[ConfigVersionSummary]
    has_more: bool
    next_cursor: str | None = None


class RewrapCount(msgspec.Struct, frozen=True, kw_only=True):
    total: int  # data keys in this mode
    rewrapped: int  # re-wrapped by this command
    unavailable: int  # wrapped by a master key this replica does not hold (not re-wrapped)


class RewrapResult(msgspec.Struct, frozen=True, kw_only=True):
    kek_id: str  # the master key every data key is now wrapped with (unless `unavailable`)
    modes: dict[str, RewrapCount]


# --- environments ------------------------------------------------------------------------------


class CreateEnvironment(ProjectsCommand[Environment], frozen=True, kw_only=True):
    caller: Caller
    project_id: str
    name: str
    description: str = ""
    branch: str | None = None
    auto_deploy: bool = False
    build: BuildSettings = msgspec.field(default_factory=BuildSettings)  # overrides


class ReplaceEnvironment(ProjectsCommand[Environment], frozen=True, kw_only=True):
    """PUT: the environment's settings become exactly these (an override left out is dropped)."""

    caller: Caller
    env_id: str
    name: str
    description: str = ""
    branch: str | None = None
    auto_deploy: bool = False
    build: BuildSettings = msgspec.field(default_factory=BuildSettings)  # overrides
    expected_version: int | None = None  # If-Match: apply only at this version, else 412


class UpdateEnvironment(ProjectsCommand[Environment], frozen=True, kw_only=True):
    """PATCH: change only the settings given. None keeps `name`, `description`, `auto_deploy`;
    for `branch` and the build overrides UNSET keeps and None clears (back to the project's)."""

    caller: Caller
    env_id: str
    name: str | None = None
    description: str | None = None
    branch: str | UnsetType | None = UNSET
    auto_deploy: bool | None = None
    repo_url: str | UnsetType | None = UNSET
    build_command: str | UnsetType | None = UNSET
    start_command: str | UnsetType | None = UNSET
    health_check_path: str | UnsetType | None = UNSET
    expected_version: int | None = None  # If-Match: apply only at this version, else 412


class DeleteEnvironment(ProjectsCommand[Environment], frozen=True, kw_only=True):
    caller: Caller
    env_id: str
    expected_version: int | None = None  # If-Match: apply only at this version, else 412


class GetEnvironment(ProjectsQuery[Environment], frozen=True, kw_only=True):
    caller: Caller
    env_id: str


class ListEnvironments(ProjectsQuery[EnvironmentPage], frozen=True, kw_only=True):
    """A project's environments, oldest first (production and staging lead)."""

    caller: Caller
    project_id: str
    limit: int = 20
    cursor: str | None = None


# --- for deployments -----------------------------------------------------------------------


class ResolveDeployTarget(ProjectsQuery[DeployTarget], frozen=True, kw_only=True):
    """What a new deployment of `env` (a name in the project, or an `env_…` id) builds and runs:
    the environment, its current config version, and each build setting from the environment's
    override, else the project's, else the default (`build_command` "", `health_check_path` "/").
    Access as for everything else (404 `project_not_found` / `environment_not_found`, the
    `developer` role for member-bound keys); no effective `repo_url` or `start_command` is 422
    `deploy_settings_missing`."""

    caller: Caller
    project_id: str
    env: str


class GetRuntimeVariables(ProjectsQuery[dict[str, str]], frozen=True, kw_only=True):
    """Internal (bus only, no caller): config version `config_version` of the environment as a
    decrypted `{key: value}` map, for the deployments runner to put into the app's process
    environment. The environment must be in `account` and `mode` (else 404). Revealing secret
    values is recorded first (`secret.revealed` via `deploy`, with the deployment's id and
    `actor`, who asked for the deployment)."""

    account: str
    mode: Mode
    env_id: str
    config_version: int
    deployment_id: str
    actor: Actor | None = None


# --- variables and config versions ---------------------------------------------------------


class VarChange(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    value: str
    # None: keep the variable's current flag (a new variable is then not secret).
    secret: bool | None = None


class ChangeVars(ProjectsCommand[ConfigVersion], frozen=True, kw_only=True):
    """Set and remove variables in one new config version (nothing changes: no new version).

    `remove` names keys to delete (a missing one is 404 `env_var_not_found` unless
    `missing_ok`); `prune` also deletes every key neither set nor listed in `keep`."""

    caller: Caller
    env_id: str
    set: list[VarChange] = []
    remove: list[str] = []
    missing_ok: bool = False
    prune: bool = False
    keep: list[str] = []
    expected_version: int | None = None  # If-Match on the environment's version, else 412


class ListEnvVars(ProjectsQuery[EnvVarPage], frozen=True, kw_only=True):
    """The current variables, by key. `reveal` (admin scope) shows secret values and records
    `secret.revealed` before answering."""

    caller: Caller
    env_id: str
    limit: int = 20
    cursor: str | None = None
    reveal: bool = False


class GetConfigVersion(ProjectsQuery[ConfigVersion], frozen=True, kw_only=True):
    """One config version with every variable; `number` None: the current one."""

    caller: Caller
    env_id: str
    number: int | None = None
    reveal: bool = False
    via: RevealVia = "version"


class ListConfigVersions(ProjectsQuery[ConfigVersionPage], frozen=True, kw_only=True):
    caller: Caller
    env_id: str
    limit: int = 20
    cursor: str | None = None


# --- master key rotation (operator command: no caller) -------------------------------------


class RewrapDataKeys(ProjectsCommand[RewrapResult], frozen=True, kw_only=True):
    """Re-wrap every data key under the service's current master key (`stratus secrets
    rotate-master-key`). With `expected_kek_id`, a replica whose current master key has another
    id refuses (409 `master_key_mismatch`), so a rotation never runs on a replica that was not
    restarted with the new key yet."""

    expected_kek_id: str | None = None


# --- public events -----------------------------------------------------------------------------


class EnvVarsChange(msgspec.Struct, frozen=True, kw_only=True):
    """`env.vars.changed`: which keys a new config version set and removed (never a value)."""

    environment_id: str
    project_id: str
    environment: str  # the environment's name
    version: int  # the config version the change made
    changed: list[str]
    removed: list[str]


class SecretReveal(msgspec.Struct, frozen=True, kw_only=True):
    """`secret.revealed`: secret values were shown to a caller; the names of the keys shown."""

    environment_id: str
    project_id: str
    environment: str
    config_version: int
    keys: list[str]
    via: RevealVia
    deployment_id: str | None = None  # via `deploy`: the deployment whose app got the values


ENV_CREATED = event_type("env.created", Environment, "An environment was created.")
ENV_UPDATED = event_type(
    "env.updated",
    EnvironmentUpdate,
    "An environment's settings, or the deployment serving it, changed (`changed` names them).",
)
ENV_DELETED = event_type("env.deleted", Environment, "An environment was deleted (its final state).")
ENV_VARS_CHANGED = event_type(
    "env.vars.changed", EnvVarsChange, "A new config version of an environment's variables was made."
)
SECRET_REVEALED = event_type(
    "secret.revealed", SecretReveal, "Secret values of an environment were shown to a caller."
)
