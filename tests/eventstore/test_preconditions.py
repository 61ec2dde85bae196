"""If-Match in the services: a command with `expected_version` applies only to that version of the
aggregate it decides on, against every event-store backend — and of writers racing with one
version, exactly one wins (the others' saves conflict, and on fresh state the version is stale)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stratus_contracts import identity as i
from stratus_contracts import keys
from stratus_contracts import projects as p
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_identity.bootstrap import open_identity
from stratus_identity.handlers import IdentityHandlers
from stratus_projects.bootstrap import open_partition
from stratus_projects.handlers import ProjectsHandlers

ALICE = Caller(account_id="acct_alice", mode="live", key_id="key_alice")
MEM_A, MEM_B = "mem_" + "a" * 26, "mem_" + "b" * 26


@pytest.fixture
def projects(backend: str) -> Iterator[ProjectsHandlers]:
    parts = {mode: open_partition(mode, bus=None) for mode in ("live", "test")}
    yield ProjectsHandlers(parts)
    for part in parts.values():
        part.view.close()
        part.store.close()


@pytest.fixture
def identity(backend: str) -> Iterator[IdentityHandlers]:
    store, view = open_identity()
    yield IdentityHandlers(store, view, relay=None)
    view.close()
    store.close()


def _code(fn: Callable[..., Any], *args: Any) -> str:
    with pytest.raises(DomainError) as info:
        fn(*args)
    return info.value.reply.code


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


def test_project_writes_apply_only_at_the_expected_version(projects: ProjectsHandlers) -> None:
    made = projects.create_sync(p.CreateProject(caller=ALICE, name="web"))
    stale = p.UpdateProject(caller=ALICE, project_id=made.id, description="x", expected_version=2)
    assert _code(projects.update_sync, stale) == "precondition_failed"
    changed = projects.update_sync(
        p.UpdateProject(caller=ALICE, project_id=made.id, description="x", expected_version=1)
    )
    assert changed.version == 2
    delete_stale = p.DeleteProject(caller=ALICE, project_id=made.id, expected_version=1)
    assert _code(projects.delete_sync, delete_stale) == "precondition_failed"
    # Without a precondition a write applies to whatever version is current.
    projects.update_sync(p.UpdateProject(caller=ALICE, project_id=made.id, description="y"))
    assert projects.delete_sync(p.DeleteProject(caller=ALICE, project_id=made.id, expected_version=3)).deleted


def test_a_missing_project_is_not_found_whatever_the_precondition(projects: ProjectsHandlers) -> None:
    ghost = "prj_" + "z" * 26
    assert (
        _code(projects.update_sync, p.UpdateProject(caller=ALICE, project_id=ghost, expected_version=1))
        == "project_not_found"
    )


def test_racing_updates_with_one_version_make_one_winner(projects: ProjectsHandlers) -> None:
    made = projects.create_sync(p.CreateProject(caller=ALICE, name="race"))

    def attempt(index: int) -> None:
        cmd = p.UpdateProject(
            caller=ALICE, project_id=made.id, description=f"writer {index}", expected_version=1
        )
        projects.update_sync(cmd)

    assert _race(8, attempt) == ["ok"] + ["precondition_failed"] * 7
    assert projects.get_sync(p.GetProject(caller=ALICE, project_id=made.id)).version == 2


def test_memberships_have_their_own_version(projects: ProjectsHandlers) -> None:
    made = projects.create_sync(p.CreateProject(caller=ALICE, name="team"))
    put = projects.put_member_sync
    # If-Match on a membership that does not exist yet never matches.
    for cmd in (
        p.PutProjectMember(caller=ALICE, project_id=made.id, member_id=MEM_A, role="viewer", must_exist=True),
        p.PutProjectMember(
            caller=ALICE, project_id=made.id, member_id=MEM_A, role="viewer", expected_version=1
        ),
    ):
        assert _code(put, cmd) == "precondition_failed"
    a = put(p.PutProjectMember(caller=ALICE, project_id=made.id, member_id=MEM_A, role="viewer"))
    assert a.version == 2  # the project version that added it
    put(p.PutProjectMember(caller=ALICE, project_id=made.id, member_id=MEM_B, role="viewer"))
    # B's arrival moved the project, not A's membership: A's ETag still holds.
    again = p.GetProjectMember(caller=ALICE, project_id=made.id, member_id=MEM_A)
    assert projects.get_member_sync(again).version == 2
    promoted = put(
        p.PutProjectMember(
            caller=ALICE, project_id=made.id, member_id=MEM_A, role="developer", expected_version=2
        )
    )
    assert promoted.version == 4
    stale = p.PutProjectMember(
        caller=ALICE, project_id=made.id, member_id=MEM_A, role="admin", expected_version=2
    )
    assert _code(put, stale) == "precondition_failed"
    assert (
        _code(
            projects.remove_member_sync,
            p.RemoveProjectMember(caller=ALICE, project_id=made.id, member_id=MEM_A, expected_version=2),
        )
        == "precondition_failed"
    )
    removed = projects.remove_member_sync(
        p.RemoveProjectMember(caller=ALICE, project_id=made.id, member_id=MEM_A, expected_version=4)
    )
    assert removed.deleted and removed.version == 5
    any_version = p.PutProjectMember(
        caller=ALICE, project_id=made.id, member_id=MEM_B, role="admin", must_exist=True
    )
    assert put(any_version).role == "admin"


def _key(identity: IdentityHandlers) -> i.KeyView:
    secret = keys.generate("live")
    return identity.create_key_sync(
        i.CreateKey(
            caller=ALICE,
            secret_hash=keys.hash_secret(secret),
            hint=keys.hint(secret),
            name="ci",
            scopes=("read",),
        )
    )


def test_key_writes_apply_only_at_the_expected_version(identity: IdentityHandlers) -> None:
    key = _key(identity)
    assert (
        _code(
            identity.update_key_sync, i.UpdateKey(caller=ALICE, key_id=key.id, name="x", expected_version=2)
        )
        == "precondition_failed"
    )
    assert (
        identity.update_key_sync(
            i.UpdateKey(caller=ALICE, key_id=key.id, name="x", expected_version=1)
        ).version
        == 2
    )
    secret = keys.generate("live")
    rotate = i.RotateKey(
        caller=ALICE,
        key_id=key.id,
        secret_hash=keys.hash_secret(secret),
        hint=keys.hint(secret),
        expected_version=1,
    )
    assert _code(identity.rotate_key_sync, rotate) == "precondition_failed"
    revoke = i.RevokeKey(caller=ALICE, key_id=key.id, expected_version=1)
    assert _code(identity.revoke_sync, revoke) == "precondition_failed"
    assert identity.get_key_sync(i.GetKey(caller=ALICE, key_id=key.id)).revoked is None
    revoked = identity.revoke_sync(i.RevokeKey(caller=ALICE, key_id=key.id, expected_version=2))
    assert revoked.revoked is not None and revoked.version == 3


def test_member_removal_applies_only_at_the_expected_version(identity: IdentityHandlers) -> None:
    member = identity.add_member_sync(i.AddMember(caller=ALICE, email="ada@example.com"))
    stale = i.RemoveMember(caller=ALICE, member_id=member.id, expected_version=2)
    assert _code(identity.remove_member_sync, stale) == "precondition_failed"
    removed = identity.remove_member_sync(
        i.RemoveMember(caller=ALICE, member_id=member.id, expected_version=1)
    )
    assert removed.deleted


def test_racing_key_updates_with_one_version_make_one_winner(identity: IdentityHandlers) -> None:
    key = _key(identity)

    def attempt(index: int) -> None:
        identity.update_key_sync(
            i.UpdateKey(caller=ALICE, key_id=key.id, name=f"writer {index}", expected_version=1)
        )

    assert _race(6, attempt) == ["ok"] + ["precondition_failed"] * 5
    assert identity.get_key_sync(i.GetKey(caller=ALICE, key_id=key.id)).version == 2
