"""Read models: tables in a local SQLite file, kept current from a partition's notification log.

A service declares a `ReadModel` (its name, schema, schema version and `apply(db, event)`); the
partition opens all of its read models in one file, `<data>/<service>-<partition>.read.db`, and
feeds them every event it commits or sees committed by another replica, in log order and in one
transaction per batch (one file, so a batch of commits costs one read-model transaction, not one
per read model). The file records, per read model, the last notification it applied in the same
transaction as its rows, so it never half-applies an event and never applies one twice (two
processes may even share the file). Dropping the file, or `rebuild()`, replays the log from the
start: the event log stays the source of truth.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Apply = Callable[[sqlite3.Connection, Any], None]
# (notification id, domain event) in log order
Entry = tuple[int, Any]
_TABLE = re.compile(r"CREATE TABLE(?: IF NOT EXISTS)?\s+\"?(\w+)\"?", re.IGNORECASE)
_POSITIONS = """
CREATE TABLE IF NOT EXISTS read_model_positions (
    name TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    position INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class ReadModel:
    """A service's read model: bump `version` when `schema` changes and its tables are rebuilt
    from the log when the service opens it."""

    name: str
    schema: str
    apply: Apply
    version: int = 1
    # A table whose row count `rebuild` reports (`stratus rebuild` prints it per partition).
    counted: str | None = None

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(_TABLE.findall(self.schema))


class ReadModelFile:
    """One SQLite file holding a partition's read models."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self.lock = threading.Lock()
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # A read model is a cache of the log: losing its last commits to a power cut costs a
        # catch-up, never data, so it does not wait for the disk.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.executescript(_POSITIONS)
        self.models: dict[str, LocalReadModel] = {}

    def open(self, spec: ReadModel) -> LocalReadModel:
        model = LocalReadModel(self, spec)
        self.models[spec.name] = model
        return model

    def advance(self, entries: Sequence[Entry]) -> None:
        """Apply the entries to every read model after its own position, in one transaction."""
        if not entries or not self.models:
            return
        last = entries[-1][0]
        with self.lock:
            positions = dict(self.db.execute("SELECT name, position FROM read_model_positions"))
            behind = [m for m in self.models.values() if positions.get(m.spec.name, 0) < last]
            if not behind:
                return
            self.db.execute("BEGIN IMMEDIATE")
            try:
                # Read again inside the write lock: another process may have applied them.
                positions = dict(self.db.execute("SELECT name, position FROM read_model_positions"))
                for model in behind:
                    position = positions.get(model.spec.name, 0)
                    apply = model.spec.apply
                    for notification_id, event in entries:
                        if notification_id > position:
                            apply(self.db, event)
                    if last > position:
                        self.db.execute(
                            "UPDATE read_model_positions SET position = ? WHERE name = ?",
                            (last, model.spec.name),
                        )
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            self.db.close()


class LocalReadModel:
    """One read model's tables in its partition's file."""

    def __init__(self, file: ReadModelFile, spec: ReadModel) -> None:
        self.file = file
        self.spec = spec
        self.path = file.path
        with file.lock:
            row = file.db.execute(
                "SELECT version FROM read_model_positions WHERE name = ?", (spec.name,)
            ).fetchone()
        # A file written by code with another schema version: its tables are dropped and rebuilt.
        self.stale = row is not None and row[0] != spec.version
        if row is None or self.stale:
            self.drop()
        else:
            self._create()

    def _create(self) -> None:
        self.file.db.executescript(self.spec.schema)

    def position(self) -> int:
        with self.file.lock:
            row = self.file.db.execute(
                "SELECT position FROM read_model_positions WHERE name = ?", (self.spec.name,)
            ).fetchone()
        return row[0] if row else 0

    def advance(self, entries: Sequence[Entry]) -> None:
        """Apply entries to this read model alone (a catch-up of just this one)."""
        if not entries:
            return
        with self.file.lock:
            db = self.file.db
            db.execute("BEGIN IMMEDIATE")
            try:
                position = db.execute(
                    "SELECT position FROM read_model_positions WHERE name = ?", (self.spec.name,)
                ).fetchone()[0]
                for notification_id, event in entries:
                    if notification_id > position:
                        self.spec.apply(db, event)
                if entries[-1][0] > position:
                    db.execute(
                        "UPDATE read_model_positions SET position = ? WHERE name = ?",
                        (entries[-1][0], self.spec.name),
                    )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def drop(self) -> None:
        """Drop this read model's tables and position (the partition then replays the log)."""
        with self.file.lock:
            db = self.file.db
            for table in self.spec.tables:
                db.execute(f'DROP TABLE IF EXISTS "{table}"')
            db.execute(
                "INSERT OR REPLACE INTO read_model_positions (name, version, position) VALUES (?, ?, 0)",
                (self.spec.name, self.spec.version),
            )
            self._create()
            self.stale = False

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self.file.lock:
            cursor = self.file.db.execute(sql, tuple(params))
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    def count(self) -> int:
        if self.spec.counted is None:
            return 0
        return self.query(f'SELECT count(*) FROM "{self.spec.counted}"')[0][0]  # noqa: S608 - a constant

    def close(self) -> None:
        """The file closes with its partition."""
