"""Query and command handlers of the audit service; SQLite calls run in a worker thread."""

from __future__ import annotations

import asyncio
import os

from stratus_audit.consumer import AuditConsumer
from stratus_audit.view import AuditView
from stratus_contracts.audit import AuditPage, ListAuditEvents, RebuildResult, RebuildView


def rebuild_timeout() -> float:
    return float(os.environ.get("STRATUS_REBUILD_TIMEOUT", "300"))


class AuditHandlers:
    def __init__(self, views: dict[str, AuditView], consumer: AuditConsumer) -> None:
        self.views = views
        self.consumer = consumer

    def list_sync(self, q: ListAuditEvents) -> AuditPage:
        # Each mode has its own file: a caller only ever reads its own mode's view.
        return self.views[q.caller.mode].list(q)

    async def list(self, q: ListAuditEvents) -> AuditPage:
        return await asyncio.to_thread(self.list_sync, q)

    async def rebuild(self, _: RebuildView) -> RebuildResult:
        return RebuildResult(modes=await self.consumer.rebuild(rebuild_timeout()))
