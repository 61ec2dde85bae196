"""The kit's own tests open the projects service in process (`open_local`) on every event-store
backend: real SQLite files, or a PostgreSQL schema of their own."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stratus_kit import Local, open_local
from stratus_projects.bootstrap import SERVICE
from stratus_projects.environments import crypto

Opener = Callable[[], Local]


@pytest.fixture
def master() -> bytes:
    return os.urandom(32)


@pytest.fixture
def open_replica(backend: str, tmp_path: Path, master: bytes) -> Iterator[Opener]:
    """Opens the projects service on the test's store; each call is one more replica of it,
    with its own workers and aggregate cache. On SQLite replicas share the data dir (the store
    file lives there, as for processes on one host); on PostgreSQL each also has a read-model
    file of its own, as on separate hosts."""
    opened: list[Local] = []

    def opener() -> Local:
        directory = tmp_path if backend == "sqlite" else tmp_path / f"replica-{len(opened)}"
        local = open_local(SERVICE, directory=directory, deps={"keyring": crypto.Keyring(current=master)})
        opened.append(local)
        return local

    yield opener
    for local in opened:
        local.close()
