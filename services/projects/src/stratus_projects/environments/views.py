"""What the projects service shows of environments: the reply mapping (aggregate → reply Struct)
and which environment events become public events (never a value).

`env.created`, `env.updated` (with `changed`: the settings that changed, or `url` and
`deployment_id` when another deployment serves it) and `env.deleted` carry the environment as it
was right after the event; `env.vars.changed` carries the environment and
project ids, the new config version and the *names* of the keys set and removed; and
`secret.revealed` the names of the revealed keys, the config version and the route kind (`via`).
Data keys, name claims and the seeding marker are internal.
"""

from __future__ import annotations

from typing import Any

import msgspec

from stratus_contracts import envs as c
from stratus_contracts.events import Mode
from stratus_contracts.ids import encode_id
from stratus_kit import Publisher
from stratus_projects.environments import domain as d


def environment(state: d.Environment, mode: Mode) -> c.Environment:
    return c.Environment(
        id=encode_id("env", state.id),
        project_id=encode_id("prj", state.project_id),
        name=state.name,
        description=state.description,
        branch=state.branch,
        auto_deploy=state.auto_deploy,
        config_version=state.config_version,
        mode=mode,
        created=state.created,
        updated=state.updated,
        version=state.version,
        deleted=state.deleted,
        build=state.build,
        url=state.url,
        deployment_id=state.deployment_id,
    )


def _environment(
    event: Any, before: Any, after: d.Environment, mode: Mode
) -> tuple[Mode, str, c.Environment]:
    return mode, after.account, environment(after, mode)


def _replaced(
    event: d.EnvironmentReplaced | d.EnvironmentDeployed, before: Any, after: d.Environment, mode: Mode
) -> tuple[Mode, str, c.EnvironmentUpdate]:
    shown = msgspec.structs.asdict(environment(after, mode))
    return mode, after.account, c.EnvironmentUpdate(**shown, changed=list(event.changed))


def _vars_changed(
    event: d.EnvVarsChanged, before: Any, after: d.Environment, mode: Mode
) -> tuple[Mode, str, c.EnvVarsChange]:
    return (
        mode,
        after.account,
        c.EnvVarsChange(
            environment_id=encode_id("env", after.id),
            project_id=encode_id("prj", after.project_id),
            environment=after.name,
            version=event.config_version,
            changed=sorted(event.set),
            removed=list(event.removed),
        ),
    )


def _revealed(
    event: d.SecretRevealed, before: Any, after: Any, mode: Mode
) -> tuple[Mode, str, c.SecretReveal]:
    return (
        mode,
        event.account,
        c.SecretReveal(
            environment_id=encode_id("env", event.env_id),
            project_id=encode_id("prj", event.project_id),
            environment=event.environment,
            config_version=event.config_version,
            keys=list(event.keys),
            via=event.via,
            deployment_id=event.deployment_id,
        ),
    )


PUBLISHER = Publisher(
    {
        d.EnvironmentCreated: (c.ENV_CREATED, _environment),
        d.EnvironmentReplaced: (c.ENV_UPDATED, _replaced),
        d.EnvironmentDeployed: (c.ENV_UPDATED, _replaced),
        d.EnvironmentDeleted: (c.ENV_DELETED, _environment),
        d.EnvVarsChanged: (c.ENV_VARS_CHANGED, _vars_changed),
        d.SecretRevealed: (c.SECRET_REVEALED, _revealed),
    }
)
