"""Audit handlers: the list query reads the caller's mode's read model (a worker thread runs it);
the rebuild waits on the stream, so it runs on the event loop."""

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


async def rebuild(cmd: c.RebuildReadModels, local: Local) -> RebuildResult:
    consumer = local.consumers[c.CONSUMER]
    assert isinstance(consumer, AuditConsumer)
    return RebuildResult(modes=await consumer.rebuild(rebuild_timeout()))


HANDLERS: dict[type, Handler] = {c.ListAuditEvents: list_audit_events}
