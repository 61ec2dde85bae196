"""The audit service as the kit runs it: one stream-fed read model per mode (no event store),
the durable consumer that feeds them, the list query and the rebuild.

The read models are fed by the durable JetStream consumer `audit`, which replicas would share
(each would see only part of the stream), so the service runs as one replica; its queries are
cheap.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from stratus_audit import consumers, handlers
from stratus_audit.read_model import AuditReadModel, path_for
from stratus_contracts import audit as c
from stratus_kit import Local, Service


def read_models(mode: str, data_dir: Path) -> dict[str, AuditReadModel]:
    return {"audit": AuditReadModel(path_for(data_dir, mode), mode)}  # type: ignore[arg-type]


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
    rebuild=c.RebuildReadModels,
    on_sandbox_reset=reset_sandbox,
)
