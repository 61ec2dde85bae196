"""One `eventsourcing` application per service and partition (a mode, or `main`).

The backend is configuration alone: `PERSISTENCE_MODULE` (default `eventsourcing.sqlite`) and the
library's own variables. SQLite gets one file per service and partition under the data dir;
PostgreSQL gets one table set per service and partition (`<service>_<partition>_events`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, TrackingRecorder
from eventsourcing.utils import get_topic

from stratus_eventstore.mapper import MsgspecMapper, NullTranscoder

T = TypeVar("T")
Projector = Callable[[Any, Any], Any]
CONFLICT_RETRIES = 5


def retry_on_conflict(decide_and_save: Callable[[], T], attempts: int = CONFLICT_RETRIES) -> T:
    """Optimistic concurrency: a racing writer makes our save fail on an aggregate version; decide
    again on fresh state, a few times, then let the conflict surface."""
    for attempt in range(attempts):
        try:
            return decide_and_save()
        except IntegrityError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


class Store(Application[Any]):
    """An event-sourced application whose events are msgspec Structs."""

    env: ClassVar[dict[str, str]] = {
        "MAPPER_TOPIC": get_topic(MsgspecMapper),
        "TRANSCODER_TOPIC": get_topic(NullTranscoder),
    }

    def get_or_none(
        self, aggregate_id: uuid.UUID | None, projector: Projector, version: int | None = None
    ) -> Any:
        """The aggregate rebuilt by `projector`, or None when it has no events (or no id)."""
        if aggregate_id is None:
            return None
        try:
            return self.repository.get(aggregate_id, version=version, projector_func=projector)
        except AggregateNotFoundError:
            return None

    def tracking(self) -> TrackingRecorder:
        """A tracking recorder in the same database, for positions such as the outbox relay's."""
        recorder = self.factory.tracking_recorder()
        assert isinstance(recorder, TrackingRecorder)
        return recorder


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
