"""The reply envelope of every request over the bus (a result or a typed error, never both), and
the few messages every service shares."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from stratus_contracts.errors import ErrorReply

T = TypeVar("T")


class Reply(msgspec.Struct, Generic[T], frozen=True, kw_only=True, omit_defaults=True):
    result: T | None = None
    error: ErrorReply | None = None
    # The result is the service's stored reply to an earlier command with the same Idempotency-Key.
    replayed: bool = False


class Ping(msgspec.Struct, frozen=True, kw_only=True):
    """Every service answers `qry.<service>.ping` (see `subjects.ping`) with a `Pong`."""


class Pong(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    instance: str
    # Counters of the replica that answered, by partition and worker: batches run, jobs in them
    # and commits made (`make bench` reads how many commands a commit carried).
    stats: dict[str, int] = {}


class RebuildResult(msgspec.Struct, frozen=True, kw_only=True):
    modes: dict[str, int]  # partition (mode) -> rows in the rebuilt read models
