"""The projects service's store behaviour against every event-store backend (SQLite, PostgreSQL):
names, lists and the read model, then key restrictions, team roles and the last-owner rule."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from pathlib import Path

import msgspec
import pytest

from stratus_contracts import projects as c
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_contracts.ids import encode_id
from stratus_kit import Local, Partition, ReadModel, open_local
from stratus_projects import domain, read_model, views
from stratus_projects.bootstrap import SERVICE
from stratus_projects.environments import crypto

from .support import Services, code, published

ALICE = Caller(account_id="acct_alice", mode="live", key_id="key_alice")
BOB = Caller(account_id="acct_bob", mode="live", key_id="key_bob")


@pytest.fixture
def projects(services: Services) -> Local:
    return services.projects()


def test_create_get_update_delete_round_trip(projects: Local) -> None:
    created = projects.call(c.CreateProject(caller=ALICE, name="web", description="site"))
    assert created.id.startswith("prj_") and created.version == 1
    assert created.owner is None  # an unbound key is no member, so nobody owns the project
    got = projects.call(c.GetProject(caller=ALICE, project_id=created.id))
    assert got == created
    updated = projects.call(c.UpdateProject(caller=ALICE, project_id=created.id, name="web2"))
    assert (updated.name, updated.description, updated.version) == ("web2", "site", 2)
    deleted = projects.call(c.DeleteProject(caller=ALICE, project_id=created.id))
    assert deleted.deleted
    assert code(projects.call, c.GetProject(caller=ALICE, project_id=created.id)) == "project_not_found"


def test_names_are_unique_per_account_and_released_by_rename_and_delete(projects: Local) -> None:
    first = projects.call(c.CreateProject(caller=ALICE, name="api"))
    assert code(projects.call, c.CreateProject(caller=ALICE, name="api")) == "project_name_taken"
    # Another account may use the same name.
    projects.call(c.CreateProject(caller=BOB, name="api"))
    projects.call(c.UpdateProject(caller=ALICE, project_id=first.id, name="api-v2"))
    second = projects.call(c.CreateProject(caller=ALICE, name="api"))
    assert (
        code(projects.call, c.UpdateProject(caller=ALICE, project_id=second.id, name="api-v2"))
        == "project_name_taken"
    )
    projects.call(c.DeleteProject(caller=ALICE, project_id=first.id))
    projects.call(c.CreateProject(caller=ALICE, name="api-v2"))


def test_another_accounts_project_is_not_found(projects: Local) -> None:
    mine = projects.call(c.CreateProject(caller=ALICE, name="secret"))
    for msg in [
        c.GetProject(caller=BOB, project_id=mine.id),
        c.UpdateProject(caller=BOB, project_id=mine.id, description="x"),
        c.DeleteProject(caller=BOB, project_id=mine.id),
    ]:
        assert code(projects.call, msg) == "project_not_found"
    assert projects.call(c.ListProjects(caller=BOB)).data == []
    # Test mode is a separate store: the live project does not exist there.
    test_alice = Caller(account_id="acct_alice", mode="test", key_id="key_alice_test")
    assert code(projects.call, c.GetProject(caller=test_alice, project_id=mine.id)) == "project_not_found"


def test_concurrent_creates_of_one_name_make_one_project(services: Services, projects: Local) -> None:
    # Two replicas: creates race in one writer's batch and between the replicas' commits.
    replicas = (projects, services.projects())
    results: list[str] = []
    barrier = threading.Barrier(8)

    def attempt(index: int) -> None:
        barrier.wait()
        try:
            replicas[index % 2].call(c.CreateProject(caller=ALICE, name="race"))
            results.append("created")
        except DomainError as exc:
            results.append(exc.reply.code)

    threads = [threading.Thread(target=attempt, args=(index,)) for index in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["created"] + ["project_name_taken"] * 7
    assert [p.name for p in projects.call(c.ListProjects(caller=ALICE)).data] == ["race"]


def test_list_paginates_filters_and_sorts(projects: Local) -> None:
    names = [f"p{i:02d}" for i in range(7)]
    made = [projects.call(c.CreateProject(caller=ALICE, name=n)) for n in names]
    projects.call(c.CreateProject(caller=BOB, name="bobs"))
    seen: list[str] = []
    cursor = None
    while True:
        page = projects.call(c.ListProjects(caller=ALICE, limit=3, cursor=cursor, sort="created"))
        seen += [p.name for p in page.data]
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
    assert seen == names
    newest_first = projects.call(c.ListProjects(caller=ALICE, limit=100))
    assert [p.name for p in newest_first.data] == names[::-1]
    assert [p.id for p in projects.call(c.ListProjects(caller=ALICE, name="p03")).data] == [made[3].id]
    assert projects.call(c.ListProjects(caller=ALICE, owner="mem_nobody")).data == []
    by_name = projects.call(c.ListProjects(caller=ALICE, sort="name", limit=2))
    assert [p.name for p in by_name.data] == ["p00", "p01"]
    with pytest.raises(DomainError) as info:
        projects.call(c.ListProjects(caller=ALICE, sort="name", cursor=page_cursor(projects)))
    assert info.value.reply.code == "invalid_cursor"
    with pytest.raises(DomainError):
        projects.call(c.ListProjects(caller=ALICE, cursor="not-a-cursor"))


def page_cursor(projects: Local) -> str:
    cursor = projects.call(c.ListProjects(caller=ALICE, limit=1, sort="created")).next_cursor
    assert cursor is not None
    return cursor


def _rows(part: Partition) -> list[tuple]:
    return [tuple(r) for r in part.read_model("projects").query("SELECT * FROM projects ORDER BY id")]


def test_rebuilt_read_model_equals_live_read_model(services: Services, projects: Local) -> None:
    kept = [projects.call(c.CreateProject(caller=ALICE, name=f"keep{i}")) for i in range(5)]
    projects.call(c.UpdateProject(caller=ALICE, project_id=kept[0].id, name="renamed", description="d"))
    projects.call(c.DeleteProject(caller=ALICE, project_id=kept[1].id))
    projects.call(c.CreateProject(caller=BOB, name="keep0"))
    live = _rows(projects.partitions["live"])
    assert len(live) == 5
    assert projects.call(c.RebuildReadModels()).modes == {"live": 5, "test": 0}
    assert _rows(projects.partitions["live"]) == live
    # A read model file dropped from disk is rebuilt from the log alone on open.
    path = Path(projects.partitions["live"].read_model("projects").path)
    services.close(projects)
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    fresh = services.projects()
    assert _rows(fresh.partitions["live"]) == live


# --- key restrictions and team access ---------------------------------------------------------

ANN = Caller(account_id="acct_alice", mode="live", key_id="key_ann", member_id="mem_ann")
BEN = Caller(account_id="acct_alice", mode="live", key_id="key_ben", member_id="mem_ben")
CAT = Caller(account_id="acct_alice", mode="live", key_id="key_cat", member_id="mem_cat")


def _restricted(*project_ids: str) -> Caller:
    return Caller(account_id="acct_alice", mode="live", key_id="key_narrow", project_ids=project_ids)


def _put_cmd(who: Caller, project_id: str, member_id: str, role: c.Role) -> c.PutProjectMember:
    return c.PutProjectMember(caller=who, project_id=project_id, member_id=member_id, role=role)


def _remove_cmd(who: Caller, project_id: str, member_id: str) -> c.RemoveProjectMember:
    return c.RemoveProjectMember(caller=who, project_id=project_id, member_id=member_id)


def _put(projects: Local, who: Caller, project_id: str, member_id: str, role: c.Role) -> c.ProjectMember:
    return projects.call(_put_cmd(who, project_id, member_id, role))


def _remove(projects: Local, who: Caller, project_id: str, member_id: str) -> c.ProjectMember:
    return projects.call(_remove_cmd(who, project_id, member_id))


def _names(projects: Local, who: Caller, **filters: str) -> list[str]:
    return [p.name for p in projects.call(c.ListProjects(caller=who, sort="name", **filters)).data]


def test_a_restricted_key_sees_only_its_projects(projects: Local) -> None:
    one = projects.call(c.CreateProject(caller=ALICE, name="one"))
    two = projects.call(c.CreateProject(caller=ALICE, name="two"))
    narrow = _restricted(one.id)
    assert projects.call(c.GetProject(caller=narrow, project_id=one.id)).id == one.id
    for msg in [
        c.GetProject(caller=narrow, project_id=two.id),
        c.UpdateProject(caller=narrow, project_id=two.id, description="x"),
        c.DeleteProject(caller=narrow, project_id=two.id),
        c.ListProjectMembers(caller=narrow, project_id=two.id),
        _put_cmd(narrow, two.id, "mem_x", "viewer"),
    ]:
        assert code(projects.call, msg) == "project_not_found"
    assert _names(projects, narrow) == ["one"]
    assert _names(projects, _restricted()) == []
    assert code(projects.call, c.CreateProject(caller=narrow, name="three")) == "key_restricted"
    assert _names(projects, ALICE) == ["one", "two"]


def test_a_member_bound_creator_owns_the_project(projects: Local) -> None:
    made = projects.call(c.CreateProject(caller=ANN, name="anns"))
    assert made.owner == "mem_ann" and made.version == 2 and made.updated == made.created
    assert projects.call(c.GetProject(caller=ALICE, project_id=made.id)) == made
    team = projects.call(c.ListProjectMembers(caller=ANN, project_id=made.id))
    assert [(m.id, m.role, m.project_id) for m in team.data] == [("mem_ann", "owner", made.id)]
    # A member without a role on it does not see it at all.
    assert code(projects.call, c.GetProject(caller=BEN, project_id=made.id)) == "project_not_found"
    assert _names(projects, BEN) == []
    assert _names(projects, ALICE, owner="mem_ann") == ["anns"]


def test_roles_gate_what_a_member_bound_key_may_do(projects: Local) -> None:
    pid = projects.call(c.CreateProject(caller=ANN, name="gated")).id
    _put(projects, ANN, pid, "mem_ben", "viewer")
    assert projects.call(c.GetProject(caller=BEN, project_id=pid)).name == "gated"
    assert _names(projects, BEN) == ["gated"]
    with pytest.raises(DomainError) as info:
        projects.call(c.UpdateProject(caller=BEN, project_id=pid, description="x"))
    assert info.value.reply.code == "insufficient_role" and "`developer`" in info.value.reply.message
    assert code(projects.call, _put_cmd(BEN, pid, "mem_cat", "viewer")) == "insufficient_role"

    _put(projects, ANN, pid, "mem_ben", "developer")
    assert projects.call(c.UpdateProject(caller=BEN, project_id=pid, description="x")).description == "x"
    assert code(projects.call, c.DeleteProject(caller=BEN, project_id=pid)) == "insufficient_role"
    assert code(projects.call, _remove_cmd(BEN, pid, "mem_ann")) == "insufficient_role"

    _put(projects, ANN, pid, "mem_ben", "admin")
    assert _put(projects, BEN, pid, "mem_cat", "developer").role == "developer"
    # An admin manages the team but cannot make owners or touch them.
    assert code(projects.call, _put_cmd(BEN, pid, "mem_cat", "owner")) == "insufficient_role"
    assert code(projects.call, _put_cmd(BEN, pid, "mem_ann", "viewer")) == "insufficient_role"
    assert code(projects.call, _remove_cmd(BEN, pid, "mem_ann")) == "insufficient_role"
    assert _remove(projects, BEN, pid, "mem_cat").deleted
    assert code(projects.call, c.GetProject(caller=CAT, project_id=pid)) == "project_not_found"
    assert code(projects.call, c.DeleteProject(caller=BEN, project_id=pid)) == "insufficient_role"
    assert projects.call(c.DeleteProject(caller=ANN, project_id=pid)).deleted


def test_a_project_keeps_its_last_owner(projects: Local) -> None:
    pid = projects.call(c.CreateProject(caller=ANN, name="kept")).id
    assert code(projects.call, _put_cmd(ANN, pid, "mem_ann", "admin")) == "last_owner"
    assert code(projects.call, _remove_cmd(ANN, pid, "mem_ann")) == "last_owner"
    # Unbound keys are account-wide, but the rule is the project's, not the caller's.
    assert code(projects.call, _remove_cmd(ALICE, pid, "mem_ann")) == "last_owner"
    _put(projects, ANN, pid, "mem_ben", "owner")
    assert _put(projects, ANN, pid, "mem_ann", "viewer").role == "viewer"
    project = projects.call(c.GetProject(caller=ALICE, project_id=pid))
    assert project.owner == "mem_ben"
    assert _names(projects, ALICE, owner="mem_ben") == ["kept"]
    assert _names(projects, ALICE, owner="mem_ann") == []
    assert code(projects.call, _remove_cmd(BEN, pid, "mem_ben")) == "last_owner"
    assert code(projects.call, _remove_cmd(BEN, pid, "mem_cat")) == "project_member_not_found"


def test_unbound_keys_manage_any_team_and_own_nothing(projects: Local) -> None:
    pid = projects.call(c.CreateProject(caller=ALICE, name="shared")).id
    assert _put(projects, ALICE, pid, "mem_ben", "developer").role == "developer"
    assert projects.call(c.GetProject(caller=ALICE, project_id=pid)).owner is None
    assert _put(projects, ALICE, pid, "mem_cat", "owner").role == "owner"
    assert projects.call(c.GetProject(caller=ALICE, project_id=pid)).owner == "mem_cat"
    same = _put(projects, ALICE, pid, "mem_cat", "owner")  # no change, no event
    assert projects.call(c.GetProject(caller=ALICE, project_id=pid)).version == 3 and same.role == "owner"
    got = projects.call(c.GetProjectMember(caller=BEN, project_id=pid, member_id="mem_cat"))
    assert got.role == "owner"
    missing = c.GetProjectMember(caller=ALICE, project_id=pid, member_id="mem_ann")
    assert code(projects.call, missing) == "project_member_not_found"


def test_member_lists_paginate_in_the_order_access_was_given(projects: Local) -> None:
    pid = projects.call(c.CreateProject(caller=ANN, name="big")).id
    for i in range(5):
        _put(projects, ANN, pid, f"mem_{i}", "viewer")
    seen: list[str] = []
    cursor = None
    while True:
        page = projects.call(c.ListProjectMembers(caller=ANN, project_id=pid, limit=2, cursor=cursor))
        seen += [m.id for m in page.data]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert seen == ["mem_ann"] + [f"mem_{i}" for i in range(5)]
    projects.call(c.CreateProject(caller=ALICE, name="other"))
    for cursor in (page_cursor(projects), "garbage"):  # a project-list cursor is no member cursor
        bad = c.ListProjectMembers(caller=ANN, project_id=pid, cursor=cursor)
        assert code(projects.call, bad) == "invalid_cursor"


def _team_rows(part: Partition) -> list[tuple]:
    model = part.read_model("projects")
    return [tuple(r) for r in model.query("SELECT * FROM project_members ORDER BY project_id, member_id")]


def test_rebuilt_read_model_keeps_teams_and_owners(projects: Local) -> None:
    a = projects.call(c.CreateProject(caller=ANN, name="a")).id
    b = projects.call(c.CreateProject(caller=ALICE, name="b")).id
    _put(projects, ANN, a, "mem_ben", "owner")
    _put(projects, ANN, a, "mem_ann", "developer")
    _put(projects, ALICE, b, "mem_cat", "viewer")
    gone = projects.call(c.CreateProject(caller=BEN, name="gone")).id
    projects.call(c.DeleteProject(caller=BEN, project_id=gone))
    part = projects.partitions["live"]
    live, team = _rows(part), _team_rows(part)
    assert len(team) == 3 and {r[0] for r in team} == {a, b}
    projects.call(c.RebuildReadModels())
    assert (_rows(part), _team_rows(part)) == (live, team)
    assert _names(projects, ALICE, owner="mem_ben") == ["a"]
    assert _names(projects, CAT) == ["b"]


# The projects read model as it was before team access: `owner` was a NOT NULL key id (the
# creating key's), and there was no team table.
_OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (id TEXT PRIMARY KEY, account TEXT NOT NULL, name TEXT NOT NULL,
    description TEXT NOT NULL, owner TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,
    version INTEGER NOT NULL);
"""


