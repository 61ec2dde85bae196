"""The metrics service as the kit runs it: no event store, a view of the one ClickHouse store per
mode, the durable consumers that feed it (`metrics` on TELEMETRY, `metrics-builds` on EVENTS),
the queries, and the retention task.

The consumers are durable JetStream consumers that replicas would share, and chDB is one engine
per process; with the embedded default the service runs as one replica (against a ClickHouse
server, replicas could share the consumers: the redelivery check and ReplacingMergeTree make a
shared insert safe).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from stratus_contracts import metrics as c
from stratus_kit import Local, Service
from stratus_metrics import consumers, handlers
from stratus_metrics.store import MetricsStore

_opened: dict[str, MetricsStore] = {}
_lock = threading.Lock()


def store() -> MetricsStore:
    """The process's store, opened (and its schema migrated) on first use."""
    with _lock:
        current = _opened.get("store")
        if current is None or current.closed:
            current = _opened["store"] = MetricsStore()
            current.migrate()
        return current


def views(mode: str, data_dir: Path) -> dict[str, handlers.ModeView]:
    return {"metrics": handlers.ModeView(store(), mode)}


async def reset_sandbox(local: Local) -> None:
    """The sandbox reset: every test-mode partition of every table is dropped."""
    await asyncio.to_thread(store().drop_mode, "test")


SERVICE = Service(
    name=c.SERVICE,
    handlers=lambda: handlers.HANDLERS,
    stream_fed=views,
    consumers=(consumers.telemetry_consumer, consumers.builds_consumer),
    tasks=(consumers.retention,),
    on_sandbox_reset=reset_sandbox,
)
