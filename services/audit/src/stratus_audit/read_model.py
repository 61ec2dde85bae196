"""The audit read model: one SQLite file per mode with every public event of the stream
(`events`, the event feed) and a row for each audit-relevant one (`audit_events`, the audit log).

Rows come only from the JetStream stream `EVENTS` (see `consumers.py`); the event id is the
primary key, so a redelivered or re-published event is written once. Each file also records the
highest stream sequence it has handled, in the same transaction as the rows: the consumer
compares it with the durable consumer's ack floor on start, and re-reads the stream when the
file was lost.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from stratus_contracts import cursors
from stratus_contracts.audit import (
    AuditActor,
    AuditEvent,
    AuditPage,
    AuditResource,
    EventPage,
    GetEvent,
    ListAuditEvents,
    ListEvents,
)
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_contracts.events import Event, Mode

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_events (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    mode TEXT NOT NULL,
    type TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT,
    project_id TEXT,
    environment TEXT,
    actor_key_id TEXT,
    actor_member_id TEXT,
    actor_token_id TEXT,
    ip TEXT,
    request_id TEXT,
    created TEXT NOT NULL,
    stream_seq INTEGER NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_account_created ON audit_events (account, created, id);
CREATE INDEX IF NOT EXISTS audit_actor_key ON audit_events (account, actor_key_id);
CREATE INDEX IF NOT EXISTS audit_actor_member ON audit_events (account, actor_member_id);
CREATE TABLE IF NOT EXISTS audit_refs (
    ref TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (ref, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    type TEXT NOT NULL,
    project_id TEXT,
    environment TEXT,
    created TEXT NOT NULL,
    stream_seq INTEGER NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_account_seq ON events (account, stream_seq);
CREATE TABLE IF NOT EXISTS read_model_position (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL,
    stream_created TEXT
);
INSERT OR IGNORE INTO read_model_position (id, position) VALUES (1, 0);
"""
_TABLES = ("audit_events", "audit_refs", "events", "read_model_position")

# Fields that must never reach the audit log, whatever an event carries (removed at any depth).
REDACTED = frozenset({"secret", "secret_hash", "token", "value", "password", "private_key"})
# When `data` has no `id`, the resource is the first of these present: the most specific first.
_RESOURCE_KEYS = (
    "member_id",
    "key_id",
    "token_id",
    "secret_id",
    "environment_id",
    "project_id",
    "account_id",
)

_json = msgspec.json.Encoder()
_ID = re.compile(r"^[a-z]{2,8}_[a-z2-7]{26}$")  # `stratus_contracts.ids.encode_id`'s shape


def ts(value: datetime) -> str:
    # Fixed width, UTC, so that text order is time order.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Row(NamedTuple):
    id: str
    account: str
    mode: str
    type: str
    resource_type: str
    resource_id: str | None
    project_id: str | None
    environment: str | None
    actor_key_id: str | None
    actor_member_id: str | None
    actor_token_id: str | None
    ip: str | None
    request_id: str | None
    created: str
    stream_seq: int
    event: bytes
    refs: tuple[str, ...]
    audited: bool = True  # in the audit log too, not only in the event feed


_COLUMNS = Row._fields[:16]  # refs live in their own table
_EVENT_COLUMNS = ("id", "account", "type", "project_id", "environment", "created", "stream_seq", "event")


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items() if k not in REDACTED}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _resource(event: Event) -> tuple[str, str | None]:
    data = event.data
    kind = event.type.partition(".")[0]
    if isinstance(data.get("id"), str):
        obj = data.get("object")
        return (obj if isinstance(obj, str) else kind), data["id"]
    for key in _RESOURCE_KEYS:
        if isinstance(data.get(key), str):
            if event.type.startswith("project.member_") and key == "member_id":
                return "project_member", data[key]
            return key.removesuffix("_id"), data[key]
    return kind, None


