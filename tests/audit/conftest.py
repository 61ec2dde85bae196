"""Helpers for the audit tests: public events as the relays publish them, and per-mode read models."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stratus_audit.read_model import AuditReadModel
from stratus_contracts.events import Actor, Event, Mode
from stratus_contracts.ids import new_id

T0 = datetime(2026, 4, 28, 10, 0, 0, tzinfo=UTC)


def event(
    type: str,
    *,
    account: str = "acct_a",
    mode: Mode = "live",
    data: dict[str, Any] | None = None,
    actor: Actor | None = None,
    minutes: int = 0,
    id: str | None = None,
) -> Event:
    return Event(
        id=id or new_id("evt"),
        type=type,
        created=T0 + timedelta(minutes=minutes),
        mode=mode,
        account=account,
        data=data if data is not None else {"id": new_id("key"), "object": "api_key"},
        actor=actor,
    )


@pytest.fixture
def models(tmp_path: Path) -> Iterator[dict[str, AuditReadModel]]:
    opened = {
        mode: AuditReadModel(tmp_path / f"audit-{mode}.audit.read.db", mode) for mode in ("live", "test")
    }
    yield opened
    for model in opened.values():
        model.close()
