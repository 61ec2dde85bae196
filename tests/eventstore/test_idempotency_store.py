"""Service-side at-most-once commands (`stratus_eventstore.idempotency`) against every event-store
backend, through the endpoints the services register: a command carrying an Idempotency-Key is
applied once, its index record commits in the same save as its events, concurrent duplicates get
the winner's reply, and records expire after 24 hours."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from stratus_bus import Replayed
from stratus_contracts import identity as ic
from stratus_contracts import keys, subjects
from stratus_contracts import projects as c
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_contracts.ids import decode_id
from stratus_eventstore.idempotency import AtMostOnce, CommandRecorded, record_id
from stratus_identity import bootstrap as identity_bootstrap
from stratus_identity.handlers import IdentityHandlers
from stratus_projects import bootstrap as projects_bootstrap
from stratus_projects.handlers import Partition, ProjectsHandlers

Endpoint = Callable[[Any], Awaitable[Any]]


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


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def projects(backend: str, clock: Clock) -> Iterator[tuple[ProjectsHandlers, dict[str, Endpoint]]]:
    parts = {mode: projects_bootstrap.open_partition(mode, bus=None) for mode in ("live", "test")}
    h = ProjectsHandlers(parts)
    yield h, {subject: fn for subject, _, fn in projects_bootstrap.endpoints(h, clock=clock)}
    for part in parts.values():
        part.view.close()
        part.store.close()


def _cmd(verb: str) -> str:
    return subjects.command(c.SERVICE, verb)


def _result(answer: Any, tp: type) -> Any:
    """What the bus would send: a replay's stored encoding decodes to the same result."""
    if isinstance(answer, Replayed):
        return msgspec.msgpack.decode(answer.result, type=tp)
    return answer


def _names(h: ProjectsHandlers) -> list[str]:
    return sorted(p.name for p in h.list_sync(c.ListProjects(caller=alice(None), limit=100)).data)


def _record(part: Partition, key: str) -> list[CommandRecorded]:
    return list(part.store.events.get(record_id("acct_alice", "live", key)))


async def test_a_repeated_command_is_applied_once_and_answered_from_its_record(projects) -> None:
    h, endpoints = projects
    create = endpoints[_cmd("create")]
    first = await create(c.CreateProject(caller=alice("k-1", 1), name="web"))
    again = await create(c.CreateProject(caller=alice("k-1", 2), name="web"))
    assert isinstance(first, c.Project) and isinstance(again, Replayed)
    assert _result(again, c.Project) == first
    assert _names(h) == ["web"]
    [record] = _record(h.partitions["live"], "k-1")
    assert record.subject == _cmd("create") and record.originator_version == 1
    # Without a key nothing changes: every command is decided (here: the name is taken).
    with pytest.raises(DomainError, match="already exists"):
        await create(c.CreateProject(caller=alice(None), name="web"))


async def test_the_record_commits_in_the_same_save_as_the_events(projects) -> None:
    h, endpoints = projects
    part = h.partitions["live"]
    before = part.store.recorder.max_notification_id() or 0
    await endpoints[_cmd("create")](c.CreateProject(caller=alice("k-atomic"), name="atomic"))
    recorded = part.store.recorder.select_notifications(before, 10, inclusive_of_start=False)
    topics = [n.topic.rsplit(":", 1)[-1] for n in recorded]
    assert topics == ["ProjectCreated", "ProjectNameClaimed", "CommandRecorded"]


async def test_a_losing_save_commits_none_of_its_events(projects) -> None:
    """A rival record lands between our look-up and our save: the save fails on the record's
    version, so the project it carried is not created, and the rival's fingerprint wins."""
    h, _ = projects
    part = h.partitions["live"]
    rival = CommandRecorded(
        originator_id=record_id("acct_alice", "live", "k-race"),
        originator_version=1,
        subject=_cmd("create"),
        fingerprint="another request",
        reply=b"",
    )

    async def racing_create(cmd: c.CreateProject) -> c.Project:
        result = await h.create(cmd)  # decided; its save is deferred to the wrapper
        part.store.save(rival)  # the rival commits first
        return result

    once = AtMostOnce(lambda cmd: part.store)
    create = once.wrap(_cmd("create"), racing_create)
    with pytest.raises(DomainError) as info:
        await create(c.CreateProject(caller=alice("k-race"), name="lost"))
    assert info.value.reply.code == "idempotency_key_reused"
    assert _names(h) == []


async def test_the_same_key_with_another_command_is_refused(projects) -> None:
    h, endpoints = projects
    await endpoints[_cmd("create")](c.CreateProject(caller=alice("k-2"), name="api"))
    for subject, cmd in [
        (_cmd("create"), c.CreateProject(caller=alice("k-2"), name="api", description="other")),
        (
            _cmd("create"),
            c.CreateProject(caller=msgspec.structs.replace(alice("k-2"), key_id="key_other"), name="api"),
        ),
        (_cmd("delete"), c.DeleteProject(caller=alice("k-2"), project_id="prj_" + "a" * 26)),
    ]:
        with pytest.raises(DomainError) as info:
            await endpoints[subject](cmd)
        assert info.value.reply.code == "idempotency_key_reused"
    assert _names(h) == ["api"]


