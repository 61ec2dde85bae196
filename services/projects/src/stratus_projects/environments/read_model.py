"""The environments read model: the environment list, every environment's config versions, and
the data-key index a master-key rotation walks.

In the projects partition's read-model file: one row per live environment (its settings and build
overrides, config version, version and the deployment serving it, so a list needs no aggregate
loads), one row per config version (what made
it and the environment's aggregate version right after it, so versions are paged in SQL and an
older map is the aggregate at that version), the keys each environment holds (to count them per
version), and one row per data key with the id of the master key that wraps it. Built only from
events; `stratus rebuild projects` rebuilds it.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

import msgspec

from stratus_contracts import cursors
from stratus_contracts.deployments import BuildSettings
from stratus_contracts.envs import Environment, EnvironmentPage, ListEnvironments
from stratus_contracts.errors import DomainError
from stratus_contracts.events import Mode
from stratus_contracts.ids import encode_id
from stratus_kit import LocalReadModel, ReadModel
from stratus_projects.environments import domain as d

SCHEMA_VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS environments (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    branch TEXT,
    auto_deploy INTEGER NOT NULL,
    config_version INTEGER NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    version INTEGER NOT NULL,
    build TEXT NOT NULL DEFAULT '{}',
    url TEXT,
    deployment_id TEXT
);
CREATE INDEX IF NOT EXISTS environments_project ON environments (project_id, created, id);
CREATE TABLE IF NOT EXISTS config_versions (
    env_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    at INTEGER NOT NULL,
    created TEXT NOT NULL,
    changed TEXT NOT NULL,
    removed TEXT NOT NULL,
    var_count INTEGER NOT NULL,
    PRIMARY KEY (env_id, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS env_var_keys (
    env_id TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (env_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS data_keys (
    id TEXT PRIMARY KEY,
    env_id TEXT NOT NULL,
    kek_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS data_keys_kek ON data_keys (kek_id);
"""
_COLUMNS = (
    "id, account, project_id, name, description, branch, auto_deploy, config_version,"
    " created, updated, version, build, url, deployment_id"
)


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # fixed width: text order is time order


_json = msgspec.json.Encoder()
_names = msgspec.json.Decoder(list[str])
_build = msgspec.json.Decoder(BuildSettings)


def _build_text(build: BuildSettings | None) -> str | None:
    return None if build is None else _json.encode(build).decode()


def _version_row(db: sqlite3.Connection, env_id: str, info: d.VersionInfo) -> None:
    db.execute(
        "INSERT OR REPLACE INTO config_versions (env_id, number, at, created, changed, removed, var_count)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            env_id,
            info.number,
            info.at,
            _ts(info.created),
            _json.encode(info.changed),
            _json.encode(info.removed),
            info.var_count,
        ),
    )


def apply(db: sqlite3.Connection, event: object) -> None:
    match event:
        case d.EnvironmentCreated():
            _version_row(db, encode_id("env", event.originator_id), d.first_version(event))
            db.execute(
                f"INSERT OR REPLACE INTO environments ({_COLUMNS})"  # noqa: S608
                " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, NULL, NULL)",
                (
                    encode_id("env", event.originator_id),
                    event.account,
                    encode_id("prj", event.project_id),
                    event.name,
                    event.description,
                    event.branch,
                    int(event.auto_deploy),
                    _ts(event.timestamp),
                    _ts(event.timestamp),
                    event.originator_version,
                    _build_text(event.build) or "{}",
                ),
            )
        case d.EnvironmentReplaced():
            db.execute(
                "UPDATE environments SET name = ?, description = ?, branch = ?, auto_deploy = ?,"
                " build = coalesce(?, build), updated = ?, version = ? WHERE id = ?",
                (
                    event.name,
                    event.description,
                    event.branch,
                    int(event.auto_deploy),
                    _build_text(event.build),
                    _ts(event.timestamp),
                    event.originator_version,
                    encode_id("env", event.originator_id),
                ),
            )
        case d.EnvironmentDeployed():
            db.execute(
                "UPDATE environments SET url = ?, deployment_id = ?, updated = ?, version = ? WHERE id = ?",
                (
                    event.url,
                    event.deployment_id,
                    _ts(event.timestamp),
                    event.originator_version,
                    encode_id("env", event.originator_id),
                ),
            )
        case d.EnvironmentDeleted():
            db.execute("DELETE FROM environments WHERE id = ?", (encode_id("env", event.originator_id),))
        case d.EnvVarsChanged():
            env_id = encode_id("env", event.originator_id)
            db.executemany(
                "DELETE FROM env_var_keys WHERE env_id = ? AND key = ?", [(env_id, k) for k in event.removed]
            )
            db.executemany(
                "INSERT OR IGNORE INTO env_var_keys (env_id, key) VALUES (?, ?)",
                [(env_id, k) for k in event.set],
            )
            count = db.execute("SELECT count(*) FROM env_var_keys WHERE env_id = ?", (env_id,)).fetchone()[0]
            info = d.VersionInfo(
                number=event.config_version,
                at=event.originator_version,
                created=event.timestamp,
                changed=tuple(sorted(event.set)),
                removed=tuple(sorted(event.removed)),
                var_count=count,
            )
            _version_row(db, env_id, info)
            db.execute(
                "UPDATE environments SET config_version = ?, updated = ?, version = ? WHERE id = ?",
                (
                    event.config_version,
                    _ts(event.timestamp),
                    event.originator_version,
                    encode_id("env", event.originator_id),
                ),
            )
        case d.DataKeyCreated():
            db.execute(
                "INSERT OR REPLACE INTO data_keys (id, env_id, kek_id) VALUES (?, ?, ?)",
                (str(event.originator_id), str(event.env_id), event.kek_id),
            )
        case d.DataKeyRewrapped():
            db.execute(
                "UPDATE data_keys SET kek_id = ? WHERE id = ?", (event.kek_id, str(event.originator_id))
            )
        case _:
            pass  # project events, name claims, reveals: not in this read model


