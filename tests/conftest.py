"""Shared fixtures: event-store backends (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest

POSTGRES_DSN = os.environ.get("STRATUS_TEST_POSTGRES_DSN")
BACKENDS = ["sqlite", "postgres"]


def _postgres_env(dsn: str, schema: str) -> dict[str, str]:
    url = urlparse(dsn)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_PASSWORD": url.password or "",
        "POSTGRES_SCHEMA": schema,
    }


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """Select the event-store backend by configuration alone, as production does."""
    monkeypatch.setenv("STRATUS_DATA_DIR", str(tmp_path))
    if request.param == "sqlite":
        monkeypatch.setenv("PERSISTENCE_MODULE", "eventsourcing.sqlite")
        yield "sqlite"
        return
    if not POSTGRES_DSN:
        pytest.skip("STRATUS_TEST_POSTGRES_DSN is not set (.ci/run sets it)")
    schema = f"stratus_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    for key, value in _postgres_env(POSTGRES_DSN, schema).items():
        monkeypatch.setenv(key, value)
    try:
        yield "postgres"
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