def _refs(data: dict[str, Any]) -> tuple[str, ...]:
    """Every id the event refers to at the top level of `data`: `id`, any `*_id`, any value shaped
    like a Stratus id (`"project": "prj_…"`), and the items of `*_ids` lists."""
    refs: list[str] = []
    for key, value in data.items():
        if isinstance(value, str) and (key == "id" or key.endswith("_id") or _ID.match(value)):
            refs.append(value)
        elif key.endswith("_ids") and isinstance(value, list):
            refs += [v for v in value if isinstance(v, str)]
    return tuple(dict.fromkeys(refs))


def _project(event: Event) -> str | None:
    """The project an event belongs to, if any (restricted keys see only their projects')."""
    data = event.data
    for key in ("project_id", "project"):
        if isinstance(data.get(key), str):
            return data[key]
    if data.get("object") == "project" and isinstance(data.get("id"), str):
        return data["id"]
    return None


def to_row(event: Event, stream_seq: int, audited: bool = True) -> Row:
    """The row of one public event (`data` stripped of secret fields)."""
    event = msgspec.structs.replace(event, data=redact(event.data))
    resource_type, resource_id = _resource(event)
    actor = event.actor
    environment = event.data.get("environment")
    refs = _refs(event.data)
    if resource_id is not None and resource_id not in refs:
        refs = (resource_id, *refs)
    return Row(
        id=event.id,
        account=event.account,
        mode=event.mode,
        type=event.type,
        resource_type=resource_type,
        resource_id=resource_id,
        project_id=_project(event),
        environment=environment if isinstance(environment, str) else None,
        actor_key_id=actor.key_id if actor else None,
        actor_member_id=actor.member_id if actor else None,
        actor_token_id=actor.token_id if actor else None,
        ip=actor.ip if actor else None,
        request_id=actor.request_id if actor else None,
        created=ts(event.created),
        stream_seq=stream_seq,
        event=_json.encode(event),
        refs=refs,
        audited=audited,
    )


def path_for(data_dir: Path, mode: str, replica: str | None = None) -> Path:
    """A mode's file; each replica after the first has its own (`STRATUS_REPLICA_ID`)."""
    own = "" if replica is None else f"{replica}-"
    return data_dir / f"audit-{own}{mode}.audit.read.db"


