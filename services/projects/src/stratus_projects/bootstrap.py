"""Composition root of the projects service: open each mode's store and view, wire endpoints."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from stratus_bus import Bus
from stratus_bus.config import data_dir, relay_enabled
from stratus_bus.runtime import spawn
from stratus_contracts import projects as c
from stratus_contracts import subjects
from stratus_contracts.events import Mode
from stratus_eventstore.idempotency import AtMostOnce
from stratus_eventstore.model import utcnow
from stratus_eventstore.relay import Relay
from stratus_eventstore.store import open_store
from stratus_eventstore.view import LocalView
from stratus_projects import departures, envs_bootstrap, envs_publish, listing
from stratus_projects.handlers import Partition, ProjectsHandlers
from stratus_projects.publish import publisher

MODES: tuple[Mode, ...] = ("live", "test")


def open_partition(mode: Mode, bus: Bus | None) -> Partition:
    root = data_dir()
    store = open_store(c.SERVICE, mode, root)
    view = LocalView(root / f"{c.SERVICE}-{mode}.view.db", store, listing.SCHEMA, listing.apply)
    listing.ensure_current(view)
    publish = envs_publish.chain(publisher(mode), envs_publish.publisher(mode))
    relay = Relay(store, bus.js, publish) if bus is not None and relay_enabled() else None
    return Partition(mode=mode, store=store, view=view, relay=relay)


async def setup(bus: Bus, stack: contextlib.AsyncExitStack) -> None:
    partitions = {mode: await asyncio.to_thread(open_partition, mode, bus) for mode in MODES}
    for part in partitions.values():
        stack.callback(part.view.close)
        stack.callback(part.store.close)
        await asyncio.to_thread(part.view.catch_up)
        if part.relay is not None:
            spawn(stack, part.relay.run(), name=f"relay-{part.mode}")

    h = ProjectsHandlers(partitions)
    envs = await asyncio.to_thread(envs_bootstrap.open_envs, partitions, h)  # environments, secrets
    stack.callback(envs_bootstrap.close_envs, envs)
    q = subjects.queue_group(c.SERVICE)
    for subject, message_type, handler in [*endpoints(h), *envs_bootstrap.endpoints(envs)]:
        await bus.serve(subject, message_type, handler, queue=q)
    await departures.follow(bus, h, stack)  # members removed from the account leave their teams


def endpoints(
    h: ProjectsHandlers, *, clock: Callable[[], datetime] = utcnow
) -> list[tuple[str, type, Callable[[Any], Awaitable[Any]]]]:
    """Every subject the service answers. API commands apply at most once per Idempotency-Key."""
    once = AtMostOnce(lambda cmd: h.partitions[cmd.caller.mode].store, clock=clock)

    def command(verb: str, message_type: type, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        subject = subjects.command(c.SERVICE, verb)
        return subject, message_type, once.wrap(subject, handler)

    def query(name: str, message_type: type, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        return subjects.query(c.SERVICE, name), message_type, handler

    return [
        command("create", c.CreateProject, h.create),
        command("update", c.UpdateProject, h.update),
        command("delete", c.DeleteProject, h.delete),
        command("put_member", c.PutProjectMember, h.put_member),
        command("remove_member", c.RemoveProjectMember, h.remove_member),
        (subjects.command(c.SERVICE, "rebuild_view"), c.RebuildView, h.rebuild),  # operator's
        query("get", c.GetProject, h.get),
        query("list", c.ListProjects, h.list),
        query("get_member", c.GetProjectMember, h.get_member),
        query("list_members", c.ListProjectMembers, h.list_members),
    ]
