"""The webhooks read model: one row per live endpoint, for lists (newest first, by keyset) and,
later, for finding the endpoints an event goes to. Built only from events; rebuildable."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime

from stratus_contracts import cursors
from stratus_contracts.ids import encode_id
from stratus_kit import LocalReadModel, ReadModel
from stratus_webhooks import domain

NAME = "webhooks"
SCHEMA = """
CREATE TABLE IF NOT EXISTS endpoints (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL,
    account TEXT NOT NULL,
    project TEXT,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS endpoints_account_created ON endpoints (account, created, id);
"""


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def apply(db: sqlite3.Connection, event: object) -> None:
    if isinstance(event, domain.EndpointCreated):
        db.execute(
            "INSERT OR REPLACE INTO endpoints (id, uuid, account, project, created) VALUES (?, ?, ?, ?, ?)",
            (
                encode_id("whk", event.originator_id),
                str(event.originator_id),
                event.account,
                event.project,
                _ts(event.timestamp),
            ),
        )
    elif isinstance(event, domain.EndpointUpdated):
        db.execute(
            "UPDATE endpoints SET project = ? WHERE uuid = ?", (event.project, str(event.originator_id))
        )
    elif isinstance(event, domain.EndpointDeleted):
        db.execute("DELETE FROM endpoints WHERE uuid = ?", (str(event.originator_id),))


READ_MODEL = ReadModel(NAME, SCHEMA, apply, counted="endpoints")


def page(
    model: LocalReadModel, account: str, projects: tuple[str, ...] | None, limit: int, cursor: str | None
) -> tuple[list[uuid.UUID], bool, str | None]:
    where, params = ["account = ?"], [account]
    if projects is not None:
        # A key restricted to projects sees only endpoints filtered to one of them.
        where.append(f"project IN ({', '.join('?' * len(projects))})")
        params += list(projects)
    if cursor is not None:
        created, last = cursors.decode(cursor, NAME, 2)
        where.append("(created, id) < (?, ?)")
        params += [created, last]
    rows = model.query(
        f"SELECT id, uuid, created FROM endpoints WHERE {' AND '.join(where)}"  # noqa: S608 - fixed clauses
        " ORDER BY created DESC, id DESC LIMIT ?",
        [*params, limit + 1],
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = cursors.encode(NAME, rows[-1]["created"], rows[-1]["id"]) if more else None
    return [uuid.UUID(r["uuid"]) for r in rows], more, next_cursor
