"""The project list read model: one row per live project and one per team membership, filtered
and keyset-paginated.

Built only from events (see `stratus_kit.read_model`); `stratus rebuild projects` replays it.
The team is in it so that lists can be narrowed to a member's projects (member-bound keys,
`?owner=`) in SQL. A single project's team is read from its aggregate (`member_page`).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

import msgspec

from stratus_contracts import cursors
from stratus_contracts.deployments import BuildSettings
from stratus_contracts.errors import DomainError
from stratus_contracts.events import Mode
from stratus_contracts.ids import encode_id
from stratus_contracts.projects import (
    ListProjectMembers,
    ListProjects,
    Project,
    ProjectMember,
    ProjectMemberPage,
    ProjectPage,
)
from stratus_kit import ReadModel
from stratus_projects import domain

# Bump when SCHEMA changes: a file built by older code is then rebuilt from the log on open.
SCHEMA_VERSION = 4
SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    owner TEXT,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    version INTEGER NOT NULL,
    build TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS projects_account_created ON projects (account, created, id);
CREATE INDEX IF NOT EXISTS projects_account_name ON projects (account, name, id);
CREATE TABLE IF NOT EXISTS project_members (
    project_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    role TEXT NOT NULL,
    added_version INTEGER NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (project_id, member_id)
);
CREATE INDEX IF NOT EXISTS project_members_member ON project_members (member_id, role);
"""

_COLUMNS = "id, account, name, description, owner, created, updated, version, build"
_build_json = msgspec.json.Encoder()
_build = msgspec.json.Decoder(BuildSettings)


def _ts(value: datetime) -> str:
    # Fixed width so that text order is time order.
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _touch_team(db: sqlite3.Connection, event: domain.ProjectEvent, project_id: str) -> None:
    # The same rule as domain.primary_owner: the earliest-added member holding the owner role.
    db.execute(
        "UPDATE projects SET updated = ?, version = ?, owner = (SELECT member_id FROM project_members"
        " WHERE project_id = ? AND role = 'owner' ORDER BY added_version LIMIT 1) WHERE id = ?",
        (_ts(event.timestamp), event.originator_version, project_id, project_id),
    )


def apply(db: sqlite3.Connection, event: object) -> None:
    match event:
        case domain.ProjectCreated():
            db.execute(
                f"INSERT OR REPLACE INTO projects ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{{}}')",  # noqa: S608
                (
                    encode_id("prj", event.originator_id),
                    event.account,
                    event.name,
                    event.description,
                    event.owner_member,
                    _ts(event.timestamp),
                    _ts(event.timestamp),
                    event.originator_version,
                ),
            )
        case domain.ProjectUpdated():
            db.execute(
                "UPDATE projects SET name = coalesce(?, name), description = coalesce(?, description),"
                " build = coalesce(?, build), updated = ?, version = ? WHERE id = ?",
                (
                    event.name,
                    event.description,
                    None if event.build is None else _build_json.encode(event.build).decode(),
                    _ts(event.timestamp),
                    event.originator_version,
                    encode_id("prj", event.originator_id),
                ),
            )
        case domain.ProjectDeleted():
            project_id = encode_id("prj", event.originator_id)
            db.execute("DELETE FROM projects WHERE id = ?", (project_id,))
            db.execute("DELETE FROM project_members WHERE project_id = ?", (project_id,))
        case domain.ProjectMemberAdded():
            project_id = encode_id("prj", event.originator_id)
            db.execute(
                "INSERT OR REPLACE INTO project_members"
                " (project_id, member_id, role, added_version, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    project_id,
                    event.member_id,
                    event.role,
                    event.originator_version,
                    _ts(event.timestamp),
                    _ts(event.timestamp),
                ),
            )
            _touch_team(db, event, project_id)
        case domain.ProjectMemberUpdated():
            project_id = encode_id("prj", event.originator_id)
            db.execute(
                "UPDATE project_members SET role = ?, updated = ? WHERE project_id = ? AND member_id = ?",
                (event.role, _ts(event.timestamp), project_id, event.member_id),
            )
            _touch_team(db, event, project_id)
        case domain.ProjectMemberRemoved():
            project_id = encode_id("prj", event.originator_id)
            db.execute(
                "DELETE FROM project_members WHERE project_id = ? AND member_id = ?",
                (project_id, event.member_id),
            )
            _touch_team(db, event, project_id)
        case _:
            pass  # name-index events do not change the list


READ_MODEL = ReadModel(
    name="projects", schema=SCHEMA, apply=apply, version=SCHEMA_VERSION, counted="projects"
)


_ORDER = {
    "created": ("created", "ASC", ">"),
    "-created": ("created", "DESC", "<"),
    "name": ("name", "ASC", ">"),
}


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
        build=_build.decode(row["build"]),
    )


def list_sql(q: ListProjects) -> tuple[str, list[object]]:
    column, direction, op = _ORDER[q.sort]
    where = ["account = ?"]
    params: list[object] = [q.caller.account_id]
    # What the caller may see at all: the same rules as domain.visible, in SQL.
    if q.caller.project_ids is not None:
        where.append(f"id IN ({', '.join('?' * len(q.caller.project_ids))})" if q.caller.project_ids else "0")
        params += q.caller.project_ids
    if q.caller.member_id is not None:
        where.append("id IN (SELECT project_id FROM project_members WHERE member_id = ?)")
        params.append(q.caller.member_id)
    if q.name is not None:
        where.append("name = ?")
        params.append(q.name)
    if q.owner is not None:
        where.append("id IN (SELECT project_id FROM project_members WHERE member_id = ? AND role = 'owner')")
        params.append(q.owner)
    if q.cursor:
        key, row_id = cursors.decode(q.cursor, q.sort, 2)
        # A row value, so that SQLite seeks the index to the cursor instead of scanning to it.
        where.append(f"({column}, id) {op} (?, ?)")
        params += [key, row_id]
    # A name is one project at most: find it by the name index, although the sort order would
    # have SQLite walk the account's whole (created, id) index to avoid sorting that one row.
    index = " INDEXED BY projects_account_name" if q.name is not None else ""
    # Only constants and placeholders are interpolated; values travel as parameters.
    sql = (
        f"SELECT {_COLUMNS} FROM projects{index} WHERE {' AND '.join(where)}"  # noqa: S608
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
        next_cursor = cursors.encode(q.sort, rows[-1][column], rows[-1]["id"])
    return ProjectPage(data=items, has_more=has_more, next_cursor=next_cursor)


def member_page(team: list[tuple[int, ProjectMember]], q: ListProjectMembers) -> ProjectMemberPage:
    """One page of a project's team, oldest access first; `team` is (added_version, member)."""
    team = sorted(team, key=lambda item: item[0])
    if q.cursor:
        after = cursors.decode(q.cursor, "members", 2)[0]
        if not after.isdigit():
            raise DomainError("invalid_cursor", "The cursor is not one this API returned.")
        team = [item for item in team if item[0] > int(after)]
    has_more = len(team) > q.limit
    team = team[: q.limit]
    next_cursor = cursors.encode("members", str(team[-1][0]), team[-1][1].id) if has_more else None
    return ProjectMemberPage(data=[m for _, m in team], has_more=has_more, next_cursor=next_cursor)
