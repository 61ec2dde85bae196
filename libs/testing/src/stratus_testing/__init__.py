"""Test helpers for Stratus: retry-until waits, a throwaway nats-server, and the whole stack."""

from stratus_testing.natsserver import NatsCluster, NatsServer
from stratus_testing.processes import nats_server_binary
from stratus_testing.stack import Stack, StackFailed, stratus_command
from stratus_testing.waiting import free_port, wait_for, wait_until

__all__ = [
    "NatsCluster",
    "NatsServer",
    "Stack",
    "StackFailed",
    "free_port",
    "nats_server_binary",
    "stratus_command",
    "wait_for",
    "wait_until",
]
