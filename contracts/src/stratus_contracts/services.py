"""The one list of Stratus's processes: what `stratus up` starts, `/readyz` asks and the CLI names.

Adding a service is a line here (plus its contracts module and its package `stratus_<name>`).
"""

from __future__ import annotations

import importlib

import msgspec


class ServiceSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    # The service keeps read models that `stratus rebuild <name>` can drop and replay.
    rebuildable: bool = False
    # The service holds the master key of environment variables (STRATUS_MASTER_KEY).
    holds_master_key: bool = False
    # Started before the bootstrap account exists (the supervisor bootstraps through it).
    bootstrap: bool = False

    @property
    def module(self) -> str:
        return f"stratus_{self.name}"

    def rebuild_message(self) -> type:
        """The command that rebuilds its read models: `RebuildReadModels` of its contract module."""
        return importlib.import_module(f"stratus_contracts.{self.name}").RebuildReadModels


# The services behind the gateway, in start order. The gateway starts last, once they are up.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(name="identity", bootstrap=True),
    ServiceSpec(name="projects", rebuildable=True, holds_master_key=True),
    ServiceSpec(name="deployments", rebuildable=True),
    ServiceSpec(name="webhooks", rebuildable=True, holds_master_key=True),
    ServiceSpec(name="audit", rebuildable=True),
    ServiceSpec(name="metrics"),
)
GATEWAY = ServiceSpec(name="gateway")
PROCESSES: tuple[ServiceSpec, ...] = (*SERVICES, GATEWAY)
BY_NAME: dict[str, ServiceSpec] = {s.name: s for s in PROCESSES}


def rebuildable() -> tuple[str, ...]:
    return tuple(s.name for s in SERVICES if s.rebuildable)
