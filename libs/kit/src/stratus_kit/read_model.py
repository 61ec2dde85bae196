"""Read models: tables in a local SQLite file, kept current from a partition's notification log.

A service declares a `ReadModel` (its name, schema, schema version and `apply(db, event)`); the
partition opens it as a `LocalReadModel` at `<data>/<service>-<partition>.<name>.read.db` and
feeds it every event it commits or sees committed by another replica. The file records the last
notification it applied in the same transaction as its rows, so it never half-applies an event
and never applies one twice (two processes may even share the file). Dropping the file, or
`rebuild()`, replays the log from the start: the event log stays the source of truth.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Apply = Callable[[sqlite3.Connection, Any], None]
# (notification id, domain event) in log order
Entry = tuple[int, Any]


@dataclass(frozen=True)
class ReadModel:
    """A service's read model: bump `version` when `schema` changes and the file is rebuilt from
    the log when the service opens it."""

    name: str
    schema: str
    apply: Apply
    version: int = 1
    # A table whose row count `rebuild` reports (`stratus rebuild` prints it per partition).
    counted: str | None = None


class LocalReadModel:
    def __init__(self, path: Path | str, spec: ReadModel) -> None:
        self.path = str(path)
        self.spec = spec
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A read model is a cache of the log: losing its last commits to a power cut costs a
        # catch-up, never data, so it does not wait for the disk.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self.stale = self._db.execute("PRAGMA user_version").fetchone()[0] != spec.version
        self._create()

    def _create(self) -> None:
        self._db.executescript(
            self.spec.schema
            + "\nCREATE TABLE IF NOT EXISTS read_model_position (id INTEGER PRIMARY KEY CHECK (id = 1),"
            " position INTEGER NOT NULL);"
            "\nINSERT OR IGNORE INTO read_model_position (id, position) VALUES (1, 0);"
        )

    def position(self) -> int:
        with self._lock:
            return self._position()

    def _position(self) -> int:
        return self._db.execute("SELECT position FROM read_model_position WHERE id = 1").fetchone()[0]

    def advance(self, entries: Sequence[Entry]) -> int:
        """Apply the entries after the file's position (in one transaction); how many applied."""
        if not entries:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                position = self._position()
                applied = 0
                for notification_id, event in entries:
                    if notification_id > position:
                        self.spec.apply(self._db, event)
                        applied += 1
                last = entries[-1][0]
                if last > position:
                    self._db.execute("UPDATE read_model_position SET position = ? WHERE id = 1", (last,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return applied

    def drop(self) -> None:
        """Drop every table (the partition then replays the whole log into it)."""
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
            self._db.execute(f"PRAGMA user_version = {int(self.spec.version)}")
            self.stale = False

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._db.execute(sql, tuple(params))
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    def count(self) -> int:
        if self.spec.counted is None:
            return 0
        return self.query(f'SELECT count(*) FROM "{self.spec.counted}"')[0][0]  # noqa: S608 - a constant

    def close(self) -> None:
        self._db.close()
