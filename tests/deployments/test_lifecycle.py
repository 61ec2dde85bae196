"""The deployments service's decisions, through its handlers in process (`open_local`, real
SQLite files): the lifecycle refuses moves its status does not allow, a ready deployment
supersedes the one before in the same commit, and a log keeps its limit and says what it cut."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratus_contracts import deployments as c
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_contracts.ids import decode_id
from stratus_deployments import handlers as h
from stratus_deployments.bootstrap import SERVICE
from stratus_kit import Local, open_local

CALLER = Caller(account_id="acct_one", mode="live", key_id="key_one")
TARGET = c.DeployTarget(
    account="acct_one",
    mode="live",
    project_id="prj_one",
    env_id="env_one",
    env_name="production",
    config_version=3,
    repo_url="file:///nowhere",
    build_command="",
    start_command="true",
    health_check_path="/",
)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    with open_local(SERVICE, directory=tmp_path) as opened:
        yield opened


def created(local: Local, **kw: str) -> tuple[c.Deployment, uuid.UUID]:
    made = local.call(c.CreateDeployment(caller=CALLER, target=TARGET, **kw))
    return made, decode_id("dep", made.id)  # type: ignore[return-value]


def to_ready(local: Local, dep: uuid.UUID, url: str = "http://127.0.0.1:1") -> c.Deployment:
    local.call(h.MarkBuilding(mode="live", deployment_id=dep, sha="a" * 40))
    local.call(h.MarkDeploying(mode="live", deployment_id=dep))
    return local.call(h.MarkReady(mode="live", deployment_id=dep, url=url))


def test_the_lifecycle_and_superseding(local: Local) -> None:
    first, first_id = created(local, ref="main")
    assert (first.status, first.ref, first.sha, first.config_version) == ("queued", "main", None, 3)
    with pytest.raises(DomainError):  # deploying before building
        local.call(h.MarkDeploying(mode="live", deployment_id=first_id))
    ready = to_ready(local, first_id)
    assert (ready.status, ready.sha, ready.url) == ("ready", "a" * 40, "http://127.0.0.1:1")
    assert ready.ready_at is not None

    second, second_id = created(local)
    to_ready(local, second_id)
    assert local.call(c.GetDeployment(caller=CALLER, deployment_id=first.id)).status == "superseded"
    with pytest.raises(DomainError) as refused:
        local.call(c.CancelDeployment(caller=CALLER, deployment_id=second.id))
    assert refused.value.reply.code == "deployment_not_cancelable"

    back = local.call(c.RollbackDeployment(caller=CALLER, deployment_id=first.id))
    assert (back.rollback_of, back.sha, back.config_version, back.status) == (first.id, "a" * 40, 3, "queued")
    # A rollback to a rollback runs the original build's artifact.
    back_id = decode_id("dep", back.id)
    to_ready(local, back_id)  # type: ignore[arg-type]
    again = local.call(c.RollbackDeployment(caller=CALLER, deployment_id=back.id))
    state = local.call(h.Load(mode="live", deployment_id=decode_id("dep", again.id)))
    assert again.rollback_of == back.id and state.artifact_of == first_id


def test_a_cancel_wins_over_the_runner(local: Local) -> None:
    made, dep = created(local)
    local.call(h.MarkBuilding(mode="live", deployment_id=dep, sha="b" * 40))
    canceled = local.call(c.CancelDeployment(caller=CALLER, deployment_id=made.id))
    assert canceled.status == "canceled"
    with pytest.raises(DomainError):
        local.call(h.MarkDeploying(mode="live", deployment_id=dep))
    with pytest.raises(DomainError) as refused:
        local.call(c.RollbackDeployment(caller=CALLER, deployment_id=made.id))
    assert refused.value.reply.code == "deployment_not_ready"


def test_a_restart_requeues_until_it_gives_up(local: Local) -> None:
    _, dep = created(local)
    for _ in range(2):
        local.call(h.MarkBuilding(mode="live", deployment_id=dep, sha="c" * 40))
        assert local.call(h.MarkRestarted(mode="live", deployment_id=dep)).status == "queued"
    local.call(h.MarkBuilding(mode="live", deployment_id=dep, sha="c" * 40))
    gave_up = local.call(h.MarkRestarted(mode="live", deployment_id=dep))
    assert (gave_up.status, gave_up.failure_code) == ("failed", "runner_interrupted")


def test_other_tenants_and_modes_get_404(local: Local) -> None:
    made, _ = created(local)
    for who in (
        Caller(account_id="acct_two", mode="live", key_id="key_two"),
        Caller(account_id="acct_one", mode="test", key_id="key_one"),
        Caller(account_id="acct_one", mode="live", key_id="key_r", project_ids=("prj_other",)),
        Caller(account_id="acct_one", mode="live", key_id="key_e", environments=("staging",)),
    ):
        with pytest.raises(DomainError) as refused:
            local.call(c.GetDeployment(caller=who, deployment_id=made.id))
        assert refused.value.reply.code == "deployment_not_found"
        page = local.call(c.ListDeployments(caller=who))
        assert page.data == []
    wrong_target = c.CreateDeployment(
        caller=Caller(account_id="acct_two", mode="live", key_id="k"), target=TARGET
    )
    with pytest.raises(DomainError):
        local.call(wrong_target)


def test_a_log_keeps_its_limit_in_order_and_says_what_it_cut(local: Local) -> None:
    made, dep = created(local)
    t = 1_700_000_000_000_000

    def append(lines: list[tuple[int, str, str]], close: bool = False) -> int:
        return local.call(
            h.AppendLog(mode="live", deployment_id=dep, phase="build", lines=lines, limit=5, close=close)
        )

    assert append([(t, "system", "Cloning")] + [(t, "stdout", f"line {n}") for n in range(4)]) == 5
    assert append([(t, "stdout", f"line {n}") for n in range(4, 8)] + [(t, "stderr", "late")]) == 7
    assert append([(t, "system", "Build done")], close=True) == 9
    page = local.call(c.ListDeploymentLogs(caller=CALLER, deployment_id=made.id, limit=1000))
    assert [line.seq for line in page.data] == list(range(1, 10))
    assert [(line.stream, line.text) for line in page.data] == [
        ("system", "Cloning"),
        *[("stdout", f"line {n}") for n in range(5)],
        ("system", "The build log reached its limit of 5 lines: later lines are not kept."),
        ("system", "Build done"),
        ("system", "4 build log lines were not kept (over the limit)."),
    ]
    assert page.last_seq == 9 and not page.has_more
    after = local.call(c.ListDeploymentLogs(caller=CALLER, deployment_id=made.id, after=7, limit=1))
    assert [line.seq for line in after.data] == [8] and after.has_more and after.next_cursor == "8"


def test_a_build_records_when_it_started_and_ended(local: Local) -> None:
    """What the metrics service's build durations are made from (`build_started_at`, `…finished_at`)."""
    made, dep = created(local, ref="main")
    assert (made.build_started_at, made.build_finished_at) == (None, None)
    building = local.call(h.MarkBuilding(mode="live", deployment_id=dep, sha="b" * 40))
    assert building.build_started_at is not None and building.build_finished_at is None
    deploying = local.call(h.MarkDeploying(mode="live", deployment_id=dep))
    assert deploying.build_started_at == building.build_started_at
    assert deploying.build_finished_at is not None
    assert deploying.build_finished_at >= deploying.build_started_at

    # A build that fails ends then too; one failing after its build (a health check) keeps the
    # build's own end.
    _, failing = created(local, ref="main")
    local.call(h.MarkBuilding(mode="live", deployment_id=failing, sha="c" * 40))
    failed = local.call(
        h.MarkFailed(mode="live", deployment_id=failing, code="build_failed", reason="exit 1")
    )
    assert failed.build_finished_at is not None and failed.build_finished_at >= failed.build_started_at
    late = local.call(h.MarkFailed(mode="live", deployment_id=dep, code="health_check_failed", reason="503"))
    assert late.build_finished_at == deploying.build_finished_at
