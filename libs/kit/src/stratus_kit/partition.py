"""A partition: one event store of a service (a mode, or `main`) and what hangs off it.

* **Aggregates** load through a bounded in-memory cache that follows the store's notification
  log: before each batch of work the partition asks the store for its newest notification id
  (one indexed query); when another replica has written since, it reads those notifications and
  moves the cached aggregates they touch forward (or drops them). So a cached aggregate is never
  older than the store was when the batch began, and a batch in which nothing changed costs one
  query, not one per aggregate. A cold aggregate loads from its newest snapshot plus the events
  after it (`snapshots`), so ten thousand events load like a handful.
* **Read models** are fed the same notifications and every local commit, in the same order, when
  a handler first asks for one in a batch (`State.read_model`): a commit does not wait for them,
  and a list after a thousand creates applies the thousand in one transaction. A list still reads
  its own writes, since it catches up first.
* **Commits** (`commit`) write the events of a whole batch of decisions in one transaction —
  one fsync — through the library's event store, then update the cache from the states the batch
  staged (no re-read), remember the events for the read models and the relay, and wake the
  outbox relay.

Everything here runs on the partition's worker threads (`stratus_kit.worker`), never on the
event loop: the store is synchronous.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from eventsourcing.persistence import Notification, Recording
from opentelemetry import trace

from stratus_eventstore import snapshots
from stratus_eventstore.model import DomainEvent
from stratus_eventstore.store import Store, open_store
from stratus_kit.read_model import ReadModel, ReadModelFile

log = logging.getLogger("stratus.kit.partition")
_tracer = trace.get_tracer("stratus.kit")

CATCH_UP_BATCH = 500
RECENT = 8192  # notifications kept in memory for the relay
# Notifications the read models may lag behind the log before the writer feeds them itself, after
# a batch's replies are out: a list after a burst of writes then feeds at most this many, not the
# whole burst (100,000 creates left a first list 700,000 behind, longer than a request's timeout).
FEED_BACKLOG = 1024


def read_path(data_dir: Path, service: str, store_name: str) -> Path:
    return data_dir / f"{service}-{store_name}.read.db"


def cache_size() -> int:
    return int(os.environ.get("STRATUS_AGGREGATE_CACHE", "10000"))


def snapshot_interval() -> int:
    return int(os.environ.get("STRATUS_SNAPSHOT_INTERVAL", "100"))


class Projector:
    """Applies events to states with the services' `mutate` functions (one `singledispatch` per
    aggregate family); snapshots restore their state."""

    def __init__(self, *mutates: Any) -> None:
        self._by_type: dict[type, Callable[[Any, Any], Any]] = {}
        for mutate in mutates:
            for event_type, fn in mutate.registry.items():
                if event_type is not object:
                    self._by_type[event_type] = fn

    def knows(self, event: object) -> bool:
        return type(event) in self._by_type

    def __call__(self, state: Any, events: Iterable[Any]) -> Any:
        by_type = self._by_type
        for event in events:
            if type(event) is snapshots.Snapshot:
                state = snapshots.restore(event)
                continue
            fn = by_type.get(type(event))
            if fn is None:
                raise LookupError(f"no mutate function applies {type(event).__name__}")
            state = fn(event, state)
        return state


def projector(*mutates: Any) -> Projector:
    return Projector(*mutates)


class AggregateCache:
    """The newest states of recently used aggregates, least recently used first out."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._states: OrderedDict[uuid.UUID, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, aggregate_id: uuid.UUID) -> Any | None:
        with self._lock:
            state = self._states.get(aggregate_id)
            if state is not None:
                self._states.move_to_end(aggregate_id)
            return state

    def put(self, aggregate_id: uuid.UUID, state: Any) -> None:
        if self.size <= 0 or state is None:
            return
        with self._lock:
            current = self._states.get(aggregate_id)
            if current is not None and current.version > state.version:
                return  # a newer state got here first (the other worker thread)
            self._states[aggregate_id] = state
            self._states.move_to_end(aggregate_id)
            while len(self._states) > self.size:
                self._states.popitem(last=False)

    def follow(self, event: Any, project: Projector) -> None:
        """Another commit's event: move a cached state that was one version behind, else drop it."""
        aggregate_id = event.originator_id
        with self._lock:
            current = self._states.get(aggregate_id)
            if current is None:
                return
            if current.version == event.originator_version - 1:
                self._states[aggregate_id] = project(current, [event])
            elif current.version < event.originator_version:
                del self._states[aggregate_id]

    def clear(self) -> None:
        with self._lock:
            self._states.clear()

    def __len__(self) -> int:
        return len(self._states)


