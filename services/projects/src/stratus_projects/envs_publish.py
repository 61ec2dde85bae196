"""Which environment events become public events, and what they say (never a value).

`env.created`, `env.updated` (with `changed`: the settings that changed) and `env.deleted` carry
the environment as it was right after the event; `env.vars.changed` carries the environment and
project ids, the new config version and the *names* of the keys set and removed; and
`secret.revealed` the names of the revealed keys, the config version and the route kind (`via`).
Data keys, name claims and the seeding marker are internal.
"""

from __future__ import annotations

from typing import Any

import msgspec

from stratus_contracts import subjects
from stratus_contracts.envs import Environment
from stratus_contracts.events import Event, Mode
from stratus_contracts.ids import encode_id
from stratus_eventstore.model import DomainEvent, event_uuid
from stratus_eventstore.relay import Publisher
from stratus_eventstore.store import Store
from stratus_projects import envs_domain as d

# domain event -> (aggregate token in the subject, event token in the subject, public type)
_TYPES: dict[type, tuple[str, str, str]] = {
    d.EnvironmentCreated: ("env", "created", "env.created"),
    d.EnvironmentReplaced: ("env", "updated", "env.updated"),
    d.EnvironmentDeleted: ("env", "deleted", "env.deleted"),
    d.EnvVarsChanged: ("env", "vars_changed", "env.vars.changed"),
    d.SecretRevealed: ("secret", "revealed", "secret.revealed"),
}


def to_view(state: d.Environment, mode: Mode) -> Environment:
    return Environment(
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
    )


def _data(store: Store, event: DomainEvent, mode: Mode) -> tuple[str, dict[str, Any]]:
    if isinstance(event, d.SecretRevealed):
        return event.account, {
            "environment_id": encode_id("env", event.env_id),
            "project_id": encode_id("prj", event.project_id),
            "environment": event.environment,
            "config_version": event.config_version,
            "keys": list(event.keys),
            "via": event.via,
        }
    state: d.Environment = store.repository.get(
        event.originator_id, version=event.originator_version, projector_func=d.project
    )
    if isinstance(event, d.EnvVarsChanged):
        return state.account, {
            "environment_id": encode_id("env", state.id),
            "project_id": encode_id("prj", state.project_id),
            "environment": state.name,
            "version": event.config_version,
            "changed": sorted(event.set),
            "removed": list(event.removed),
        }
    data = msgspec.to_builtins(to_view(state, mode))
    if isinstance(event, d.EnvironmentReplaced):
        data["changed"] = list(event.changed)
    return state.account, data


def publisher(mode: Mode) -> Publisher:
    def to_public(store: Store, event: DomainEvent) -> tuple[str, Event] | None:
        kind = _TYPES.get(type(event))
        if kind is None:
            return None
        aggregate, name, event_type = kind
        account, data = _data(store, event, mode)
        public = Event(
            id=encode_id("evt", event_uuid(event.originator_id, event.originator_version)),
            type=event_type,
            created=event.timestamp,
            mode=mode,
            account=account,
            data=data,
            actor=getattr(event, "actor", None),
        )
        return subjects.event(mode, account, aggregate, name), public

    return to_public


def chain(*publishers: Publisher) -> Publisher:
    """One publisher for a store shared by several aggregate families: the first that knows an
    event publishes it."""

    def to_public(store: Store, event: object) -> tuple[str, Event] | None:
        for publish in publishers:
            if (public := publish(store, event)) is not None:
                return public
        return None

    return to_public
