"""The service kit: what every Stratus service is built on, so that a service holds only its domain.

A service is a contracts module, a domain module, a handlers module and a `Service` declaration
(`bootstrap.py`); the kit does the rest: partitions (event store, aggregate cache, read models,
relay), the handler registry with group commit and at-most-once commands, the worker threads,
durable consumers and the process (`run`). See docs/architecture.md, "The shape every service has".
"""

from stratus_kit.consumer import Consumer
from stratus_kit.partition import Partition, Projector, projector
from stratus_kit.read_model import LocalReadModel, ReadModel
from stratus_kit.registry import Registry
from stratus_kit.relay import Publisher, Relay, chain
from stratus_kit.service import MODES, Local, Service, by_mode, open_local, run, serve, spawn
from stratus_kit.state import Decision, Handler, State

__all__ = [
    "MODES",
    "Consumer",
    "Decision",
    "Handler",
    "Local",
    "LocalReadModel",
    "Partition",
    "Projector",
    "Publisher",
    "ReadModel",
    "Registry",
    "Relay",
    "Service",
    "State",
    "by_mode",
    "chain",
    "open_local",
    "projector",
    "run",
    "serve",
    "spawn",
]