class Partition:
    store: Store | None

    def __init__(
        self,
        service: str,
        name: str,
        project: Projector,
        read_models: Sequence[ReadModel] = (),
        *,
        data_dir: Path,
        cache: int | None = None,
        snapshot_every: int | None = None,
        store_name: str | None = None,
    ) -> None:
        self.service = service
        self.name = name  # what messages route to: a mode, or `main`
        # What its files and tables are named after: the name, or the test mode's at a sandbox
        # epoch (`stratus_kit.sandbox`: `test_e3`), so that a reset starts from nothing.
        self.store_name = store_name or name
        self.data_dir = data_dir
        self.project = project
        self.store: Store = open_store(service, self.store_name, data_dir)
        self.cache = AggregateCache(cache_size() if cache is None else cache)
        self.snapshot_every = snapshot_interval() if snapshot_every is None else snapshot_every
        self.read_file: ReadModelFile | None = None
        self.read_models: dict[str, Any] = {}
        if read_models:
            self.read_file = ReadModelFile(read_path(data_dir, service, self.store_name))
            self.read_models = {spec.name: self.read_file.open(spec) for spec in read_models}
        self._lock = threading.RLock()  # following the log and applying commits, one at a time
        self._mapper = self.store.mapper
        self._recorder = self.store.recorder
        # Everything up to here is reflected in the cache (which starts empty).
        self.position = self._recorder.max_notification_id() or 0
        # The log's notifications after `_recent_base`, in order, for the relay (which then
        # reads the store only after a restart or when it fell further behind than this).
        self.recent: deque[tuple[int, Any]] = deque(maxlen=RECENT)
        self._recent_ids: deque[int] = deque(maxlen=RECENT)
        self._recent_base = self.position
        self.on_commit: Callable[[], None] | None = None  # wakes the relay
        # Called with the (notification id, event) entries of each local commit, on the thread
        # that committed: a service's own reaction to what it just wrote (its background task
        # hearing of a new deployment), which must not block.
        self.watchers: list[Callable[[list[tuple[int, Any]]], None]] = []
        self._catch_up_read_models()
        self.read_position = self.position  # how far the read models have been fed

    @classmethod
    def stream_fed(cls, service: str, name: str, read_models: dict[str, Any]) -> Partition:
        """A partition without an event store: its read models are fed by consumers (the audit
        log), and its handlers only read them."""
        part = cls.__new__(cls)
        part.service, part.name = service, name
        part.store_name, part.data_dir = name, None
        part.project = Projector()
        part.store = None
        part.cache = AggregateCache(0)
        part.snapshot_every = 0
        part.read_file = None
        part.read_models = read_models
        part._lock = threading.RLock()
        part.position = 0
        part.recent, part._recent_ids, part._recent_base = deque(), deque(), 0
        part.read_position = 0
        part.on_commit = None
        part.watchers = []
        return part

    @property
    def event_sourced(self) -> bool:
        return self.store is not None

    # -- reading ---------------------------------------------------------------------------

    def load(self, aggregate_id: uuid.UUID, version: int | None = None) -> Any | None:
        """The aggregate (at `version`, or its newest state), or None when it has no events."""
        if version is None:
            cached = self.cache.get(aggregate_id)
            if cached is not None:
                return cached
        assert self.store is not None
        # One query answers most loads: an aggregate that does not exist (every uniqueness
        # check of a create) or has a short history. Only a history longer than the snapshot
        # interval asks the snapshot store, and then reads just the events after the snapshot.
        head = self.snapshot_every + 1 if self.snapshot_every > 0 else None
        events = list(self.store.events.get(aggregate_id, lte=version, limit=head))
        if head is not None and len(events) == head and self.store.snapshots is not None:
            found = list(self.store.snapshots.get(aggregate_id, desc=True, limit=1, lte=version))
            snapshot = snapshots.restore(found[0]) if found else None  # type: ignore[arg-type]
            if snapshot is not None:
                state = self.project(
                    snapshot, self.store.events.get(aggregate_id, gt=snapshot.version, lte=version)
                )
            else:
                rest = self.store.events.get(aggregate_id, gt=events[-1].originator_version, lte=version)
                state = self.project(self.project(None, events), rest)
        else:
            state = self.project(None, events)
        if version is None and state is not None:
            self.cache.put(aggregate_id, state)
        return state

    def sync(self) -> None:
        """Bring the cache up to the store's newest notification (the read models follow when
        they are next asked for: `feed_read_models`)."""
        if self.store is None:
            return
        head = self._recorder.max_notification_id() or 0
        if head <= self.position:
            return
        with self._lock:
            while self.position < head:
                batch = self._recorder.select_notifications(
                    self.position, CATCH_UP_BATCH, stop=head, inclusive_of_start=False
                )
                if not batch:
                    break
                entries = self._decode(batch)
                for _, event in entries:
                    self.cache.follow(event, self.project)
                self._remember(entries)
                self.position = batch[-1].id

    def _decode(self, notifications: Sequence[Notification]) -> list[tuple[int, Any]]:
        to_event = self._mapper.to_domain_event
        return [(n.id, to_event(n)) for n in notifications]

    def _remember(self, entries: Sequence[tuple[int, Any]]) -> None:
        for entry in entries:
            if len(self.recent) == self.recent.maxlen:
                self._recent_base = self._recent_ids[0]
            self.recent.append(entry)
            self._recent_ids.append(entry[0])

    def entries_after(self, position: int, limit: int) -> list[tuple[int, Any]] | None:
        """The log's notifications after `position` as this partition has seen them (its own
        commits and what it followed), or None when it does not hold them all any more."""
        with self._lock:
            if position < self._recent_base:
                return None
            start = bisect.bisect_right(self._recent_ids, position)
            return [self.recent[i] for i in range(start, min(len(self.recent), start + limit))]

    def read_model(self, name: str) -> Any:
        """A read model, fed up to everything this partition has committed or followed."""
        self.feed_read_models()
        return self.read_models[name]

    def feed_read_models(self) -> None:
        """Apply to the read models what this partition has committed or followed since they were
        last fed (from memory; from the store when memory no longer reaches back that far)."""
        if self.read_file is None or self.read_position >= self.position:
            return
        with self._lock:
            while self.read_position < self.position:
                entries = self.entries_after(self.read_position, RECENT)
                if entries is None:
                    batch = self._recorder.select_notifications(
                        self.read_position, CATCH_UP_BATCH, stop=self.position, inclusive_of_start=False
                    )
                    entries = self._decode(batch)
                if not entries:
                    break
                self.read_file.advance(entries)
                self.read_position = entries[-1][0]

    def feed_if_behind(self) -> None:
        """Feed the read models when they lag `FEED_BACKLOG` or more behind (the writer calls it
        after each batch, once its replies are out)."""
        if self.read_file is not None and self.position - self.read_position >= FEED_BACKLOG:
            self.feed_read_models()

    def _catch_up_read_models(self) -> None:
        """Replay into each read model what it has not seen (all of it, for a new file)."""
        if self.read_file is None:
            return
        for model in self.read_models.values():
            position = model.position()
            while position < self.position:
                batch = self._recorder.select_notifications(
                    position, CATCH_UP_BATCH, stop=self.position, inclusive_of_start=False
                )
                if not batch:
                    break
                model.advance(self._decode(batch))
                position = batch[-1].id

    def rebuild_read_models(self) -> int:
        """Drop every read model and replay the whole log into it; rows counted afterwards."""
        with self._lock:
            self.sync()
            for model in self.read_models.values():
                model.drop()
            self._catch_up_read_models()
            self.read_position = self.position
        return sum(model.count() for model in self.read_models.values())

    # -- writing ---------------------------------------------------------------------------

    def commit(self, events: Sequence[DomainEvent], states: dict[uuid.UUID, Any]) -> list[Recording[Any]]:
        """Write `events` in one transaction (IntegrityError when another writer got to one of
        their versions first: nothing is written). `states` are the aggregates after them."""
        with _tracer.start_as_current_span("store.save") as span:
            if span.is_recording():
                span.set_attribute("stratus.events", len(events))
            recordings = self.store.events.put(events)
        self._committed(recordings, states)
        self._snapshot(events, states)
        return recordings

    def _committed(self, recordings: list[Recording[Any]], states: dict[uuid.UUID, Any]) -> None:
        with self._lock:
            first = recordings[0].notification.id if recordings else self.position + 1
            if first != self.position + 1 and self._recorder.select_notifications(
                self.position, 1, stop=first - 1, inclusive_of_start=False
            ):
                self.sync()  # others committed before us: apply theirs first, in log order
            entries = [(r.notification.id, r.domain_event) for r in recordings]
            for aggregate_id, state in states.items():
                self.cache.put(aggregate_id, state)
            if entries and entries[-1][0] > self.position:
                # (a reader's `sync` may have taken them in already, between our insert and here)
                self._remember([e for e in entries if e[0] > self.position])
                self.position = entries[-1][0]
        if self.on_commit is not None:
            self.on_commit()
        if entries and self.watchers:
            for watcher in self.watchers:
                try:
                    watcher(entries)
                except Exception:
                    log.exception("a commit watcher failed")

    def _snapshot(self, events: Sequence[DomainEvent], states: dict[uuid.UUID, Any]) -> None:
        """A snapshot of each aggregate whose version passed a multiple of the interval in this
        commit. Snapshots only speed loading up, so one lost to a crash costs nothing."""
        every = self.snapshot_every
        if every <= 0 or self.store.snapshots is None:
            return
        first: dict[uuid.UUID, int] = {}
        for event in events:
            first.setdefault(event.originator_id, event.originator_version)
        due = [
            state
            for aggregate_id, state in states.items()
            if state is not None
            and aggregate_id in first
            and state.version // every > (first[aggregate_id] - 1) // every
        ]
        if due:
            try:
                self.store.snapshots.put([snapshots.take(state) for state in due])
            except Exception:
                log.warning("could not write a snapshot", exc_info=True)

    def close(self) -> None:
        if self.read_file is not None:
            self.read_file.close()
        else:
            for model in self.read_models.values():
                model.close()
        if self.store is not None:
            self.store.close()


__all__ = ["AggregateCache", "Partition", "Projector", "projector"]
