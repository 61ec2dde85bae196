"""Read models are fed lazily (a handler that reads one feeds it first), but never fall further
behind the log than `FEED_BACKLOG`: the writer feeds them after a batch once they lag that much,
so the first list after a burst of writes does not pay for the whole burst."""

from __future__ import annotations

from stratus_contracts import projects as c
from stratus_contracts.auth import Caller
from stratus_kit.partition import FEED_BACKLOG

from .conftest import Opener

ALICE = Caller(account_id="acct_alice", mode="live", key_id="key_alice")


def test_a_burst_of_writes_leaves_the_read_models_at_most_the_backlog_behind(open_replica: Opener) -> None:
    local = open_replica()
    part = local.partitions["live"]
    start = part.read_position
    made = [local.call(c.CreateProject(caller=ALICE, name=f"p{n}")) for n in range(400)]
    assert part.position - start > 2 * FEED_BACKLOG  # the burst is longer than the backlog, twice
    assert part.read_position > start  # fed along the way, though nothing read a list
    assert part.position - part.read_position < FEED_BACKLOG
    # A list still reads every write up to its own moment.
    for project in (made[0], made[-1]):
        page = local.call(c.ListProjects(caller=ALICE, name=project.name))
        assert [p.id for p in page.data] == [project.id]
    assert part.read_position == part.position
