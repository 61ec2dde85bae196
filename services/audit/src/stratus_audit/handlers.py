"""Audit handlers: the audit-log and event-feed queries read the caller's mode's read model (a
worker thread runs them); the rebuild waits on the stream, so it runs on the event loop."""

from __future__ import annotations

import os
from datetime import datetime

from stratus_audit.consumers import AuditConsumer
from stratus_contracts import audit as c
from stratus_contracts.reply import RebuildResult
from stratus_kit import Decision, Handler, Local, State


def rebuild_timeout() -> float:
    return float(os.environ.get("STRATUS_REBUILD_TIMEOUT", "300"))


def list_audit_events(q: c.ListAuditEvents, state: State, now: datetime) -> Decision:
    # Each mode has its own file: a caller only ever reads its own mode's read model.
    return (), state.read_model("audit").list(q)


def list_events(q: c.ListEvents, state: State, now: datetime) -> Decision:
    return (), state.read_model("audit").events(q)


def get_event(q: c.GetEvent, state: State, now: datetime) -> Decision:
    return (), state.read_model("audit").event(q)


async def rebuild(cmd: c.RebuildReadModels, local: Local) -> RebuildResult:
    consumer = local.consumers[c.CONSUMER]
    assert isinstance(consumer, AuditConsumer)
    return RebuildResult(modes=await consumer.rebuild(rebuild_timeout()))


HANDLERS: dict[type, Handler] = {
    c.ListAuditEvents: list_audit_events,
    c.ListEvents: list_events,
    c.GetEvent: get_event,
}
