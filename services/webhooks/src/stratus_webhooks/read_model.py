"""The webhooks read model: one row per live endpoint (for lists, and to find the endpoints an
event goes to) and one per delivery (an endpoint's delivery log, and the dispatcher's queue of
what is due). Built only from events; rebuildable."""

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
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    event_id TEXT NOT NULL,
    status TEXT NOT NULL,
    next_attempt TEXT,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_endpoint ON deliveries (endpoint, created, id);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt);
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
    elif isinstance(event, domain.DeliveryScheduled):
        db.execute(
            "INSERT OR REPLACE INTO deliveries (id, uuid, endpoint, event_id, status, next_attempt, created)"
            " VALUES (?, ?, ?, ?, 'pending', ?, ?)",
            (
                encode_id("dlv", event.originator_id),
                str(event.originator_id),
                encode_id("whk", event.endpoint_id),
                event.event_id,
                _ts(event.timestamp),
                _ts(event.timestamp),
            ),
        )
    elif isinstance(event, domain.DeliveryAttempted):
        db.execute(
            "UPDATE deliveries SET status = ?, next_attempt = ? WHERE uuid = ?",
            (
                event.status,
                None if event.next_attempt is None else _ts(event.next_attempt),
                str(event.originator_id),
            ),
        )
    elif isinstance(event, domain.DeliveryRequeued):
        db.execute(
            "UPDATE deliveries SET status = 'pending', next_attempt = ? WHERE uuid = ?",
            (_ts(event.timestamp), str(event.originator_id)),
        )


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


def endpoints_of(model: LocalReadModel, account: str) -> list[uuid.UUID]:
    return [
        uuid.UUID(r["uuid"]) for r in model.query("SELECT uuid FROM endpoints WHERE account = ?", (account,))
    ]


def due(model: LocalReadModel, now: datetime, limit: int) -> list[tuple[uuid.UUID, str, str]]:
    """Pending deliveries due by `now`, soonest first: (id, endpoint, next attempt)."""
    rows = model.query(
        "SELECT uuid, endpoint, next_attempt FROM deliveries WHERE status = 'pending' AND next_attempt <= ?"
        " ORDER BY next_attempt LIMIT ?",
        (_ts(now), limit),
    )
    return [(uuid.UUID(r["uuid"]), r["endpoint"], r["next_attempt"]) for r in rows]


def next_due(model: LocalReadModel) -> str | None:
    rows = model.query("SELECT min(next_attempt) FROM deliveries WHERE status = 'pending'")
    return rows[0][0] if rows else None


def deliveries(
    model: LocalReadModel,
    endpoint: str,
    *,
    status: str | None = None,
    event_id: str | None = None,
    created_gte: datetime | None = None,
    created_lt: datetime | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> tuple[list[uuid.UUID], bool, str | None]:
    where, params = ["endpoint = ?"], [endpoint]
    for column, value in (("status", status), ("event_id", event_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if created_gte is not None:
        where.append("created >= ?")
        params.append(_ts(created_gte))
    if created_lt is not None:
        where.append("created < ?")
        params.append(_ts(created_lt))
    if cursor is not None:
        created, last = cursors.decode(cursor, "deliveries", 2)
        where.append("(created, id) < (?, ?)")
        params += [created, last]
    rows = model.query(
        f"SELECT id, uuid, created FROM deliveries WHERE {' AND '.join(where)}"  # noqa: S608 - fixed clauses
        " ORDER BY created DESC, id DESC LIMIT ?",
        [*params, limit + 1],
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = cursors.encode("deliveries", rows[-1]["created"], rows[-1]["id"]) if more else None
    return [uuid.UUID(r["uuid"]) for r in rows], more, next_cursor
