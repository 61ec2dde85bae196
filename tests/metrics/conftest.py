"""One chDB store for the metrics store tests: chDB is one engine per process, so the session
shares one on-disk store (in a temporary dir) and each test uses accounts of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stratus_metrics.store import MetricsStore


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsStore]:
    opened = MetricsStore(f"chdb://{tmp_path_factory.mktemp('chdb')}")
    opened.migrate()
    yield opened
    opened.close()
