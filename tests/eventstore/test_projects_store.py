"""The projects service's store behaviour against every event-store backend (SQLite, PostgreSQL):
names, lists and the view, then key restrictions, team roles and the last-owner rule."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from stratus_contracts import projects as c
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_projects import domain, listing
from stratus_projects.bootstrap import open_partition
from stratus_projects.handlers import Partition, ProjectsHandlers
from stratus_projects.publish import publisher

ALICE = Caller(account_id="acct_alice", mode="live", key_id="key_alice")
BOB = Caller(account_id="acct_bob", mode="live", key_id="key_bob")


@pytest.fixture
def parts(backend: str) -> Iterator[dict[str, Partition]]:
    opened = {mode: open_partition(mode, bus=None) for mode in ("live", "test")}
    yield opened
    for part in opened.values():
        part.view.close()
        part.store.close()


@pytest.fixture
def handlers(parts: dict[str, Partition]) -> ProjectsHandlers:
    return ProjectsHandlers(parts)


def _codes(fn, *args) -> str:
    with pytest.raises(DomainError) as info:
        fn(*args)
    return info.value.reply.code


def test_create_get_update_delete_round_trip(handlers: ProjectsHandlers) -> None:
    created = handlers.create_sync(c.CreateProject(caller=ALICE, name="web", description="site"))
    assert created.id.startswith("prj_") and created.version == 1
    assert created.owner is None  # an unbound key is no member, so nobody owns the project
    got = handlers.get_sync(c.GetProject(caller=ALICE, project_id=created.id))
    assert got == created
    updated = handlers.update_sync(c.UpdateProject(caller=ALICE, project_id=created.id, name="web2"))
    assert (updated.name, updated.description, updated.version) == ("web2", "site", 2)
    deleted = handlers.delete_sync(c.DeleteProject(caller=ALICE, project_id=created.id))
    assert deleted.deleted
    assert _codes(handlers.get_sync, c.GetProject(caller=ALICE, project_id=created.id)) == "project_not_found"


def test_names_are_unique_per_account_and_released_by_rename_and_delete(handlers: ProjectsHandlers) -> None:
    first = handlers.create_sync(c.CreateProject(caller=ALICE, name="api"))
    assert _codes(handlers.create_sync, c.CreateProject(caller=ALICE, name="api")) == "project_name_taken"
    # Another account may use the same name.
    handlers.create_sync(c.CreateProject(caller=BOB, name="api"))
    handlers.update_sync(c.UpdateProject(caller=ALICE, project_id=first.id, name="api-v2"))
    second = handlers.create_sync(c.CreateProject(caller=ALICE, name="api"))
    assert (
        _codes(handlers.update_sync, c.UpdateProject(caller=ALICE, project_id=second.id, name="api-v2"))
        == "project_name_taken"
    )
    handlers.delete_sync(c.DeleteProject(caller=ALICE, project_id=first.id))
    handlers.create_sync(c.CreateProject(caller=ALICE, name="api-v2"))


def test_another_accounts_project_is_not_found(handlers: ProjectsHandlers) -> None:
    mine = handlers.create_sync(c.CreateProject(caller=ALICE, name="secret"))
    for call, msg in [
        (handlers.get_sync, c.GetProject(caller=BOB, project_id=mine.id)),
        (handlers.update_sync, c.UpdateProject(caller=BOB, project_id=mine.id, description="x")),
        (handlers.delete_sync, c.DeleteProject(caller=BOB, project_id=mine.id)),
    ]:
        assert _codes(call, msg) == "project_not_found"
    assert handlers.list_sync(c.ListProjects(caller=BOB)).data == []
    # Test mode is a separate store: the live project does not exist there.
    test_alice = Caller(account_id="acct_alice", mode="test", key_id="key_alice_test")
    assert (
        _codes(handlers.get_sync, c.GetProject(caller=test_alice, project_id=mine.id)) == "project_not_found"
    )


def test_concurrent_creates_of_one_name_make_one_project(handlers: ProjectsHandlers) -> None:
    results: list[str] = []
    barrier = threading.Barrier(8)

    def attempt() -> None:
        barrier.wait()
        try:
            handlers.create_sync(c.CreateProject(caller=ALICE, name="race"))
            results.append("created")
        except DomainError as exc:
            results.append(exc.reply.code)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["created"] + ["project_name_taken"] * 7
    assert [p.name for p in handlers.list_sync(c.ListProjects(caller=ALICE)).data] == ["race"]


def test_list_paginates_filters_and_sorts(handlers: ProjectsHandlers) -> None:
    names = [f"p{i:02d}" for i in range(7)]
    made = [handlers.create_sync(c.CreateProject(caller=ALICE, name=n)) for n in names]
    handlers.create_sync(c.CreateProject(caller=BOB, name="bobs"))
    seen: list[str] = []
    cursor = None
    while True:
        page = handlers.list_sync(c.ListProjects(caller=ALICE, limit=3, cursor=cursor, sort="created"))
        seen += [p.name for p in page.data]
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
    assert seen == names
    newest_first = handlers.list_sync(c.ListProjects(caller=ALICE, limit=100))
    assert [p.name for p in newest_first.data] == names[::-1]
    assert [p.id for p in handlers.list_sync(c.ListProjects(caller=ALICE, name="p03")).data] == [made[3].id]
    assert handlers.list_sync(c.ListProjects(caller=ALICE, owner="mem_nobody")).data == []
    by_name = handlers.list_sync(c.ListProjects(caller=ALICE, sort="name", limit=2))
    assert [p.name for p in by_name.data] == ["p00", "p01"]
    with pytest.raises(DomainError) as info:
        handlers.list_sync(c.ListProjects(caller=ALICE, sort="name", cursor=page_cursor(handlers)))
    assert info.value.reply.code == "invalid_cursor"
    with pytest.raises(DomainError):
        handlers.list_sync(c.ListProjects(caller=ALICE, cursor="not-a-cursor"))


def page_cursor(handlers: ProjectsHandlers) -> str:
    cursor = handlers.list_sync(c.ListProjects(caller=ALICE, limit=1, sort="created")).next_cursor
    assert cursor is not None
    return cursor


def _rows(part: Partition) -> list[tuple]:
    return [tuple(r) for r in part.view.query("SELECT * FROM projects ORDER BY id")]


def test_rebuilt_view_equals_live_view(parts: dict[str, Partition], handlers: ProjectsHandlers) -> None:
    kept = [handlers.create_sync(c.CreateProject(caller=ALICE, name=f"keep{i}")) for i in range(5)]
    handlers.update_sync(
        c.UpdateProject(caller=ALICE, project_id=kept[0].id, name="renamed", description="d")
    )
    handlers.delete_sync(c.DeleteProject(caller=ALICE, project_id=kept[1].id))
    handlers.create_sync(c.CreateProject(caller=BOB, name="keep0"))
    live = _rows(parts["live"])
    assert len(live) == 5
    handlers.rebuild_sync(c.RebuildView())
    assert _rows(parts["live"]) == live
    # A view file dropped from disk is rebuilt from the log alone on open.
    parts["live"].view.close()
    Path(parts["live"].view.path).unlink()
    fresh = open_partition("live", bus=None)
    try:
        fresh.view.catch_up()
        assert _rows(fresh) == live
    finally:
        fresh.view.close()
        fresh.store.close()


# --- key restrictions and team access ---------------------------------------------------------

ANN = Caller(account_id="acct_alice", mode="live", key_id="key_ann", member_id="mem_ann")
BEN = Caller(account_id="acct_alice", mode="live", key_id="key_ben", member_id="mem_ben")
CAT = Caller(account_id="acct_alice", mode="live", key_id="key_cat", member_id="mem_cat")


def _restricted(*project_ids: str) -> Caller:
    return Caller(account_id="acct_alice", mode="live", key_id="key_narrow", project_ids=project_ids)


def _put(handlers: ProjectsHandlers, who: Caller, project_id: str, member_id: str, role: c.Role):
    cmd = c.PutProjectMember(caller=who, project_id=project_id, member_id=member_id, role=role)
    return handlers.put_member_sync(cmd)


def _remove(handlers: ProjectsHandlers, who: Caller, project_id: str, member_id: str):
    return handlers.remove_member_sync(
        c.RemoveProjectMember(caller=who, project_id=project_id, member_id=member_id)
    )


def _names(handlers: ProjectsHandlers, who: Caller, **filters: str) -> list[str]:
    return [p.name for p in handlers.list_sync(c.ListProjects(caller=who, sort="name", **filters)).data]


def test_a_restricted_key_sees_only_its_projects(handlers: ProjectsHandlers) -> None:
    one = handlers.create_sync(c.CreateProject(caller=ALICE, name="one"))
    two = handlers.create_sync(c.CreateProject(caller=ALICE, name="two"))
    narrow = _restricted(one.id)
    assert handlers.get_sync(c.GetProject(caller=narrow, project_id=one.id)).id == one.id
    for call, msg in [
        (handlers.get_sync, c.GetProject(caller=narrow, project_id=two.id)),
        (handlers.update_sync, c.UpdateProject(caller=narrow, project_id=two.id, description="x")),
        (handlers.delete_sync, c.DeleteProject(caller=narrow, project_id=two.id)),
        (handlers.list_members_sync, c.ListProjectMembers(caller=narrow, project_id=two.id)),
    ]:
        assert _codes(call, msg) == "project_not_found"
    assert (
        _codes(handlers.put_member_sync, _put_cmd(narrow, two.id, "mem_x", "viewer")) == "project_not_found"
    )
    assert _names(handlers, narrow) == ["one"]
    assert _names(handlers, _restricted()) == []
    assert _codes(handlers.create_sync, c.CreateProject(caller=narrow, name="three")) == "key_restricted"
    assert _names(handlers, ALICE) == ["one", "two"]


def _put_cmd(who: Caller, project_id: str, member_id: str, role: c.Role) -> c.PutProjectMember:
    return c.PutProjectMember(caller=who, project_id=project_id, member_id=member_id, role=role)


def test_a_member_bound_creator_owns_the_project(handlers: ProjectsHandlers) -> None:
    made = handlers.create_sync(c.CreateProject(caller=ANN, name="anns"))
    assert made.owner == "mem_ann" and made.version == 2 and made.updated == made.created
    assert handlers.get_sync(c.GetProject(caller=ALICE, project_id=made.id)) == made
    team = handlers.list_members_sync(c.ListProjectMembers(caller=ANN, project_id=made.id))
    assert [(m.id, m.role, m.project_id) for m in team.data] == [("mem_ann", "owner", made.id)]
    # A member without a role on it does not see it at all.
    assert _codes(handlers.get_sync, c.GetProject(caller=BEN, project_id=made.id)) == "project_not_found"
    assert _names(handlers, BEN) == []
    assert _names(handlers, ALICE, owner="mem_ann") == ["anns"]


def test_roles_gate_what_a_member_bound_key_may_do(handlers: ProjectsHandlers) -> None:
    pid = handlers.create_sync(c.CreateProject(caller=ANN, name="gated")).id
    _put(handlers, ANN, pid, "mem_ben", "viewer")
    assert handlers.get_sync(c.GetProject(caller=BEN, project_id=pid)).name == "gated"
    assert _names(handlers, BEN) == ["gated"]
    with pytest.raises(DomainError) as info:
        handlers.update_sync(c.UpdateProject(caller=BEN, project_id=pid, description="x"))
    assert info.value.reply.code == "insufficient_role" and "`developer`" in info.value.reply.message
    assert _codes(handlers.put_member_sync, _put_cmd(BEN, pid, "mem_cat", "viewer")) == "insufficient_role"

    _put(handlers, ANN, pid, "mem_ben", "developer")
    assert (
        handlers.update_sync(c.UpdateProject(caller=BEN, project_id=pid, description="x")).description == "x"
    )
    assert _codes(handlers.delete_sync, c.DeleteProject(caller=BEN, project_id=pid)) == "insufficient_role"
    assert _codes(handlers.remove_member_sync, _remove_cmd(BEN, pid, "mem_ann")) == "insufficient_role"

    _put(handlers, ANN, pid, "mem_ben", "admin")
    assert _put(handlers, BEN, pid, "mem_cat", "developer").role == "developer"
    # An admin manages the team but cannot make owners or touch them.
    assert _codes(handlers.put_member_sync, _put_cmd(BEN, pid, "mem_cat", "owner")) == "insufficient_role"
    assert _codes(handlers.put_member_sync, _put_cmd(BEN, pid, "mem_ann", "viewer")) == "insufficient_role"
    assert _codes(handlers.remove_member_sync, _remove_cmd(BEN, pid, "mem_ann")) == "insufficient_role"
    assert _remove(handlers, BEN, pid, "mem_cat").deleted
    assert _codes(handlers.get_sync, c.GetProject(caller=CAT, project_id=pid)) == "project_not_found"
    assert _codes(handlers.delete_sync, c.DeleteProject(caller=BEN, project_id=pid)) == "insufficient_role"
    assert handlers.delete_sync(c.DeleteProject(caller=ANN, project_id=pid)).deleted


def _remove_cmd(who: Caller, project_id: str, member_id: str) -> c.RemoveProjectMember:
    return c.RemoveProjectMember(caller=who, project_id=project_id, member_id=member_id)


def test_a_project_keeps_its_last_owner(handlers: ProjectsHandlers) -> None:
    pid = handlers.create_sync(c.CreateProject(caller=ANN, name="kept")).id
    assert _codes(handlers.put_member_sync, _put_cmd(ANN, pid, "mem_ann", "admin")) == "last_owner"
    assert _codes(handlers.remove_member_sync, _remove_cmd(ANN, pid, "mem_ann")) == "last_owner"
    # Unbound keys are account-wide, but the rule is the project's, not the caller's.
    assert _codes(handlers.remove_member_sync, _remove_cmd(ALICE, pid, "mem_ann")) == "last_owner"
    _put(handlers, ANN, pid, "mem_ben", "owner")
    assert _put(handlers, ANN, pid, "mem_ann", "viewer").role == "viewer"
    project = handlers.get_sync(c.GetProject(caller=ALICE, project_id=pid))
    assert project.owner == "mem_ben"
    assert _names(handlers, ALICE, owner="mem_ben") == ["kept"]
    assert _names(handlers, ALICE, owner="mem_ann") == []
    assert _codes(handlers.remove_member_sync, _remove_cmd(BEN, pid, "mem_ben")) == "last_owner"
    assert _codes(handlers.remove_member_sync, _remove_cmd(BEN, pid, "mem_cat")) == "project_member_not_found"


def test_unbound_keys_manage_any_team_and_own_nothing(handlers: ProjectsHandlers) -> None:
    pid = handlers.create_sync(c.CreateProject(caller=ALICE, name="shared")).id
    assert _put(handlers, ALICE, pid, "mem_ben", "developer").role == "developer"
    assert handlers.get_sync(c.GetProject(caller=ALICE, project_id=pid)).owner is None
    assert _put(handlers, ALICE, pid, "mem_cat", "owner").role == "owner"
    assert handlers.get_sync(c.GetProject(caller=ALICE, project_id=pid)).owner == "mem_cat"
    same = _put(handlers, ALICE, pid, "mem_cat", "owner")  # no change, no event
    assert handlers.get_sync(c.GetProject(caller=ALICE, project_id=pid)).version == 3 and same.role == "owner"
    got = handlers.get_member_sync(c.GetProjectMember(caller=BEN, project_id=pid, member_id="mem_cat"))
    assert got.role == "owner"
    missing = c.GetProjectMember(caller=ALICE, project_id=pid, member_id="mem_ann")
    assert _codes(handlers.get_member_sync, missing) == "project_member_not_found"


def test_member_lists_paginate_in_the_order_access_was_given(handlers: ProjectsHandlers) -> None:
    pid = handlers.create_sync(c.CreateProject(caller=ANN, name="big")).id
    for i in range(5):
        _put(handlers, ANN, pid, f"mem_{i}", "viewer")
    seen: list[str] = []
    cursor = None
    while True:
        page = handlers.list_members_sync(
            c.ListProjectMembers(caller=ANN, project_id=pid, limit=2, cursor=cursor)
        )
        seen += [m.id for m in page.data]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert seen == ["mem_ann"] + [f"mem_{i}" for i in range(5)]
    handlers.create_sync(c.CreateProject(caller=ALICE, name="other"))
    for cursor in (page_cursor(handlers), "garbage"):  # a project-list cursor is no member cursor
        bad = c.ListProjectMembers(caller=ANN, project_id=pid, cursor=cursor)
        assert _codes(handlers.list_members_sync, bad) == "invalid_cursor"


def _team_rows(part: Partition) -> list[tuple]:
    return [tuple(r) for r in part.view.query("SELECT * FROM project_members ORDER BY project_id, member_id")]


def test_rebuilt_view_keeps_teams_and_owners(parts: dict[str, Partition], handlers: ProjectsHandlers) -> None:
    a = handlers.create_sync(c.CreateProject(caller=ANN, name="a")).id
    b = handlers.create_sync(c.CreateProject(caller=ALICE, name="b")).id
    _put(handlers, ANN, a, "mem_ben", "owner")
    _put(handlers, ANN, a, "mem_ann", "developer")
    _put(handlers, ALICE, b, "mem_cat", "viewer")
    gone = handlers.create_sync(c.CreateProject(caller=BEN, name="gone")).id
    handlers.delete_sync(c.DeleteProject(caller=BEN, project_id=gone))
    live, team = _rows(parts["live"]), _team_rows(parts["live"])
    assert len(team) == 3 and {r[0] for r in team} == {a, b}
    handlers.rebuild_sync(c.RebuildView())
    assert (_rows(parts["live"]), _team_rows(parts["live"])) == (live, team)
    assert _names(handlers, ALICE, owner="mem_ben") == ["a"]
    assert _names(handlers, CAT) == ["b"]


def test_a_view_built_by_older_code_is_rebuilt_on_open(backend: str, tmp_path: Path) -> None:
    # The view as it was before team access: `owner` was a NOT NULL key id, no team table.
    old = sqlite3.connect(tmp_path / "projects-live.view.db")
    old.executescript(
        "CREATE TABLE projects (id TEXT PRIMARY KEY, account TEXT NOT NULL, name TEXT NOT NULL,"
        " description TEXT NOT NULL, owner TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,"
        " version INTEGER NOT NULL);"
        "CREATE TABLE view_position (id INTEGER PRIMARY KEY, position INTEGER NOT NULL);"
        "INSERT INTO view_position VALUES (1, 0);"
    )
    old.close()
    part = open_partition("live", bus=None)
    try:
        made = ProjectsHandlers({"live": part}).create_sync(c.CreateProject(caller=ALICE, name="fresh"))
        assert [tuple(r)[:5] for r in part.view.query("SELECT * FROM projects")] == [
            (made.id, "acct_alice", "fresh", "", None)
        ]
        assert part.view.query("PRAGMA user_version")[0][0] == listing.SCHEMA_VERSION
    finally:
        part.view.close()
        part.store.close()


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


def test_public_events_name_the_team_change_and_the_actor(
    parts: dict[str, Partition], handlers: ProjectsHandlers
) -> None:
    actor = Caller(
        account_id="acct_alice",
        mode="live",
        key_id="key_ann",
        member_id="mem_ann",
        ip="203.0.113.9",
        request_id="req_1",
    )
    pid = handlers.create_sync(c.CreateProject(caller=actor, name="evts")).id
    _put(handlers, actor, pid, "mem_ben", "viewer")
    _put(handlers, actor, pid, "mem_ben", "admin")
    _remove(handlers, actor, pid, "mem_ben")
    store = parts["live"].store
    to_public = publisher("live")
    published = [
        to_public(store, store.mapper.to_domain_event(n)) for n in store.recorder.select_notifications(0, 100)
    ]
    events = [public for _, public in filter(None, published)]
    assert [e.type for e in events] == [
        "project.created",
        "project.member_added",
        "project.member_added",
        "project.member_updated",
        "project.member_removed",
    ]
    assert events[0].data["owner"] == "mem_ann"
    assert [(e.data["id"], e.data["role"], e.data["project_id"]) for e in events[1:]] == [
        ("mem_ann", "owner", pid),
        ("mem_ben", "viewer", pid),
        ("mem_ben", "admin", pid),
        ("mem_ben", "admin", pid),
    ]
    assert events[3].data["previous_role"] == "viewer" and events[4].data["deleted"] is True
    assert all(e.actor == actor.actor() for e in events)
    assert {e.data["object"] for e in events[1:]} == {"project_member"}
