"""Read models: tables in a local SQLite file, kept current from a store's notification log.

The view records the last notification it applied in the same transaction as its rows, so it
never half-applies an event. Dropping the file (or `rebuild()`) replays the log from the start:
the event log stays the source of truth and a view is only ever a cache of it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stratus_eventstore.store import Store

Apply = Callable[[sqlite3.Connection, Any], None]
BATCH = 500


class LocalView:
    def __init__(self, path: Path | str, store: Store, schema: str, apply: Apply) -> None:
        self.path = str(path)
        self.store = store
        self.schema = schema
        self.apply = apply
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._create()

    def _create(self) -> None:
        self._db.executescript(
            self.schema + "\nCREATE TABLE IF NOT EXISTS view_position (id INTEGER PRIMARY KEY CHECK (id = 1),"
            " position INTEGER NOT NULL);"
            "\nINSERT OR IGNORE INTO view_position (id, position) VALUES (1, 0);"
        )

    def position(self) -> int:
        return self._db.execute("SELECT position FROM view_position WHERE id = 1").fetchone()[0]

    def catch_up(self) -> int:
        """Apply every notification after the view's position; return how many were applied."""
        applied = 0
        with self._lock:
            head = self.store.recorder.max_notification_id() or 0
            while (position := self.position()) < head:
                batch = self.store.recorder.select_notifications(
                    position, BATCH, stop=head, inclusive_of_start=False
                )
                if not batch:
                    break
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for notification in batch:
                        self.apply(self._db, self.store.mapper.to_domain_event(notification))
                    self._db.execute("UPDATE view_position SET position = ? WHERE id = 1", (batch[-1].id,))
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                applied += len(batch)
        return applied

    def rebuild(self) -> int:
        """Drop every table of the view and replay the whole log into it."""
        with self._lock:
            tables = [
                row[0]
                for row in self._db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                )
            ]
            for table in tables:
                self._db.execute(f'DROP TABLE IF EXISTS "{table}"')
            self._create()
        return self.catch_up()

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._db.execute(sql, params)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    def close(self) -> None:
        self._db.close()
