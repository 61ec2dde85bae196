"""The deployments read model: one row per deployment (for lists and the runner's queue) and one
per log line (for pages of a log and its live tail), fed from the event log.

Built only from events (see `stratus_kit.read_model`); `stratus rebuild deployments` replays it.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime

from stratus_contracts import cursors
from stratus_contracts.deployments import LogLine
from stratus_contracts.ids import encode_id
from stratus_deployments import domain
from stratus_kit import LocalReadModel, ReadModel

NAME = "deployments"
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL,
    account TEXT NOT NULL,
    project_id TEXT NOT NULL,
    env_id TEXT NOT NULL,
    env_name TEXT NOT NULL,
    status TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deployments_account_created ON deployments (account, created, id);
CREATE INDEX IF NOT EXISTS deployments_status ON deployments (status, created);
CREATE TABLE IF NOT EXISTS deployment_logs (
    deployment TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    stream TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (deployment, seq)
) WITHOUT ROWID;
"""

_STATUS = {
    domain.DeploymentBuilding: "building",
    domain.DeploymentDeploying: "deploying",
    domain.DeploymentSucceeded: "ready",
    domain.DeploymentRolledBack: "ready",
    domain.DeploymentFailed: "failed",
    domain.DeploymentCanceled: "canceled",
    domain.DeploymentSuperseded: "superseded",
    domain.DeploymentRestarted: "queued",
}


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def apply(db: sqlite3.Connection, event: object) -> None:
    if isinstance(event, domain.DeploymentCreated):
        db.execute(
            "INSERT OR REPLACE INTO deployments"
            " (id, uuid, account, project_id, env_id, env_name, status, created)"
            " VALUES (?, ?, ?, ?, ?, ?, 'queued', ?)",
            (
                encode_id("dep", event.originator_id),
                str(event.originator_id),
                event.account,
                event.project_id,
                event.env_id,
                event.env_name,
                _ts(event.timestamp),
            ),
        )
    elif (status := _STATUS.get(type(event))) is not None:
        db.execute(
            "UPDATE deployments SET status = ? WHERE uuid = ?",
            (status, str(event.originator_id)),  # type: ignore[attr-defined]
        )
    elif isinstance(event, domain.LogAppended):
        deployment = encode_id("dep", event.deployment_id)
        db.executemany(
            "INSERT OR REPLACE INTO deployment_logs (deployment, seq, ts, stream, text)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (deployment, event.first + n, ts, stream, text)
                for n, (ts, stream, text) in enumerate(event.lines)
            ],
        )


READ_MODEL = ReadModel(NAME, SCHEMA, apply, version=SCHEMA_VERSION, counted="deployments")


# --- queries -----------------------------------------------------------------------------------


def page(
    model: LocalReadModel,
    account: str,
    *,
    project_id: str | None,
    env: str | None,
    status: str | None,
    visible_projects: frozenset[str] | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[uuid.UUID], bool, str | None]:
    """Deployment ids of the account, newest first, filtered; keyset-paginated."""
    where = ["account = ?"]
    params: list[object] = [account]
    if project_id is not None:
        where.append("project_id = ?")
        params.append(project_id)
    if env is not None:
        where.append("(env_id = ? OR env_name = ?)")
        params += [env, env]
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if visible_projects is not None:
        where.append(f"project_id IN ({', '.join('?' * len(visible_projects))})")
        params += sorted(visible_projects)
    if cursor is not None:
        created, last_id = cursors.decode(cursor, "deployments", 2)
        where.append("(created, id) < (?, ?)")
        params += [created, last_id]
    rows = model.query(
        f"SELECT id, uuid, created FROM deployments WHERE {' AND '.join(where)}"  # noqa: S608 - fixed clauses
        " ORDER BY created DESC, id DESC LIMIT ?",
        [*params, limit + 1],
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = cursors.encode("deployments", rows[-1]["created"], rows[-1]["id"]) if more else None
    return [uuid.UUID(r["uuid"]) for r in rows], more, next_cursor


def unfinished(model: LocalReadModel) -> list[tuple[uuid.UUID, str, str]]:
    """Every deployment still queued, building or deploying, oldest first: (id, status, env id)."""
    rows = model.query(
        "SELECT uuid, status, env_id FROM deployments"
        " WHERE status IN ('queued', 'building', 'deploying') ORDER BY created, id"
    )
    return [(uuid.UUID(r["uuid"]), r["status"], r["env_id"]) for r in rows]


def serving(model: LocalReadModel) -> list[uuid.UUID]:
    rows = model.query("SELECT uuid FROM deployments WHERE status = 'ready' ORDER BY created, id")
    return [uuid.UUID(r["uuid"]) for r in rows]


def lines(
    model: LocalReadModel, deployment_id: str, after: int, since: datetime | None, limit: int
) -> list[LogLine]:
    if since is not None:
        micros = int(since.timestamp() * 1_000_000)
        rows = model.query(
            "SELECT seq, ts, stream, text FROM deployment_logs WHERE deployment = ? AND seq > ? AND ts >= ?"
            " ORDER BY seq LIMIT ?",
            (deployment_id, after, micros, limit),
        )
    else:
        rows = model.query(
            "SELECT seq, ts, stream, text FROM deployment_logs WHERE deployment = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (deployment_id, after, limit),
        )
    return [
        LogLine(
            seq=r["seq"],
            ts=datetime.fromtimestamp(r["ts"] / 1_000_000, UTC),
            stream=r["stream"],
            text=r["text"],
        )
        for r in rows
    ]
