"""Composition root of the audit service: open each mode's view, start the consumer, wire endpoints.

The view is fed by the durable JetStream consumer `audit`, which replicas would share (each
would see only part of the stream), so the service runs as one replica; its queries are cheap.
"""

from __future__ import annotations

import asyncio
import contextlib

from stratus_audit.consumer import AuditConsumer
from stratus_audit.handlers import AuditHandlers
from stratus_audit.view import AuditView
from stratus_bus import Bus
from stratus_bus.config import data_dir
from stratus_bus.runtime import spawn
from stratus_contracts import audit as c
from stratus_contracts import subjects
from stratus_contracts.events import Mode

MODES: tuple[Mode, ...] = ("live", "test")


def open_views() -> dict[str, AuditView]:
    root = data_dir()
    root.mkdir(parents=True, exist_ok=True)
    return {mode: AuditView(root / f"{c.SERVICE}-{mode}.view.db", mode) for mode in MODES}


async def setup(bus: Bus, stack: contextlib.AsyncExitStack) -> None:
    views = await asyncio.to_thread(open_views)
    for view in views.values():
        stack.callback(view.close)
    consumer = AuditConsumer(bus, views)
    await consumer.ensure()
    spawn(stack, consumer.run(), name="audit-consumer")

    h = AuditHandlers(views, consumer)
    q = subjects.queue_group(c.SERVICE)
    await bus.serve(subjects.query(c.SERVICE, "list"), c.ListAuditEvents, h.list, queue=q)
    await bus.serve(subjects.command(c.SERVICE, "rebuild_view"), c.RebuildView, h.rebuild, queue=q)
