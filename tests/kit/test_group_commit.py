"""Group commit: commands that queue while the partition's writer is busy are decided together
and committed in one transaction, yet each stays all-or-nothing and is refused on its own.

A `Gate` command (test-only, routed like any other) holds the writer until the test releases it,
so that the commands sent meanwhile form one batch; the store's `events.put` is watched to see
how many transactions the batch took.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from datetime import datetime
from typing import Any

import pytest

from stratus_bus import Replayed
from stratus_contracts import projects as c
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_contracts.messages import Command
from stratus_kit import Local, State

from .conftest import Opener

ALICE = Caller(account_id="acct_alice", mode="live", key_id="key_alice")


class Gate(Command[None], frozen=True, kw_only=True):
    """Holds the writer (while deciding) until `open` is set."""

    mode: str = "live"


class Boom(Command[None], frozen=True, kw_only=True):
    """A command whose handler fails unexpectedly (not a domain refusal)."""

    mode: str = "live"


class Held:
    def __init__(self, local: Local) -> None:
        self.local = local
        self.entered = threading.Event()
        self.open = threading.Event()
        self.transactions: list[list[Any]] = []
        local.registry.handlers[Gate] = self._gate
        local.registry.handlers[Boom] = self._boom
        events = local.partitions["live"].store.events
        put = events.put

        def counted(domain_events: Any, **kwargs: Any) -> Any:
            recordings = put(domain_events, **kwargs)  # raises on a conflict: not counted
            self.transactions.append(list(domain_events))
            return recordings

        events.put = counted  # type: ignore[method-assign]

    def _gate(self, message: Gate, state: State, now: datetime) -> tuple[list[Any], None]:
        self.entered.set()
        assert self.open.wait(10), "the test never opened the gate"
        return [], None

    @staticmethod
    def _boom(message: Boom, state: State, now: datetime) -> tuple[list[Any], None]:
        raise RuntimeError("a bug in a handler")

    def send(self, message: Any) -> Future[Any]:
        future: Future[Any] = Future()

        def done(result: Any, error: BaseException | None) -> None:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        self.local.registry.dispatch(message, done)
        return future


@pytest.fixture
def held(open_replica: Opener) -> Held:
    return Held(open_replica())


def _code(future: Future[Any]) -> str:
    with pytest.raises(DomainError) as info:
        future.result(10)
    return info.value.reply.code


def _batch(held: Held, *messages: Any) -> list[Future[Any]]:
    """`messages` queued behind a gate, so the writer takes them as one batch once it opens."""
    gate = held.send(Gate())
    assert held.entered.wait(10)
    futures = [held.send(m) for m in messages]
    held.transactions.clear()
    held.open.set()
    gate.result(10)
    return futures


def test_a_batch_commits_once_and_a_broken_rule_refuses_only_its_command(held: Held) -> None:
    a, b, taken, d = _batch(
        held,
        c.CreateProject(caller=ALICE, name="a"),
        c.CreateProject(caller=ALICE, name="b"),
        c.CreateProject(caller=ALICE, name="a"),  # the first of the batch claimed this name
        c.CreateProject(caller=ALICE, name="d"),
    )
    made = [a.result(10), b.result(10), d.result(10)]
    assert _code(taken) == "project_name_taken"
    assert len(held.transactions) == 1  # one transaction (one fsync) for the three creates
    created = [e for e in held.transactions[0] if type(e).__name__ == "ProjectCreated"]
    assert [e.name for e in created] == ["a", "b", "d"]
    listed = held.local.call(c.ListProjects(caller=ALICE, sort="name")).data
    assert listed == sorted(made, key=lambda p: p.name)


def test_a_failing_handler_does_not_take_the_batch_down(held: Held) -> None:
    before, broken, after = _batch(
        held, c.CreateProject(caller=ALICE, name="one"), Boom(), c.CreateProject(caller=ALICE, name="two")
    )
    assert {before.result(10).name, after.result(10).name} == {"one", "two"}
    with pytest.raises(RuntimeError):
        broken.result(10)
    assert len(held.transactions) == 1


def test_duplicates_under_one_idempotency_key_in_one_batch_apply_once(held: Held) -> None:
    keyed = Caller(account_id="acct_alice", mode="live", key_id="key_alice", idempotency_key="k-1")
    first, again, other = _batch(
        held,
        c.CreateProject(caller=keyed, name="once"),
        c.CreateProject(caller=keyed, name="once"),
        c.CreateProject(caller=keyed, name="another"),  # the key reused for another request
    )
    made = first.result(10)
    replay = again.result(10)
    assert isinstance(replay, Replayed)
    assert _code(other) == "idempotency_key_reused"
    assert [p.id for p in held.local.call(c.ListProjects(caller=ALICE)).data] == [made.id]


def test_a_batch_that_loses_a_race_to_another_replica_is_decided_again(
    held: Held, open_replica: Opener
) -> None:
    other = open_replica()
    # The gate sits inside the batch: "x" is decided (its name free), then, while the batch waits,
    # another replica takes the name and commits. The batch's commit then conflicts on the name's
    # index; decided again on fresh state, "x" is refused and "y" still commits.
    x = held.send(c.CreateProject(caller=ALICE, name="x"))
    gate = held.send(Gate())
    y = held.send(c.CreateProject(caller=ALICE, name="y"))
    assert held.entered.wait(10)
    theirs = other.call(c.CreateProject(caller=ALICE, name="x"))
    held.open.set()
    gate.result(10)
    assert _code(x) == "project_name_taken"
    assert y.result(10).name == "y"
    names = {p.name: p.id for p in held.local.call(c.ListProjects(caller=ALICE)).data}
    assert names == {"x": theirs.id, "y": y.result(10).id}


def test_an_idle_writer_does_not_wait_for_company(held: Held) -> None:
    # No gate: a single command is decided and committed on its own, at once.
    made = held.local.call(c.CreateProject(caller=ALICE, name="alone"))
    assert held.transactions and held.transactions[-1][0].name == "alone"
    assert held.local.call(c.GetProject(caller=ALICE, project_id=made.id)) == made
