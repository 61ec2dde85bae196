"""The deployments service as the kit runs it: one partition per mode holding deployments, the
slots of the environments they serve and their logs; the read model; the publisher; the table
of message type → handler; and the orchestrator, which drives each deployment through the
runner (`STRATUS_RUNNER`: `local`, the embedded default, is the only one so far)."""

from __future__ import annotations

import os

from stratus_contracts import deployments as c
from stratus_deployments import domain, handlers, orchestrator, read_model, views
from stratus_deployments.runner.base import Runner
from stratus_kit import Service


def runner() -> Runner:
    name = os.environ.get("STRATUS_RUNNER", "local").strip() or "local"
    if name != "local":
        raise SystemExit(f"STRATUS_RUNNER={name!r}: the only runner is `local`")
    return orchestrator.local_runner()


SERVICE = Service(
    name=c.SERVICE,
    handlers=lambda: handlers.HANDLERS,
    mutates=(domain.mutate,),
    read_models=(read_model.READ_MODEL,),
    publisher=views.PUBLISHER,
    rebuild=c.RebuildReadModels,
    tasks=(orchestrator.task(runner),),
    # One orchestrator at a time, or every deployment would be built once per replica.
    singleton=True,
    on_sandbox_reset=orchestrator.reset_sandbox,
)
