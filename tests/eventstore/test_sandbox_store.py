"""The sandbox reset in one process, on every backend: the test partition becomes an empty one of
the new epoch, live is untouched, and the old test partition's store is gone for good (its
SQLite files or PostgreSQL tables), so a process opening an old epoch finds nothing either."""

from __future__ import annotations

import asyncio

from stratus_contracts import projects as c
from stratus_contracts.auth import Caller
from stratus_kit import open_local
from stratus_projects.bootstrap import SERVICE

from .support import Services

LIVE = Caller(account_id="acct_sbx", mode="live", key_id="key_live")
TEST = Caller(account_id="acct_sbx", mode="test", key_id="key_test")


def names(local, caller: Caller) -> list[str]:  # type: ignore[no-untyped-def]
    return [p.name for p in local.call(c.ListProjects(caller=caller)).data]


def test_a_reset_empties_test_mode_and_drops_its_old_store(services: Services, backend: str) -> None:
    projects = services.projects()
    projects.call(c.CreateProject(caller=LIVE, name="kept"))
    projects.call(c.CreateProject(caller=TEST, name="gone"))
    old_test = projects.partitions["test"].store_name

    asyncio.run(projects.reset_sandbox(1))

    assert projects.partitions["test"].store_name == "test_e1" != old_test
    assert names(projects, TEST) == []
    assert names(projects, LIVE) == ["kept"]
    projects.call(c.CreateProject(caller=TEST, name="gone"))  # its name is free again
    assert names(projects, TEST) == ["gone"]

    # A replica still at epoch 0 would open an empty test store: the old one was dropped.
    keyring = projects.deps["keyring"]
    stale = open_local(SERVICE, directory=services.directory, deps={"keyring": keyring}, epoch=0)
    try:
        assert names(stale, TEST) == []
        assert names(stale, LIVE) == ["kept"]
    finally:
        stale.close()
    later = open_local(SERVICE, directory=services.directory, deps={"keyring": keyring}, epoch=1)
    try:
        assert names(later, TEST) == ["gone"]
    finally:
        later.close()
