"""The identity read model: which keys and members each account and mode has, in creation order.

It holds just ids and sort keys (SQLite, built only from events); a page of ids is then loaded
as aggregates, so a listed key or member is always its current state. It also answers "every
key of this account" for plan changes. Dropping the file rebuilds it.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from stratus_contracts import cursors
from stratus_contracts.events import Mode
from stratus_contracts.ids import encode_id
from stratus_identity.domain import keys, members
from stratus_kit import ReadModel

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    mode TEXT NOT NULL,
    created TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS keys_account_created ON keys (account, mode, created, id);
CREATE TABLE IF NOT EXISTS members (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    mode TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS members_account_created ON members (account, mode, created, id);
"""


def _ts(value: datetime) -> str:
    # Fixed width so that text order is time order.
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def apply(db: sqlite3.Connection, event: object) -> None:
    match event:
        case keys.KeyCreated():
            db.execute(
                "INSERT OR REPLACE INTO keys (id, account, mode, created, revoked) VALUES (?, ?, ?, ?, 0)",
                (encode_id("key", event.originator_id), event.account, event.mode, _ts(event.timestamp)),
            )
        case keys.KeyRevoked():
            db.execute("UPDATE keys SET revoked = 1 WHERE id = ?", (encode_id("key", event.originator_id),))
        case members.MemberAdded():
            db.execute(
                "INSERT OR REPLACE INTO members (id, account, mode, created) VALUES (?, ?, ?, ?)",
                (encode_id("mem", event.originator_id), event.account, event.mode, _ts(event.timestamp)),
            )
        case members.MemberRemoved():
            db.execute("DELETE FROM members WHERE id = ?", (encode_id("mem", event.originator_id),))
        case _:
            pass  # other events do not change who is listed


def page_sql(
    table: str, account: str, mode: Mode, limit: int, cursor: str | None, revoked: bool | None = None
) -> tuple[str, list[object]]:
    """Newest first, keyset-paginated on (created, id); one row more than `limit` to see if more."""
    assert table in {"keys", "members"}
    where = ["account = ?", "mode = ?"]
    params: list[object] = [account, mode]
    if revoked is not None and table == "keys":
        where.append("revoked = ?")
        params.append(int(revoked))
    if cursor:
        created, row_id = cursors.decode(cursor, table, 2)
        where.append("(created, id) < (?, ?)")  # a row value: SQLite seeks the index to it
        params += [created, row_id]
    # Only constants are interpolated; values travel as parameters.
    sql = (
        f"SELECT id, created FROM {table} WHERE {' AND '.join(where)}"  # noqa: S608
        " ORDER BY created DESC, id DESC LIMIT ?"
    )
    params.append(limit + 1)
    return sql, params


def page_ids(table: str, rows: list[sqlite3.Row], limit: int) -> tuple[list[str], bool, str | None]:
    """The page's ids, whether more follow, and the cursor for the next page."""
    has_more = len(rows) > limit
    rows = rows[:limit]
    cursor = cursors.encode(table, rows[-1]["created"], rows[-1]["id"]) if has_more else None
    return [r["id"] for r in rows], has_more, cursor


ACCOUNT_KEYS_SQL = "SELECT id FROM keys WHERE account = ? AND revoked = 0 ORDER BY created, id"

READ_MODEL = ReadModel(name="directory", schema=SCHEMA, apply=apply)