async def test_concurrent_duplicates_create_one_project_and_share_its_reply(projects) -> None:
    h, endpoints = projects
    create = endpoints[_cmd("create")]
    answers = await asyncio.gather(
        *(create(c.CreateProject(caller=alice("k-burst", i), name="burst")) for i in range(16))
    )
    results = [_result(a, c.Project) for a in answers]
    assert sum(not isinstance(a, Replayed) for a in answers) == 1
    assert all(r == results[0] for r in results)
    assert _names(h) == ["burst"]
    assert len(_record(h.partitions["live"], "k-burst")) == 1


async def test_a_failed_command_is_not_recorded(projects) -> None:
    h, endpoints = projects
    blocker = await endpoints[_cmd("create")](c.CreateProject(caller=alice(None), name="taken"))
    create = endpoints[_cmd("create")]
    with pytest.raises(DomainError):
        await create(c.CreateProject(caller=alice("k-3"), name="taken"))
    assert _record(h.partitions["live"], "k-3") == []
    await endpoints[_cmd("delete")](c.DeleteProject(caller=alice(None), project_id=blocker.id))
    retried = await create(c.CreateProject(caller=alice("k-3"), name="taken"))
    assert isinstance(retried, c.Project) and retried.id != blocker.id


async def test_every_write_of_a_project_and_its_team_is_at_most_once(projects) -> None:
    h, endpoints = projects
    created = await endpoints[_cmd("create")](c.CreateProject(caller=alice(None), name="team"))
    steps = [
        ("update", c.UpdateProject(caller=alice("u"), project_id=created.id, description="v2")),
        (
            "put_member",
            c.PutProjectMember(caller=alice("p"), project_id=created.id, member_id="mem_1", role="admin"),
        ),
        ("remove_member", c.RemoveProjectMember(caller=alice("r"), project_id=created.id, member_id="mem_1")),
        ("delete", c.DeleteProject(caller=alice("d"), project_id=created.id)),
    ]
    for verb, cmd in steps:
        first = await endpoints[_cmd(verb)](cmd)
        again = await endpoints[_cmd(verb)](cmd)
        assert isinstance(again, Replayed), verb
        assert _result(again, type(first)) == first, verb
    # Applied once each: created, updated, member added and removed, deleted.
    assert h.partitions["live"].load(decode_id("prj", created.id)).version == 5


async def test_records_expire_after_a_day(projects, clock: Clock) -> None:
    h, endpoints = projects
    create = endpoints[_cmd("create")]
    await create(c.CreateProject(caller=alice("k-old"), name="monday"))
    clock.now += timedelta(hours=24, seconds=1)
    # A day later the key is free again, even for another command.
    tuesday = await create(c.CreateProject(caller=alice("k-old"), name="tuesday"))
    assert isinstance(tuesday, c.Project)
    assert [r.originator_version for r in _record(h.partitions["live"], "k-old")] == [1, 2]
    assert isinstance(await create(c.CreateProject(caller=alice("k-old"), name="tuesday")), Replayed)
    assert _names(h) == ["monday", "tuesday"]


@pytest.fixture
def identity(backend: str, clock: Clock) -> Iterator[tuple[IdentityHandlers, dict[str, Endpoint]]]:
    store, view = identity_bootstrap.open_identity()
    h = IdentityHandlers(store, view, relay=None, clock=clock)
    yield h, {subject: fn for subject, _, fn in identity_bootstrap.endpoints(h)}
    view.close()
    store.close()


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


async def test_a_retried_key_creation_makes_one_key_despite_a_new_secret(identity) -> None:
    h, endpoints = identity
    create = endpoints[subjects.command(ic.SERVICE, "create_key")]
    first = await create(_new_key(alice("k-key", 1)))
    again = await create(_new_key(alice("k-key", 2)))
    assert isinstance(again, Replayed)
    assert _result(again, ic.KeyView) == first
    listed = h.list_keys_sync(ic.ListKeys(caller=alice(None)))
    assert [k.id for k in listed.data] == [first.id]
    # A different key request under the same Idempotency-Key is still refused.
    other = msgspec.structs.replace(_new_key(alice("k-key", 3)), name="other")
    with pytest.raises(DomainError, match="different request"):
        await create(other)


async def test_identity_commands_without_a_caller_are_not_wrapped(identity) -> None:
    _, endpoints = identity
    created = await endpoints[subjects.command(ic.SERVICE, "create_key")](_new_key(alice(None)))
    revoke = endpoints[subjects.command(ic.SERVICE, "revoke_key")]
    revoked = await revoke(ic.RevokeKey(account_id="acct_alice", key_id=created.id))
    assert revoked.revoked is not None