def _old_apply(db: sqlite3.Connection, event: object) -> None:
    if isinstance(event, domain.ProjectCreated):
        db.execute(
            "INSERT INTO projects VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                encode_id("prj", event.originator_id),
                event.account,
                event.name,
                event.description,
                event.actor.key_id if event.actor else "",
                event.timestamp.isoformat(),
                event.timestamp.isoformat(),
                event.originator_version,
            ),
        )


def test_a_read_model_built_by_older_code_is_rebuilt_on_open(services: Services) -> None:
    old_model = ReadModel(
        name="projects", schema=_OLD_SCHEMA, apply=_old_apply, version=read_model.SCHEMA_VERSION - 1
    )
    others = tuple(m for m in SERVICE.read_models if m.name != "projects")
    older = dataclasses.replace(SERVICE, read_models=(old_model, *others))
    deps = {"keyring": crypto.Keyring(current=None)}
    with open_local(older, directory=services.directory, deps=deps) as old:
        before = old.call(c.CreateProject(caller=ALICE, name="before"))
        rows = old.partitions["live"].read_model("projects").query("SELECT id, owner FROM projects")
        assert [tuple(r) for r in rows] == [(before.id, "key_alice")]

    projects = services.projects()
    made = projects.call(c.CreateProject(caller=ALICE, name="fresh"))
    model = projects.partitions["live"].read_model("projects")
    assert [tuple(r)[:5] for r in model.query("SELECT * FROM projects ORDER BY name")] == [
        (before.id, "acct_alice", "before", "", None),
        (made.id, "acct_alice", "fresh", "", None),
    ]
    assert [p.name for p in projects.call(c.ListProjects(caller=ALICE, sort="name")).data] == [
        "before",
        "fresh",
    ]
    # The file now records the new schema version: opened again by the same code, it is kept.
    model.query("UPDATE projects SET description = 'kept' WHERE id = ?", (made.id,))
    services.close(projects)
    again = services.projects()
    assert again.call(c.GetProject(caller=ALICE, project_id=made.id)).description == ""  # the log's
    kept = (
        again.partitions["live"]
        .read_model("projects")
        .query("SELECT description FROM projects WHERE id = ?", (made.id,))
    )
    assert [tuple(r) for r in kept] == [("kept",)]


