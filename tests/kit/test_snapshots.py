"""Snapshots: a long history loads from its newest snapshot plus the events after it, and gives
exactly the state a full replay gives, at the newest version and at any earlier one."""

from __future__ import annotations

import msgspec
import pytest

from stratus_contracts import envs as e
from stratus_contracts import projects as c
from stratus_contracts.auth import Caller
from stratus_contracts.ids import decode_id
from stratus_eventstore import snapshots
from stratus_kit import Partition

from .conftest import Opener

ALICE = Caller(account_id="acct_alice", mode="live", key_id="key_alice")


def _replayed(part: Partition, aggregate_id, version: int | None = None):
    return part.project(None, part.store.events.get(aggregate_id, lte=version))


def _env_with_versions(open_replica: Opener, changes: int) -> tuple[str, object]:
    local = open_replica()
    project = local.call(c.CreateProject(caller=ALICE, name="long"))
    env = local.call(e.ListEnvironments(caller=ALICE, project_id=project.id)).data[0]
    for n in range(changes):
        local.call(
            e.ChangeVars(caller=ALICE, env_id=env.id, set=[e.VarChange(key=f"K{n % 7}", value=str(n))])
        )
    return env.id, local


def test_a_long_history_loads_from_a_snapshot_as_a_full_replay_would(open_replica: Opener) -> None:
    env_id, writer = _env_with_versions(open_replica, 250)
    aggregate = decode_id("env", env_id)
    part = writer.partitions["live"]
    taken = list(part.store.snapshots.get(aggregate))
    assert [s.originator_version for s in taken] == [100, 200]  # every 100 events
    fresh = open_replica().partitions["live"]  # another replica: nothing cached
    loaded = fresh.load(aggregate)
    assert loaded == _replayed(part, aggregate)
    assert loaded.version == 251 and loaded.config_version == 251
    for version in (1, 99, 100, 150, 200, 201):
        assert fresh.load(aggregate, version) == _replayed(part, aggregate, version)


def test_config_versions_read_the_same_through_snapshots(open_replica: Opener) -> None:
    env_id, writer = _env_with_versions(open_replica, 120)
    reader = open_replica()
    for number in (1, 2, 60, 101, 121):
        asked = e.GetConfigVersion(caller=ALICE, env_id=env_id, number=number)
        assert reader.call(asked) == writer.call(asked)


def test_a_snapshot_of_another_shape_is_ignored(
    open_replica: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_id, writer = _env_with_versions(open_replica, 110)
    aggregate = decode_id("env", env_id)
    part = writer.partitions["live"]
    expected = _replayed(part, aggregate)
    # As if the state's fields had changed since the snapshot was taken: its schema no longer
    # matches, so the aggregate is replayed from its events instead of misread.
    monkeypatch.setattr(snapshots, "schema_of", lambda state_type: "another-shape")
    assert open_replica().partitions["live"].load(aggregate) == expected
    snapshot = next(iter(part.store.snapshots.get(aggregate)))
    assert snapshots.restore(snapshot) is None
    assert msgspec.msgpack.decode(snapshot.state, type=type(expected)).version == 100
