"""Audit handlers: the audit-log and event-feed queries read the caller's mode's read model (a
worker thread runs them); the rebuild waits on the stream, so it runs on the event loop. A
rebuild reaches one replica (queue group); it tells the others (`REBUILD_PEERS_SUBJECT`), so
every replica's own files are rebuilt, and answers with its own counts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from datetime import datetime

from nats.aio.msg import Msg

from stratus_audit.consumers import AuditConsumer
from stratus_bus import Bus
from stratus_contracts import audit as c
from stratus_contracts.reply import RebuildResult
from stratus_kit import Decision, Handler, Local, State

log = logging.getLogger("stratus.audit")


def rebuild_timeout() -> float:
    return float(os.environ.get("STRATUS_REBUILD_TIMEOUT", "300"))


def list_audit_events(q: c.ListAuditEvents, state: State, now: datetime) -> Decision:
    # Each mode has its own file: a caller only ever reads its own mode's read model.
    return (), state.read_model("audit").list(q)


def list_events(q: c.ListEvents, state: State, now: datetime) -> Decision:
    return (), state.read_model("audit").events(q)


def get_event(q: c.GetEvent, state: State, now: datetime) -> Decision:
    return (), state.read_model("audit").event(q)


def _consumer(local: Local) -> AuditConsumer:
    [consumer] = [made for made in local.consumers.values() if isinstance(made, AuditConsumer)]
    return consumer


async def rebuild(cmd: c.RebuildReadModels, local: Local) -> RebuildResult:
    consumer = _consumer(local)
    assert local.bus is not None
    await local.bus.nc.publish(c.REBUILD_PEERS_SUBJECT, consumer.durable.encode())
    return RebuildResult(modes=await consumer.rebuild(rebuild_timeout()))


async def follow_peer_rebuilds(bus: Bus, local: Local) -> None:
    """Rebuild this replica's files when another replica was asked to rebuild its own."""
    consumer = _consumer(local)

    async def on_rebuild(msg: Msg) -> None:
        if msg.data == consumer.durable.encode():
            return  # our own request, already under way
        try:
            modes = await consumer.rebuild(rebuild_timeout())
        except Exception:
            log.exception("rebuild passed on by another replica failed", extra={"consumer": consumer.durable})
            return
        log.info(
            "rebuilt as another replica was asked to", extra={"consumer": consumer.durable, "modes": modes}
        )

    sub = await bus.nc.subscribe(c.REBUILD_PEERS_SUBJECT, cb=on_rebuild)
    try:
        await asyncio.Event().wait()
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


HANDLERS: dict[type, Handler] = {
    c.ListAuditEvents: list_audit_events,
    c.ListEvents: list_events,
    c.GetEvent: get_event,
}
