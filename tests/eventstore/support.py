"""Helpers for the store tests: the services opened in-process (`stratus_kit.open_local`) on the
backend the `backend` fixture selected, a clock the tests move, error codes, and what the outbox
relay would publish."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stratus_contracts.errors import DomainError
from stratus_contracts.events import Event
from stratus_eventstore.model import utcnow
from stratus_identity.bootstrap import SERVICE as IDENTITY
from stratus_kit import Local, Partition, Publisher, Relay, open_local
from stratus_projects.bootstrap import SERVICE as PROJECTS
from stratus_projects.environments import crypto


class Clock:
    """An injectable clock (`open_local(clock=...)`) that only moves when a test moves it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Services:
    """Opens services on one data directory; each `Local` opened here is one replica of the
    service (same stores, its own cache and workers). All are closed when the test ends."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._open: list[Local] = []

    def projects(
        self, keyring: crypto.Keyring | None = None, clock: Callable[[], datetime] = utcnow
    ) -> Local:
        keyring = crypto.Keyring(current=os.urandom(32)) if keyring is None else keyring
        return self._opened(
            open_local(PROJECTS, directory=self.directory, deps={"keyring": keyring}, clock=clock)
        )

    def identity(self, clock: Callable[[], datetime] = utcnow) -> Local:
        return self._opened(open_local(IDENTITY, directory=self.directory, deps={}, clock=clock))

    def _opened(self, local: Local) -> Local:
        self._open.append(local)
        return local

    def close(self, local: Local) -> None:
        """Stop one replica now (its workers, stores and read model files)."""
        self._open.remove(local)
        local.close()

    def close_all(self) -> None:
        while self._open:
            self._open.pop().close()


def code(call: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The error code `call` is refused with."""
    with pytest.raises(DomainError) as info:
        call(*args, **kwargs)
    return info.value.reply.code


def published(partition: Partition, publisher: Publisher, after: int = 0) -> list[tuple[str, Event[Any]]]:
    """What the outbox relay would publish of the partition's log after notification `after`:
    (subject, public event), internal events left out. Nothing is sent or recorded."""
    relay = Relay(partition, None, publisher)  # type: ignore[arg-type]  # no JetStream: read only
    out: list[tuple[str, Event[Any]]] = []
    while batch := relay.read(after):
        out += [(subject, event) for _, subject, event in batch if subject is not None]
        after = batch[-1][0]
    return out
