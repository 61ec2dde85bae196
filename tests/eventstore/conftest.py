"""Fixtures for the store tests: the services opened in-process on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import Clock, Services


@pytest.fixture
def services(backend: str, tmp_path: Path) -> Iterator[Services]:
    opened = Services(tmp_path)
    yield opened
    opened.close_all()


@pytest.fixture
def clock() -> Clock:
    return Clock()
