"""Service-side at-most-once commands (`stratus_kit.idempotency`) against every event-store
backend, through the services' registries: a command carrying an Idempotency-Key is applied once,
its index record commits in the same transaction as its events, concurrent duplicates get the
winner's reply, and records expire after 24 hours."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from stratus_bus import Replayed
from stratus_contracts import identity as ic
from stratus_contracts import keys
from stratus_contracts import projects as c
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_contracts.ids import decode_id
from stratus_kit import Decision, Local, Partition, State, open_local
from stratus_kit.idempotency import CommandRecorded, record_id
from stratus_projects import bootstrap as projects_bootstrap
from stratus_projects import handlers as project_handlers
from stratus_projects.environments import crypto

from .support import Clock, Services


def alice(key: str | None, request: int = 1) -> Caller:
    # Each attempt is a new HTTP request: another request id (and maybe address), same key.
    return Caller(
        account_id="acct_alice",
        mode="live",
        key_id="key_alice",
        request_id=f"req_{request}",
        ip=f"10.0.0.{request % 250}",
        idempotency_key=key,
    )


@pytest.fixture
def projects(services: Services, clock: Clock) -> Local:
    return services.projects(clock=clock)


def _result(answer: Any) -> Any:
    """What the caller gets: a replay carries the first reply, decoded to the message's result type."""
    return answer.result if isinstance(answer, Replayed) else answer


def _names(projects: Local) -> list[str]:
    return sorted(p.name for p in projects.call(c.ListProjects(caller=alice(None), limit=100)).data)


def _record(part: Partition, key: str) -> list[CommandRecorded]:
    return list(part.store.events.get(record_id("acct_alice", "live", key)))


def test_a_repeated_command_is_applied_once_and_answered_from_its_record(projects: Local) -> None:
    first = projects.call(c.CreateProject(caller=alice("k-1", 1), name="web"))
    again = projects.call(c.CreateProject(caller=alice("k-1", 2), name="web"))
    assert isinstance(first, c.Project) and isinstance(again, Replayed)
    assert _result(again) == first
    assert _names(projects) == ["web"]
    [record] = _record(projects.partitions["live"], "k-1")
    assert record.subject == c.CreateProject.subject and record.originator_version == 1
    # Without a key nothing changes: every command is decided (here: the name is taken).
    with pytest.raises(DomainError, match="already exists"):
        projects.call(c.CreateProject(caller=alice(None), name="web"))


def test_the_record_commits_in_the_same_transaction_as_the_events(projects: Local) -> None:
    part = projects.partitions["live"]
    before = part.store.recorder.max_notification_id() or 0
    projects.call(c.CreateProject(caller=alice("k-atomic"), name="atomic"))
    recorded = part.store.recorder.select_notifications(before, 20, inclusive_of_start=False)
    topics = [n.topic.rsplit(":", 1)[-1] for n in recorded]
    # The project, its name claim and its default environments (made in the project's own
    # commit), then the record: one transaction.
    assert topics == [
        "ProjectCreated",
        "ProjectNameClaimed",
        "EnvironmentCreated",
        "EnvNameClaimed",
        "EnvironmentCreated",
        "EnvNameClaimed",
        "EnvironmentsSeeded",
        "CommandRecorded",
    ]


def test_a_losing_commit_commits_none_of_its_events(services: Services, clock: Clock) -> None:
    """A rival record lands between our decision and our commit: the commit fails on the
    record's version, so the project it carried is not created, and the rival's fingerprint wins."""
    rival = CommandRecorded(
        originator_id=record_id("acct_alice", "live", "k-race"),
        originator_version=1,
        timestamp=clock.now,
        subject=c.CreateProject.subject,
        fingerprint="another request",
        reply=b"",
    )
    raced = threading.Event()

    def racing_create(cmd: c.CreateProject, state: State, now: Any) -> Decision:
        decision = project_handlers.create_project(cmd, state, now)  # decided, not yet committed
        if not raced.is_set():
            raced.set()
            state.partition.store.events.put([rival])  # the rival commits first
        return decision

    def table(keyring: crypto.Keyring) -> dict[type, Any]:
        return {**projects_bootstrap.table(keyring), c.CreateProject: racing_create}

    service = dataclasses.replace(projects_bootstrap.SERVICE, handlers=table)
    deps = {"keyring": crypto.Keyring(current=None)}
    with open_local(service, directory=services.directory, deps=deps, clock=clock) as racing:
        with pytest.raises(DomainError) as info:
            racing.call(c.CreateProject(caller=alice("k-race"), name="lost"))
        assert raced.is_set() and info.value.reply.code == "idempotency_key_reused"
        assert _names(racing) == []
        assert [r.fingerprint for r in _record(racing.partitions["live"], "k-race")] == ["another request"]


