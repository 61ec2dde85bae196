"""If-Match in the services: a command with `expected_version` applies only to that version of the
aggregate it decides on, against every event-store backend — and of writers racing with one
version, exactly one wins: within one replica the writer decides them against one state, across
replicas the others' commits conflict, and on fresh state their version is stale."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from stratus_contracts import identity as i
from stratus_contracts import keys
from stratus_contracts import projects as p
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_kit import Local

from .support import Services, code

ALICE = Caller(account_id="acct_alice", mode="live", key_id="key_alice")
MEM_A, MEM_B = "mem_" + "a" * 26, "mem_" + "b" * 26


@pytest.fixture
def projects(services: Services) -> Local:
    return services.projects()


@pytest.fixture
def identity(services: Services) -> Local:
    return services.identity()


def _race(n: int, attempt: Callable[[int], Any]) -> list[str]:
    """Run `attempt(i)` in n threads released together; each outcome is "ok" or an error code."""
    barrier = threading.Barrier(n)
    outcomes: list[str] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            attempt(index)
            outcomes.append("ok")
        except DomainError as exc:
            outcomes.append(exc.reply.code)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(outcomes)


def test_project_writes_apply_only_at_the_expected_version(projects: Local) -> None:
    made = projects.call(p.CreateProject(caller=ALICE, name="web"))
    stale = p.UpdateProject(caller=ALICE, project_id=made.id, description="x", expected_version=2)
    assert code(projects.call, stale) == "precondition_failed"
    changed = projects.call(
        p.UpdateProject(caller=ALICE, project_id=made.id, description="x", expected_version=1)
    )
    assert changed.version == 2
    delete_stale = p.DeleteProject(caller=ALICE, project_id=made.id, expected_version=1)
    assert code(projects.call, delete_stale) == "precondition_failed"
    # Without a precondition a write applies to whatever version is current.
    projects.call(p.UpdateProject(caller=ALICE, project_id=made.id, description="y"))
    assert projects.call(p.DeleteProject(caller=ALICE, project_id=made.id, expected_version=3)).deleted


def test_a_missing_project_is_not_found_whatever_the_precondition(projects: Local) -> None:
    ghost = "prj_" + "z" * 26
    assert (
        code(projects.call, p.UpdateProject(caller=ALICE, project_id=ghost, expected_version=1))
        == "project_not_found"
    )


def test_racing_updates_with_one_version_make_one_winner(services: Services, projects: Local) -> None:
    made = projects.call(p.CreateProject(caller=ALICE, name="race"))
    replicas = (projects, services.projects())

    def attempt(index: int) -> None:
        cmd = p.UpdateProject(
            caller=ALICE, project_id=made.id, description=f"writer {index}", expected_version=1
        )
        replicas[index % 2].call(cmd)

    assert _race(8, attempt) == ["ok"] + ["precondition_failed"] * 7
    assert projects.call(p.GetProject(caller=ALICE, project_id=made.id)).version == 2


def test_memberships_have_their_own_version(projects: Local) -> None:
    made = projects.call(p.CreateProject(caller=ALICE, name="team"))
    put = projects.call
    # If-Match on a membership that does not exist yet never matches.
    for cmd in (
        p.PutProjectMember(caller=ALICE, project_id=made.id, member_id=MEM_A, role="viewer", must_exist=True),
        p.PutProjectMember(
            caller=ALICE, project_id=made.id, member_id=MEM_A, role="viewer", expected_version=1
        ),
    ):
        assert code(put, cmd) == "precondition_failed"
    a = put(p.PutProjectMember(caller=ALICE, project_id=made.id, member_id=MEM_A, role="viewer"))
    assert a.version == 2  # the project version that added it
    put(p.PutProjectMember(caller=ALICE, project_id=made.id, member_id=MEM_B, role="viewer"))
    # B's arrival moved the project, not A's membership: A's ETag still holds.
    again = p.GetProjectMember(caller=ALICE, project_id=made.id, member_id=MEM_A)
    assert projects.call(again).version == 2
    promoted = put(
        p.PutProjectMember(
            caller=ALICE, project_id=made.id, member_id=MEM_A, role="developer", expected_version=2
        )
    )
    assert promoted.version == 4
    stale = p.PutProjectMember(
        caller=ALICE, project_id=made.id, member_id=MEM_A, role="admin", expected_version=2
    )
    assert code(put, stale) == "precondition_failed"
    assert (
        code(
            projects.call,
            p.RemoveProjectMember(caller=ALICE, project_id=made.id, member_id=MEM_A, expected_version=2),
        )
        == "precondition_failed"
    )
    removed = projects.call(
        p.RemoveProjectMember(caller=ALICE, project_id=made.id, member_id=MEM_A, expected_version=4)
    )
    assert removed.deleted and removed.version == 5
    any_version = p.PutProjectMember(
        caller=ALICE, project_id=made.id, member_id=MEM_B, role="admin", must_exist=True
    )
    assert put(any_version).role == "admin"


def _key(identity: Local) -> i.KeyView:
    secret = keys.generate("live")
    return identity.call(
        i.CreateKey(
            caller=ALICE,
            secret_hash=keys.hash_secret(secret),
            hint=keys.hint(secret),
            name="ci",
            scopes=("read",),
        )
    )


def test_key_writes_apply_only_at_the_expected_version(identity: Local) -> None:
    key = _key(identity)
    assert (
        code(identity.call, i.UpdateKey(caller=ALICE, key_id=key.id, name="x", expected_version=2))
        == "precondition_failed"
    )
    assert identity.call(i.UpdateKey(caller=ALICE, key_id=key.id, name="x", expected_version=1)).version == 2
    secret = keys.generate("live")
    rotate = i.RotateKey(
        caller=ALICE,
        key_id=key.id,
        secret_hash=keys.hash_secret(secret),
        hint=keys.hint(secret),
        expected_version=1,
    )
    assert code(identity.call, rotate) == "precondition_failed"
    revoke = i.RevokeKey(caller=ALICE, key_id=key.id, expected_version=1)
    assert code(identity.call, revoke) == "precondition_failed"
    assert identity.call(i.GetKey(caller=ALICE, key_id=key.id)).revoked is None
    revoked = identity.call(i.RevokeKey(caller=ALICE, key_id=key.id, expected_version=2))
    assert revoked.revoked is not None and revoked.version == 3


def test_member_removal_applies_only_at_the_expected_version(identity: Local) -> None:
    member = identity.call(i.AddMember(caller=ALICE, email="ada@example.com"))
    stale = i.RemoveMember(caller=ALICE, member_id=member.id, expected_version=2)
    assert code(identity.call, stale) == "precondition_failed"
    removed = identity.call(i.RemoveMember(caller=ALICE, member_id=member.id, expected_version=1))
    assert removed.deleted


def test_racing_key_updates_with_one_version_make_one_winner(services: Services, identity: Local) -> None:
    key = _key(identity)
    replicas = (identity, services.identity())

    def attempt(index: int) -> None:
        replicas[index % 2].call(
            i.UpdateKey(caller=ALICE, key_id=key.id, name=f"writer {index}", expected_version=1)
        )

    assert _race(6, attempt) == ["ok"] + ["precondition_failed"] * 5
    assert identity.call(i.GetKey(caller=ALICE, key_id=key.id)).version == 2