class AuditReadModel:
    """One mode's audit rows in a local SQLite file; thread-safe (calls run in worker threads)."""

    def __init__(self, path: Path | str, mode: Mode) -> None:
        self.path = str(path)
        self.mode = mode
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # The consumer acks a message once its row is committed: commits must survive a crash.
        self._db.execute("PRAGMA synchronous=FULL")
        had_feed = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone()
        self._db.executescript(SCHEMA)
        if not had_feed:
            # A file from before the event feed: read the stream again to fill it (event ids make
            # the audit rows already there no-ops).
            self._db.execute("UPDATE read_model_position SET position = 0 WHERE id = 1")

    def position(self) -> int:
        """The highest stream sequence this read model has handled (0: it has seen nothing)."""
        with self._lock:
            return self._db.execute("SELECT position FROM read_model_position WHERE id = 1").fetchone()[0]

    def stream_created(self) -> str | None:
        with self._lock:
            return self._db.execute("SELECT stream_created FROM read_model_position WHERE id = 1").fetchone()[
                0
            ]

    def write(self, rows: Iterable[Row], position: int, stream_created: str | None = None) -> int:
        """Insert `rows` (an id already present is skipped) and advance the position, atomically;
        return how many rows were new."""
        new = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    self._db.execute(
                        f"INSERT OR IGNORE INTO events ({', '.join(_EVENT_COLUMNS)})"  # noqa: S608
                        f" VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})",
                        (
                            row.id,
                            row.account,
                            row.type,
                            row.project_id,
                            row.environment,
                            row.created,
                            row.stream_seq,
                            row.event,
                        ),
                    )
                    if not row.audited:
                        continue
                    cursor = self._db.execute(
                        f"INSERT OR IGNORE INTO audit_events ({', '.join(_COLUMNS)})"  # noqa: S608
                        f" VALUES ({', '.join('?' * len(_COLUMNS))})",
                        row[: len(_COLUMNS)],
                    )
                    if cursor.rowcount:
                        new += 1
                        self._db.executemany(
                            "INSERT OR IGNORE INTO audit_refs (ref, event_id) VALUES (?, ?)",
                            [(ref, row.id) for ref in row.refs],
                        )
                self._db.execute(
                    "UPDATE read_model_position SET position = max(position, ?),"
                    " stream_created = coalesce(?, stream_created) WHERE id = 1",
                    (position, stream_created),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return new

    def reset_position(self, stream_created: str | None) -> None:
        """Forget the position (the stream was recreated): the next read starts from its beginning."""
        with self._lock:
            self._db.execute(
                "UPDATE read_model_position SET position = 0, stream_created = ? WHERE id = 1",
                (stream_created,),
            )

    def drop(self) -> None:
        """Drop every row and the position: it is empty, as if its file had been deleted."""
        with self._lock:
            for table in _TABLES:
                self._db.execute(f"DROP TABLE IF EXISTS {table}")
            self._db.executescript(SCHEMA)

    def clear(self) -> None:
        """Delete every row but keep the position (the sandbox reset: the stream no longer holds
        them either, so nothing is read again)."""
        with self._lock:
            for table in _TABLES:
                if table != "read_model_position":
                    self._db.execute(f"DELETE FROM {table}")  # noqa: S608 (our own table names)

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM audit_events").fetchone()[0]

    def query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._db.execute(sql, params)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    def list(self, q: ListAuditEvents) -> AuditPage:
        return page(self.query(*list_sql(q)), q)

    def events(self, q: ListEvents) -> EventPage:
        return feed(self, q)

    def event(self, q: GetEvent) -> Event[dict[str, Any]]:
        return one_event(self, q)

    def close(self) -> None:
        with self._lock:  # a write still running in a worker thread finishes first
            self._db.close()


# -- the list query ---------------------------------------------------------------------------

_CURSOR_TAG = "audit"


def encode_cursor(created: str, row_id: str) -> str:
    return cursors.encode(_CURSOR_TAG, created, row_id)


def decode_cursor(cursor: str) -> tuple[str, str]:
    created, row_id = cursors.decode(cursor, _CURSOR_TAG, 2)
    return created, row_id


def _placeholders(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


def _restricted(caller: Caller, where: list[str], params: list[object]) -> None:
    # A key restricted to projects or environments sees only the events of projects it may see;
    # account-wide changes (keys, members) are for unrestricted keys.
    if caller.project_ids is not None or caller.environments is not None:
        where.append("project_id IS NOT NULL")
        if caller.project_ids is not None:
            where.append(f"project_id IN ({_placeholders(caller.project_ids)})")
            params += caller.project_ids
        if caller.environments is not None:
            where.append(f"(environment IS NULL OR environment IN ({_placeholders(caller.environments)}))")
            params += caller.environments


def _of_type(event_type: str | None, where: list[str], params: list[object]) -> None:
    """An exact event type, or a prefix ending in `.` or `*` (`key.`, `project.member_*`)."""
    if event_type is None:
        return
    prefix = event_type.removesuffix("*")
    if event_type.endswith(("*", ".")):
        where.append("substr(type, 1, ?) = ?")
        params += [len(prefix), prefix]
    else:
        where.append("type = ?")
        params.append(event_type)


def _created(gte: datetime | None, lt: datetime | None, where: list[str], params: list[object]) -> None:
    if gte is not None:
        where.append("created >= ?")
        params.append(ts(gte))
    if lt is not None:
        where.append("created < ?")
        params.append(ts(lt))


def list_sql(q: ListAuditEvents) -> tuple[str, list[object]]:
    caller = q.caller
    where = ["account = ?", "mode = ?"]
    params: list[object] = [caller.account_id, caller.mode]
    _restricted(caller, where, params)
    if q.actor is not None:
        where.append("(actor_key_id = ? OR actor_member_id = ? OR actor_token_id = ?)")
        params += [q.actor, q.actor, q.actor]
    _of_type(q.action, where, params)
    if q.resource is not None:
        where.append("id IN (SELECT event_id FROM audit_refs WHERE ref = ?)")
        params.append(q.resource)
    _created(q.created_gte, q.created_lt, where, params)
    if q.cursor:
        created, row_id = decode_cursor(q.cursor)
        where.append("(created, id) < (?, ?)")  # a row value: SQLite seeks the index to it
        params += [created, row_id]
    # Only constants and placeholders are interpolated; values travel as parameters.
    sql = (
        f"SELECT id, created, event FROM audit_events WHERE {' AND '.join(where)}"  # noqa: S608
        " ORDER BY created DESC, id DESC LIMIT ?"
    )
    params.append(q.limit + 1)
    return sql, params


_event_decoder = msgspec.json.Decoder(Event)


def to_audit_event(stored: bytes | str) -> AuditEvent:
    event = _event_decoder.decode(stored)
    resource_type, resource_id = _resource(event)
    actor = event.actor
    return AuditEvent(
        id=event.id,
        action=event.type,
        created=event.created,
        mode=event.mode,
        actor=AuditActor(
            key_id=actor.key_id,
            member_id=actor.member_id,
            token_id=actor.token_id,
            ip=actor.ip,
            request_id=actor.request_id,
        )
        if actor
        else AuditActor(),
        resource=AuditResource(type=resource_type, id=resource_id),
        data=event.data,
    )


def page(rows: list[sqlite3.Row], q: ListAuditEvents) -> AuditPage:
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    next_cursor = encode_cursor(rows[-1]["created"], rows[-1]["id"]) if has_more else None
    return AuditPage(
        data=[to_audit_event(r["event"]) for r in rows], has_more=has_more, next_cursor=next_cursor
    )


# -- the event feed -----------------------------------------------------------------------------

_FEED_TAG = "events"


def feed_sql(q: ListEvents, after_seq: int | None) -> tuple[str, list[object]]:
    caller = q.caller
    where = ["account = ?"]
    params: list[object] = [caller.account_id]
    _restricted(caller, where, params)
    _of_type(q.type, where, params)
    if q.project is not None:
        where.append("project_id = ?")
        params.append(q.project)
    _created(q.created_gte, q.created_lt, where, params)
    if after_seq is not None:
        where.append("stream_seq > ?")
        params.append(after_seq)
        order = "ASC"
    else:
        order = "DESC"
        if q.cursor:
            (before,) = cursors.decode(q.cursor, _FEED_TAG, 1)
            where.append("stream_seq < ?")
            params.append(int(before) if before.isdigit() else 0)
    sql = (
        f"SELECT stream_seq, event FROM events WHERE {' AND '.join(where)}"  # noqa: S608 - constants
        f" ORDER BY stream_seq {order} LIMIT ?"
    )
    params.append(q.limit + 1)
    return sql, params


_feed_decoder = msgspec.json.Decoder(Event[dict[str, Any]])


def event_seq(model: AuditReadModel, caller: Caller, event_id: str) -> int | None:
    rows = model.query(
        "SELECT stream_seq FROM events WHERE id = ? AND account = ?", (event_id, caller.account_id)
    )
    return rows[0][0] if rows else None


def feed(model: AuditReadModel, q: ListEvents) -> EventPage:
    after_seq = None
    if q.after is not None:
        after_seq = event_seq(model, q.caller, q.after)
        if after_seq is None:
            raise DomainError("event_not_found", f"No event {q.after!r} in this account to resume after.")
    rows = model.query(*feed_sql(q, after_seq))
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    data = [_feed_decoder.decode(r["event"]) for r in rows]
    next_cursor = (
        cursors.encode(_FEED_TAG, str(rows[-1]["stream_seq"])) if has_more and after_seq is None else None
    )
    last = data[-1].id if data and after_seq is not None else (data[0].id if data else None)
    return EventPage(data=data, has_more=has_more, next_cursor=next_cursor, last_id=last)


def one_event(model: AuditReadModel, q: GetEvent) -> Event[dict[str, Any]]:
    where = ["id = ?", "account = ?"]
    params: list[object] = [q.event_id, q.caller.account_id]
    _restricted(q.caller, where, params)
    rows = model.query(f"SELECT event FROM events WHERE {' AND '.join(where)}", params)  # noqa: S608
    if not rows:
        raise DomainError("event_not_found", f"No event {q.event_id!r} in this account.")
    return _feed_decoder.decode(rows[0]["event"])
