"""The projects service's store behaviour against every event-store backend (SQLite, PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratus_contracts import projects as c
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_projects.bootstrap import open_partition
from stratus_projects.handlers import Partition, ProjectsHandlers

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
    assert created.id.startswith("prj_") and created.version == 1 and created.owner == "key_alice"
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
    assert handlers.list_sync(c.ListProjects(caller=ALICE, owner="key_nobody")).data == []
    assert len(handlers.list_sync(c.ListProjects(caller=ALICE, owner="key_alice", limit=100)).data) == 7
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
