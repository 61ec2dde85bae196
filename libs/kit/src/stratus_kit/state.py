"""What a handler sees of its partition: `State`, the aggregates as this batch left them.

A handler is a plain function `(message, state, now) -> (events, reply)`. It reads aggregates
with `state.get(id)` and read models with `state.read_model(name)`, decides, and returns the
events to record and the reply to send once they are committed; it never saves. Within one
batch, `get` returns what the batch's earlier decisions made of an aggregate (their events are
staged, not yet committed), so two commands decided together see each other: a second create of
one name finds the first's claim and is refused on its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from stratus_eventstore.model import DomainEvent
from stratus_kit.read_model import LocalReadModel

if TYPE_CHECKING:
    from stratus_kit.partition import Partition

Decision: TypeAlias = tuple[Sequence[DomainEvent], Any]
Handler: TypeAlias = Callable[[Any, "State", datetime], Decision]


class Later:
    """A reply to make only once the decision's events are committed: a list that must show what
    this very commit adds reads the read models then (`Later(lambda: page())`). Not for commands
    under an Idempotency-Key, whose reply is recorded in the commit itself."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


class State:
    __slots__ = ("_staged", "partition")

    def __init__(self, partition: Partition) -> None:
        self.partition = partition
        self._staged: dict[uuid.UUID, Any] = {}

    @property
    def name(self) -> str:
        """The partition's name: the mode (`live`, `test`), or `main`."""
        return self.partition.name

    def get(self, aggregate_id: uuid.UUID | None) -> Any | None:
        """The aggregate's newest state (None: no such aggregate, or no id)."""
        if aggregate_id is None:
            return None
        staged = self._staged
        if aggregate_id in staged:
            return staged[aggregate_id]
        return self.partition.load(aggregate_id)

    def at(self, aggregate_id: uuid.UUID, version: int) -> Any | None:
        """The aggregate as it was at `version` (committed history only)."""
        return self.partition.load(aggregate_id, version)

    def read_model(self, name: str) -> LocalReadModel:
        """A read model, fed up to everything this batch's partition has seen committed."""
        return self.partition.read_model(name)

    def after(self, events: Sequence[DomainEvent]) -> dict[uuid.UUID, Any]:
        """The aggregates `events` change, as they will be once the events apply (not staged)."""
        project = self.partition.project
        states: dict[uuid.UUID, Any] = {}
        for event in events:
            aggregate_id = event.originator_id
            if aggregate_id in states:
                current = states[aggregate_id]
            elif event.originator_version == 1:
                current = None  # a new aggregate: nothing to load
            else:
                current = self.get(aggregate_id)
            states[aggregate_id] = project(current, [event])
        return states

    def stage(self, events: Sequence[DomainEvent]) -> dict[uuid.UUID, Any]:
        """Apply a decision's events for the rest of the batch; the states they make."""
        states = self.after(events)
        self._staged.update(states)
        return states

    @property
    def staged(self) -> dict[uuid.UUID, Any]:
        return self._staged
