"""Wiring of environments into the projects service: their views, keyring, hooks and endpoints.

Called from `bootstrap.setup`; kept apart so the projects composition root stays short.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from stratus_bus.config import data_dir
from stratus_contracts import envs as c
from stratus_contracts import subjects
from stratus_eventstore.idempotency import AtMostOnce
from stratus_eventstore.view import LocalView
from stratus_projects import crypto, envs_listing
from stratus_projects.envs_handlers import EnvsHandlers
from stratus_projects.handlers import Partition, ProjectsHandlers

log = logging.getLogger("stratus.projects.envs")
Endpoint = tuple[str, type, Callable[[Any], Awaitable[Any]]]


def open_view(part: Partition) -> LocalView:
    """The environment list and data-key index of one mode (its own SQLite file)."""
    path = data_dir() / f"{c.SERVICE}-{part.mode}.envs.view.db"
    view = LocalView(path, part.store, envs_listing.SCHEMA, envs_listing.apply)
    envs_listing.ensure_current(view)
    return view


def open_envs(
    partitions: dict[str, Partition], projects: ProjectsHandlers, keyring: crypto.Keyring | None = None
) -> EnvsHandlers:
    """Environment handlers over the projects partitions, hooked into project creation (default
    environments in the project's own save) and `rebuild_view`. Close with `close_envs`."""
    keyring = crypto.Keyring.from_env() if keyring is None else keyring
    if keyring.current is None:
        log.warning("STRATUS_MASTER_KEY is not set: environment variables can be neither read nor written")
    views = {mode: open_view(part) for mode, part in partitions.items()}
    envs = EnvsHandlers(partitions, views, keyring)
    projects.on_create.append(envs.seed_new_project)
    projects.on_rebuild.append(envs.rebuild_sync)
    return envs


def close_envs(envs: EnvsHandlers) -> None:
    for view in envs.views.values():
        with contextlib.suppress(Exception):
            view.close()


def endpoints(e: EnvsHandlers) -> list[Endpoint]:
    """Every environment subject. API commands apply at most once per Idempotency-Key."""
    once = AtMostOnce(lambda cmd: e.partitions[cmd.caller.mode].store)

    def command(verb: str, message_type: type, handler: Callable[[Any], Awaitable[Any]]) -> Endpoint:
        subject = subjects.command(c.SERVICE, verb)
        return subject, message_type, once.wrap(subject, handler)

    def query(name: str, message_type: type, handler: Callable[[Any], Awaitable[Any]]) -> Endpoint:
        return subjects.query(c.SERVICE, name), message_type, handler

    return [
        command("create_env", c.CreateEnvironment, e.create),
        command("replace_env", c.ReplaceEnvironment, e.replace),
        command("delete_env", c.DeleteEnvironment, e.delete),
        command("change_env_vars", c.ChangeVars, e.change_vars),
        (subjects.command(c.SERVICE, "rewrap_data_keys"), c.RewrapDataKeys, e.rewrap),  # operator's
        query("get_env", c.GetEnvironment, e.get),
        query("list_envs", c.ListEnvironments, e.list),
        query("list_env_vars", c.ListEnvVars, e.list_vars),
        query("get_env_version", c.GetConfigVersion, e.get_version),
        query("list_env_versions", c.ListConfigVersions, e.list_versions),
    ]
