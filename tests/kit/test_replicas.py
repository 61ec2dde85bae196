"""Two replicas of the projects service on one event store: what one writes, the other reads at
once, although both cache aggregates in memory and keep read models of their own."""

from __future__ import annotations

from stratus_contracts import envs as e
from stratus_contracts import projects as c
from stratus_contracts.auth import Caller

from .conftest import Opener

ALICE = Caller(account_id="acct_alice", mode="live", key_id="key_alice")


def test_a_cached_aggregate_is_never_served_stale_after_another_replicas_write(open_replica: Opener) -> None:
    one, two = open_replica(), open_replica()
    made = one.call(c.CreateProject(caller=ALICE, name="web"))
    get = c.GetProject(caller=ALICE, project_id=made.id)
    assert two.call(get) == made  # now cached by replica two
    for n in range(1, 6):
        changed = one.call(c.UpdateProject(caller=ALICE, project_id=made.id, description=f"v{n}"))
        seen = two.call(get)
        assert (seen.version, seen.description) == (changed.version, f"v{n}")
        # ...and the other way round, each replica reading right after the other's write.
        back = two.call(c.UpdateProject(caller=ALICE, project_id=made.id, name=f"web-{n}"))
        assert one.call(get) == back
    one.call(c.DeleteProject(caller=ALICE, project_id=made.id))
    assert two.call(c.ListProjects(caller=ALICE)).data == []


def test_lists_and_environments_read_the_other_replicas_writes(open_replica: Opener) -> None:
    one, two = open_replica(), open_replica()
    project = one.call(c.CreateProject(caller=ALICE, name="api"))
    assert [p.id for p in two.call(c.ListProjects(caller=ALICE)).data] == [project.id]
    envs = two.call(e.ListEnvironments(caller=ALICE, project_id=project.id)).data
    assert [env.name for env in envs] == ["production", "staging"]
    prod = envs[0].id
    first = one.call(e.ChangeVars(caller=ALICE, env_id=prod, set=[e.VarChange(key="A", value="1")]))
    assert two.call(e.GetEnvironment(caller=ALICE, env_id=prod)).config_version == first.number
    second = two.call(e.ChangeVars(caller=ALICE, env_id=prod, set=[e.VarChange(key="A", value="2")]))
    page = one.call(e.ListEnvVars(caller=ALICE, env_id=prod))
    assert (page.config_version, page.data[0].value) == (second.number, "2")


def test_writers_on_two_replicas_race_and_both_stay_consistent(open_replica: Opener) -> None:
    one, two = open_replica(), open_replica()
    project = one.call(c.CreateProject(caller=ALICE, name="race"))
    # Interleaved writes to one aggregate from both replicas: each decides on what the store
    # holds when its batch begins, so none is lost and the versions run without gaps.
    for n in range(10):
        (one if n % 2 else two).call(
            c.UpdateProject(caller=ALICE, project_id=project.id, description=f"d{n}")
        )
    final_one = one.call(c.GetProject(caller=ALICE, project_id=project.id))
    final_two = two.call(c.GetProject(caller=ALICE, project_id=project.id))
    assert final_one == final_two
    assert (final_one.version, final_one.description) == (11, "d9")
