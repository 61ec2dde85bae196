"""The reply envelope of every request over the bus: a result or a typed error, never both."""

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
    pass


class Pong(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    instance: str


class RebuildView(msgspec.Struct, frozen=True, kw_only=True):
    """Drop a service's read model and replay it from its source (`cmd.<service>.rebuild_view`)."""


class RebuildResult(msgspec.Struct, frozen=True, kw_only=True):
    modes: dict[str, int]  # mode -> rows in the rebuilt view