READ_MODEL = ReadModel(name="environments", schema=SCHEMA, apply=apply, version=SCHEMA_VERSION)


def encode_key_cursor(key: str) -> str:
    return cursors.encode("vars", key)


def decode_key_cursor(cursor: str) -> str:
    return cursors.decode(cursor, "vars", 1)[0]


def encode_number_cursor(number: int) -> str:
    return cursors.encode("versions", str(number))


def decode_number_cursor(cursor: str) -> int:
    text = cursors.decode(cursor, "versions", 1)[0]
    if not text.isdigit():
        raise DomainError("invalid_cursor", "The cursor is not one this API returned.")
    return int(text)


def list_sql(q: ListEnvironments) -> tuple[str, list[object]]:
    """A project's environments the caller may see (the project itself was checked), oldest first."""
    where = ["account = ?", "project_id = ?"]
    params: list[object] = [q.caller.account_id, q.project_id]
    if q.caller.environments is not None:
        names = q.caller.environments
        where.append(f"name IN ({', '.join('?' * len(names))})" if names else "0")
        params += names
    if q.cursor:
        created, row_id = cursors.decode(q.cursor, "envs", 2)
        where.append("(created, id) > (?, ?)")  # a row value: SQLite seeks the index to it
        params += [created, row_id]
    sql = (
        f"SELECT {_COLUMNS} FROM environments WHERE {' AND '.join(where)}"  # noqa: S608
        " ORDER BY created, id LIMIT ?"
    )
    params.append(q.limit + 1)
    return sql, params


def _info(row: sqlite3.Row) -> d.VersionInfo:
    return d.VersionInfo(
        number=row["number"],
        at=row["at"],
        created=datetime.fromisoformat(row["created"]),
        changed=tuple(_names.decode(row["changed"])),
        removed=tuple(_names.decode(row["removed"])),
        var_count=row["var_count"],
    )


def config_version(model: LocalReadModel, env_id: str, number: int) -> d.VersionInfo | None:
    rows = model.query("SELECT * FROM config_versions WHERE env_id = ? AND number = ?", (env_id, number))
    return _info(rows[0]) if rows else None


def config_versions(model: LocalReadModel, env_id: str, before: int, limit: int) -> list[d.VersionInfo]:
    """Up to `limit` config versions numbered below `before`, newest first."""
    rows = model.query(
        "SELECT * FROM config_versions WHERE env_id = ? AND number < ? ORDER BY number DESC LIMIT ?",
        (env_id, before, limit),
    )
    return [_info(row) for row in rows]


def row_to_environment(row: sqlite3.Row, mode: Mode) -> Environment:
    return Environment(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        description=row["description"],
        branch=row["branch"],
        auto_deploy=bool(row["auto_deploy"]),
        config_version=row["config_version"],
        mode=mode,
        created=datetime.fromisoformat(row["created"]),
        updated=datetime.fromisoformat(row["updated"]),
        version=row["version"],
        build=_build.decode(row["build"]),
        url=row["url"],
        deployment_id=row["deployment_id"],
    )


def page(rows: list[sqlite3.Row], q: ListEnvironments) -> EnvironmentPage:
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    cursor = cursors.encode("envs", rows[-1]["created"], rows[-1]["id"]) if has_more else None
    return EnvironmentPage(
        data=[row_to_environment(r, q.caller.mode) for r in rows], has_more=has_more, next_cursor=cursor
    )


def stale_data_keys(model: LocalReadModel, kek_id: str) -> list[str]:
    """Ids (UUID text) of data keys wrapped by another master key than `kek_id`."""
    return [
        row["id"] for row in model.query("SELECT id FROM data_keys WHERE kek_id != ? ORDER BY id", (kek_id,))
    ]


def count_data_keys(model: LocalReadModel) -> int:
    return model.query("SELECT count(*) AS n FROM data_keys")[0]["n"]