def test_the_same_key_with_another_command_is_refused(projects: Local) -> None:
    projects.call(c.CreateProject(caller=alice("k-2"), name="api"))
    for cmd in [
        c.CreateProject(caller=alice("k-2"), name="api", description="other"),
        c.CreateProject(caller=msgspec.structs.replace(alice("k-2"), key_id="key_other"), name="api"),
        c.DeleteProject(caller=alice("k-2"), project_id="prj_" + "a" * 26),
    ]:
        with pytest.raises(DomainError) as info:
            projects.call(cmd)
        assert info.value.reply.code == "idempotency_key_reused"
    assert _names(projects) == ["api"]


def test_concurrent_duplicates_create_one_project_and_share_its_reply(
    services: Services, projects: Local, clock: Clock
) -> None:
    # Two replicas: duplicates meet in one writer's batch and between the replicas' commits.
    replicas = (projects, services.projects(clock=clock))
    answers: list[Any] = []
    barrier = threading.Barrier(16)

    def attempt(index: int) -> None:
        barrier.wait()
        answers.append(
            replicas[index % 2].call(c.CreateProject(caller=alice("k-burst", index), name="burst"))
        )

    threads = [threading.Thread(target=attempt, args=(index,)) for index in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 16
    results = [_result(a) for a in answers]
    assert sum(not isinstance(a, Replayed) for a in answers) == 1
    assert all(r == results[0] for r in results)
    assert _names(projects) == ["burst"]
    assert len(_record(projects.partitions["live"], "k-burst")) == 1


def test_a_failed_command_is_not_recorded(projects: Local) -> None:
    blocker = projects.call(c.CreateProject(caller=alice(None), name="taken"))
    with pytest.raises(DomainError):
        projects.call(c.CreateProject(caller=alice("k-3"), name="taken"))
    assert _record(projects.partitions["live"], "k-3") == []
    projects.call(c.DeleteProject(caller=alice(None), project_id=blocker.id))
    retried = projects.call(c.CreateProject(caller=alice("k-3"), name="taken"))
    assert isinstance(retried, c.Project) and retried.id != blocker.id


def test_every_write_of_a_project_and_its_team_is_at_most_once(projects: Local) -> None:
    created = projects.call(c.CreateProject(caller=alice(None), name="team"))
    steps = [
        c.UpdateProject(caller=alice("u"), project_id=created.id, description="v2"),
        c.PutProjectMember(caller=alice("p"), project_id=created.id, member_id="mem_1", role="admin"),
        c.RemoveProjectMember(caller=alice("r"), project_id=created.id, member_id="mem_1"),
        c.DeleteProject(caller=alice("d"), project_id=created.id),
    ]
    for cmd in steps:
        first = projects.call(cmd)
        again = projects.call(cmd)
        assert isinstance(again, Replayed), type(cmd)
        assert _result(again) == first, type(cmd)
    # Applied once each: created, updated, member added and removed, deleted.
    assert projects.partitions["live"].load(decode_id("prj", created.id)).version == 5


def test_records_expire_after_a_day(projects: Local, clock: Clock) -> None:
    projects.call(c.CreateProject(caller=alice("k-old"), name="monday"))
    clock.now += timedelta(hours=24, seconds=1)
    # A day later the key is free again, even for another command.
    tuesday = projects.call(c.CreateProject(caller=alice("k-old"), name="tuesday"))
    assert isinstance(tuesday, c.Project)
    assert [r.originator_version for r in _record(projects.partitions["live"], "k-old")] == [1, 2]
    assert isinstance(projects.call(c.CreateProject(caller=alice("k-old"), name="tuesday")), Replayed)
    assert _names(projects) == ["monday", "tuesday"]


@pytest.fixture
def identity(services: Services, clock: Clock) -> Local:
    return services.identity(clock=clock)


def _new_key(caller: Caller) -> ic.CreateKey:
    # The gateway makes a new secret for every attempt: a retry carries another hash.
    secret = keys.generate("live")
    return ic.CreateKey(
        caller=caller,
        secret_hash=keys.hash_secret(secret),
        hint=keys.hint(secret),
        name="ci",
        scopes=("read",),
    )


def test_a_retried_key_creation_makes_one_key_despite_a_new_secret(identity: Local) -> None:
    first = identity.call(_new_key(alice("k-key", 1)))
    again = identity.call(_new_key(alice("k-key", 2)))
    assert isinstance(again, Replayed)
    assert _result(again) == first
    listed = identity.call(ic.ListKeys(caller=alice(None)))
    assert [k.id for k in listed.data] == [first.id]
    # A different key request under the same Idempotency-Key is still refused.
    other = msgspec.structs.replace(_new_key(alice("k-key", 3)), name="other")
    with pytest.raises(DomainError, match="different request"):
        identity.call(other)


def test_identity_commands_without_a_caller_are_not_wrapped(identity: Local) -> None:
    created = identity.call(_new_key(alice(None)))
    revoked = identity.call(ic.RevokeKey(account_id="acct_alice", key_id=created.id))
    assert not isinstance(revoked, Replayed) and revoked.revoked is not None
