"""The project list view: one row per live project, filtered and keyset-paginated.

Built only from events (see `stratus_eventstore.view`); `stratus rebuild projects` replays it.
"""

from __future__ import annotations

import base64
import sqlite3
from datetime import datetime

import msgspec

from stratus_contracts.errors import DomainError
from stratus_contracts.events import Mode
from stratus_contracts.ids import encode_id
from stratus_contracts.projects import ListProjects, Project, ProjectPage
from stratus_projects import domain

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    owner TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS projects_account_created ON projects (account, created, id);
CREATE INDEX IF NOT EXISTS projects_account_name ON projects (account, name);
"""

_COLUMNS = "id, account, name, description, owner, created, updated, version"


def _ts(value: datetime) -> str:
    # Fixed width so that text order is time order.
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def apply(db: sqlite3.Connection, event: object) -> None:
    match event:
        case domain.ProjectCreated():
            db.execute(
                f"INSERT OR REPLACE INTO projects ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (
                    encode_id("prj", event.originator_id),
                    event.account,
                    event.name,
                    event.description,
                    event.owner,
                    _ts(event.timestamp),
                    _ts(event.timestamp),
                    event.originator_version,
                ),
            )
        case domain.ProjectUpdated():
            db.execute(
                "UPDATE projects SET name = coalesce(?, name), description = coalesce(?, description),"
                " updated = ?, version = ? WHERE id = ?",
                (
                    event.name,
                    event.description,
                    _ts(event.timestamp),
                    event.originator_version,
                    encode_id("prj", event.originator_id),
                ),
            )
        case domain.ProjectDeleted():
            db.execute("DELETE FROM projects WHERE id = ?", (encode_id("prj", event.originator_id),))
        case _:
            pass  # name-index events do not change the list


_ORDER = {
    "created": ("created", "ASC", ">"),
    "-created": ("created", "DESC", "<"),
    "name": ("name", "ASC", ">"),
}


def _encode_cursor(sort: str, key: str, row_id: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([sort, key, row_id])).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got_sort, key, row_id = msgspec.json.decode(raw, type=tuple[str, str, str])
    except (ValueError, msgspec.DecodeError) as exc:
        raise DomainError("invalid_cursor", "The cursor is not one this API returned.") from exc
    if got_sort != sort:
        raise DomainError(
            "invalid_cursor", "The cursor belongs to another sort order; start again without it."
        )
    return key, row_id


def row_to_project(row: sqlite3.Row, mode: Mode) -> Project:
    return Project(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        owner=row["owner"],
        mode=mode,
        created=datetime.fromisoformat(row["created"]),
        updated=datetime.fromisoformat(row["updated"]),
        version=row["version"],
    )


def list_sql(q: ListProjects) -> tuple[str, list[object]]:
    column, direction, op = _ORDER[q.sort]
    where = ["account = ?"]
    params: list[object] = [q.caller.account_id]
    if q.name is not None:
        where.append("name = ?")
        params.append(q.name)
    if q.owner is not None:
        where.append("owner = ?")
        params.append(q.owner)
    if q.cursor:
        key, row_id = _decode_cursor(q.cursor, q.sort)
        where.append(f"({column} {op} ? OR ({column} = ? AND id {op} ?))")
        params += [key, key, row_id]
    # Only constants and placeholders are interpolated; values travel as parameters.
    sql = (
        f"SELECT {_COLUMNS} FROM projects WHERE {' AND '.join(where)}"  # noqa: S608
        f" ORDER BY {column} {direction}, id {direction} LIMIT ?"
    )
    params.append(q.limit + 1)
    return sql, params


def page(rows: list[sqlite3.Row], q: ListProjects) -> ProjectPage:
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    items = [row_to_project(r, q.caller.mode) for r in rows]
    next_cursor = None
    if has_more:
        column = _ORDER[q.sort][0]
        next_cursor = _encode_cursor(q.sort, rows[-1][column], rows[-1]["id"])
    return ProjectPage(data=items, has_more=has_more, next_cursor=next_cursor)