def test_events_from_before_team_access_have_no_owner() -> None:
    # ProjectCreated used to record the creating key as `owner`; a key is not a member.
    legacy = (
        b'{"originator_id":"6f0c1c9e-55a4-4d57-9a3c-7d0e4b3c2a10","originator_version":1,'
        b'"timestamp":"2026-01-01T00:00:00Z","account":"acct_a","name":"old","description":"",'
        b'"owner":"key_abc"}'
    )
    event = msgspec.json.decode(legacy, type=domain.ProjectCreated)
    state = domain.project(None, [event])
    assert isinstance(state, domain.Project) and state.owner is None and state.members == {}


def test_public_events_name_the_team_change_and_the_actor(projects: Local) -> None:
    actor = Caller(
        account_id="acct_alice",
        mode="live",
        key_id="key_ann",
        member_id="mem_ann",
        ip="203.0.113.9",
        request_id="req_1",
    )
    pid = projects.call(c.CreateProject(caller=actor, name="evts")).id
    _put(projects, actor, pid, "mem_ben", "viewer")
    _put(projects, actor, pid, "mem_ben", "admin")
    _remove(projects, actor, pid, "mem_ben")
    events = [event for _, event in published(projects.partitions["live"], views.PUBLISHER)]
    assert [e.type for e in events] == [
        "project.created",
        "project.member_added",
        "project.member_added",
        "project.member_updated",
        "project.member_removed",
    ]
    assert events[0].data.owner == "mem_ann"
    assert [(e.data.id, e.data.role, e.data.project_id) for e in events[1:]] == [
        ("mem_ann", "owner", pid),
        ("mem_ben", "viewer", pid),
        ("mem_ben", "admin", pid),
        ("mem_ben", "admin", pid),
    ]
    assert events[3].data.previous_role == "viewer" and events[4].data.deleted is True
    assert all(e.actor == actor.actor() for e in events)
    assert {e.data.object for e in events[1:]} == {"project_member"}
