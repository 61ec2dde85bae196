"""The projects service as the kit runs it: one partition per mode holding projects and their
environments, their read models and publishers, and the table of message type → handler."""

from __future__ import annotations

import logging
from typing import Any

from stratus_contracts import envs
from stratus_contracts import projects as c
from stratus_kit import Handler, Service, chain
from stratus_projects import consumers, domain, handlers, read_model, views
from stratus_projects.environments import crypto
from stratus_projects.environments import domain as env_domain
from stratus_projects.environments import handlers as env_handlers
from stratus_projects.environments import read_model as env_read_model
from stratus_projects.environments import views as env_views

log = logging.getLogger("stratus.projects")


def dependencies() -> dict[str, Any]:
    keyring = crypto.Keyring.from_env()  # a malformed key stops the service here
    if keyring.current is None:
        log.warning("STRATUS_MASTER_KEY is not set: environment variables can be neither read nor written")
    return {"keyring": keyring}


def table(keyring: crypto.Keyring) -> dict[type, Handler]:
    return {**handlers.HANDLERS, **env_handlers.handlers(keyring)}


SERVICE = Service(
    name=c.SERVICE,
    handlers=table,
    dependencies=dependencies,
    mutates=(domain.mutate, env_domain.mutate),
    read_models=(read_model.READ_MODEL, env_read_model.READ_MODEL),
    publisher=chain(views.PUBLISHER, env_views.PUBLISHER),
    fanout={envs.RewrapDataKeys: env_handlers.merge_rewraps},
    rebuild=c.RebuildReadModels,
    consumers=(consumers.departures, consumers.deployment_urls),
)
