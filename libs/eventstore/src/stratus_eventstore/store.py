"""One `eventsourcing` application per service and partition (a mode, or `main`).

The backend is configuration alone: `PERSISTENCE_MODULE` (default `eventsourcing.sqlite`) and the
library's own variables. SQLite gets one file per service and partition under the data dir;
PostgreSQL gets one table set per service and partition (`<service>_<partition>_events`, and
`…_snapshots`). Snapshotting is on: the service kit writes snapshots of long aggregates into the
library's snapshot store (`stratus_eventstore.snapshots`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from eventsourcing.application import Application
from eventsourcing.persistence import TrackingRecorder
from eventsourcing.utils import get_topic

from stratus_eventstore.mapper import MsgspecMapper, NullTranscoder


class Store(Application[Any]):
    """An event-sourced application whose events are msgspec Structs. The service kit reads and
    writes through its `events`, `snapshots` and `recorder` (the library's event stores and
    application recorder), not through its repository: the kit keeps its own aggregate cache."""

    env: ClassVar[dict[str, str]] = {
        "MAPPER_TOPIC": get_topic(MsgspecMapper),
        "TRANSCODER_TOPIC": get_topic(NullTranscoder),
        "IS_SNAPSHOTTING_ENABLED": "y",
    }

    def tracking(self) -> TrackingRecorder:
        """A tracking recorder in the same database, for positions such as the outbox relay's."""
        recorder = self.factory.tracking_recorder()
        assert isinstance(recorder, TrackingRecorder)
        return recorder


def drop_store(service: str, partition: str, data_dir: Path) -> None:
    """Delete a partition's events, snapshots and tracking for good (the sandbox reset drops the
    test partition of an earlier epoch): its SQLite files, or its PostgreSQL tables."""
    env = store_env(service, partition, data_dir)
    if env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
        store = open_store(service, partition, data_dir)
        try:
            recorder: Any = store.recorder
            tables = [recorder.events_table_name, store.tracking().tracking_table_name]  # type: ignore[attr-defined]
            if store.snapshots is not None:
                tables.append(store.snapshots.recorder.events_table_name)  # type: ignore[attr-defined]
            from psycopg import sql

            with recorder.datastore.transaction(commit=True) as cursor:
                for table in tables:
                    name = sql.Identifier(recorder.datastore.schema, table)
                    cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
        finally:
            store.close()
        return
    remove_sqlite(Path(env["SQLITE_DBNAME"]))


def remove_sqlite(path: Path) -> None:
    """Delete an SQLite database and its write-ahead log and shared-memory files."""
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        each.unlink(missing_ok=True)


def store_env(service: str, partition: str, data_dir: Path) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": os.environ.get("PERSISTENCE_MODULE", "eventsourcing.sqlite"),
        "SQLITE_DBNAME": str(data_dir / f"{service}-{partition}.db"),
        "SQLITE_LOCK_TIMEOUT": "10",
        "CREATE_TABLE": "y",
    }


def open_store(service: str, partition: str, data_dir: Path, cls: type[Store] = Store) -> Store:
    data_dir.mkdir(parents=True, exist_ok=True)
    # The application name prefixes PostgreSQL table names, keeping partitions apart.
    store_cls = type(f"{cls.__name__}_{service}_{partition}", (cls,), {"name": f"{service}_{partition}"})
    return store_cls(env=store_env(service, partition, data_dir))
