"""Composition root of the projects service: open each mode's store and view, wire endpoints."""

from __future__ import annotations

import asyncio
import contextlib

from stratus_bus import Bus
from stratus_bus.config import data_dir, relay_enabled
from stratus_bus.runtime import spawn
from stratus_contracts import projects as c
from stratus_contracts import subjects
from stratus_contracts.events import Mode
from stratus_eventstore.relay import Relay
from stratus_eventstore.store import open_store
from stratus_eventstore.view import LocalView
from stratus_projects import listing
from stratus_projects.handlers import Partition, ProjectsHandlers
from stratus_projects.publish import publisher

MODES: tuple[Mode, ...] = ("live", "test")


def open_partition(mode: Mode, bus: Bus | None) -> Partition:
    root = data_dir()
    store = open_store(c.SERVICE, mode, root)
    view = LocalView(root / f"{c.SERVICE}-{mode}.view.db", store, listing.SCHEMA, listing.apply)
    listing.ensure_current(view)
    relay = Relay(store, bus.js, publisher(mode)) if bus is not None and relay_enabled() else None
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
    q = subjects.queue_group(c.SERVICE)
    await bus.serve(subjects.command(c.SERVICE, "create"), c.CreateProject, h.create, queue=q)
    await bus.serve(subjects.command(c.SERVICE, "update"), c.UpdateProject, h.update, queue=q)
    await bus.serve(subjects.command(c.SERVICE, "delete"), c.DeleteProject, h.delete, queue=q)
    await bus.serve(subjects.command(c.SERVICE, "rebuild_view"), c.RebuildView, h.rebuild, queue=q)
    await bus.serve(subjects.query(c.SERVICE, "get"), c.GetProject, h.get, queue=q)
    await bus.serve(subjects.query(c.SERVICE, "list"), c.ListProjects, h.list, queue=q)
    await bus.serve(subjects.command(c.SERVICE, "put_member"), c.PutProjectMember, h.put_member, queue=q)
    await bus.serve(
        subjects.command(c.SERVICE, "remove_member"), c.RemoveProjectMember, h.remove_member, queue=q
    )
    await bus.serve(subjects.query(c.SERVICE, "get_member"), c.GetProjectMember, h.get_member, queue=q)
    await bus.serve(subjects.query(c.SERVICE, "list_members"), c.ListProjectMembers, h.list_members, queue=q)
