"""The audit service as the kit runs it: one stream-fed read model per mode (no event store),
the durable consumer that feeds them, the list query and the rebuild.

Each replica keeps its own read-model files and its own durable consumer (`audit`, `audit-2`,
… from `STRATUS_REPLICA_ID`) and reads the whole `EVENTS` stream into them, so replicas need
not share a disk (on Kubernetes each has its volume). A replica answers no query before it has
caught up with the stream as it was when it started; a rebuild asked of one replica is passed
to the others.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from stratus_audit import consumers, handlers
from stratus_audit.read_model import AuditReadModel, path_for
from stratus_bus.config import replica_id
from stratus_contracts import audit as c
from stratus_kit import Local, Service


def read_models(mode: str, data_dir: Path) -> dict[str, AuditReadModel]:
    return {"audit": AuditReadModel(path_for(data_dir, mode, replica_id()), mode)}  # type: ignore[arg-type]


async def reset_sandbox(local: Local) -> None:
    """The sandbox reset: the test mode's audit log and event feed are emptied."""
    model = local.partitions["test"].read_models["audit"]
    await asyncio.to_thread(model.clear)


SERVICE = Service(
    name=c.SERVICE,
    handlers=lambda: handlers.HANDLERS,
    stream_fed=read_models,
    consumers=(consumers.audit_consumer,),
    on_loop={c.RebuildReadModels: handlers.rebuild},
    tasks=(handlers.follow_peer_rebuilds,),
    rebuild=c.RebuildReadModels,
    on_sandbox_reset=reset_sandbox,
)
