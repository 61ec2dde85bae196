"""Deployments, the slot of each environment they serve, and their logs: state, events, decisions.

Pure: no I/O, and the clock comes in as `now`. A deployment moves along its lifecycle only by
the decisions here, each of which refuses a move its status does not allow, so that the runner's
reports, a user's cancel and a restart's recovery can race and the log stays consistent.

An environment's *slot* (an aggregate whose id is derived from the environment's id) names the
deployment that serves it. A deployment becomes ready in the same commit that moves the slot to
it and supersedes the one before, so two deployments finishing together cannot both be current.

A deployment's *log* is an aggregate of its own (its id derived from the deployment's): chunks
of numbered lines (`LogAppended`), so that a build printing 100,000 lines costs a hundred
events, not a hundred thousand, and the lines live in the same event store as everything else.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import singledispatch

import msgspec

from stratus_contracts.deployments import ACTIVE, BuildSettings, DeployTarget, Status
from stratus_contracts.errors import DomainError
from stratus_contracts.events import Actor
from stratus_eventstore.model import DomainEvent, index_uuid

# How many times a deployment interrupted by a restart of the service is started again before
# it is failed (a build that kills its own runner would otherwise loop forever).
MAX_ATTEMPTS = 3


class Deployment(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    version: int
    account: str
    project_id: str
    env_id: str
    env_name: str
    status: Status
    ref: str | None
    sha: str | None
    config_version: int
    settings: BuildSettings
    created: datetime
    updated: datetime
    url: str | None = None
    reason: str | None = None
    failure_code: str | None = None
    rollback_of: uuid.UUID | None = None
    ready_at: datetime | None = None
    attempts: int = 1
    # The deployment whose built artifact this one runs (itself, unless a rollback): a rollback
    # of a rollback runs the original build.
    artifact_of: uuid.UUID | None = None
    actor: Actor | None = None  # who asked for it (the runner's reveal of its variables names them)
    # When its (latest) build began and ended: the metrics service records the build's duration.
    build_started_at: datetime | None = None
    build_finished_at: datetime | None = None


class Slot(msgspec.Struct, frozen=True, kw_only=True):
    """Which deployment serves an environment."""

    id: uuid.UUID
    version: int
    env_id: str
    current: uuid.UUID | None


class Log(msgspec.Struct, frozen=True, kw_only=True):
    """A deployment's log as a count: the lines themselves are in the events (and read model)."""

    id: uuid.UUID
    version: int
    lines: int = 0  # the newest line's seq
    build_lines: int = 0  # user lines kept in the build phase
    runtime_lines: int = 0  # user lines kept once the app runs
    build_cut: int = 0  # build lines not kept (over the limit)
    runtime_cut: int = 0


class DeploymentEvent(DomainEvent, frozen=True, kw_only=True):
    actor: Actor | None = None


class DeploymentCreated(DeploymentEvent, frozen=True, kw_only=True):
    account: str
    project_id: str
    env_id: str
    env_name: str
    ref: str | None
    sha: str | None
    config_version: int
    settings: BuildSettings
    rollback_of: uuid.UUID | None = None
    artifact_of: uuid.UUID | None = None


class DeploymentBuilding(DeploymentEvent, frozen=True, kw_only=True):
    sha: str


class DeploymentDeploying(DeploymentEvent, frozen=True, kw_only=True):
    pass


class DeploymentSucceeded(DeploymentEvent, frozen=True, kw_only=True):
    url: str


class DeploymentRolledBack(DeploymentEvent, frozen=True, kw_only=True):
    """A rollback deployment became ready (published as `deployment.rolled_back`)."""

    url: str


class DeploymentFailed(DeploymentEvent, frozen=True, kw_only=True):
    code: str
    reason: str


class DeploymentCanceled(DeploymentEvent, frozen=True, kw_only=True):
    reason: str


class DeploymentSuperseded(DeploymentEvent, frozen=True, kw_only=True):
    by: uuid.UUID


class DeploymentRestarted(DeploymentEvent, frozen=True, kw_only=True):
    """The service restarted while this deployment was under way: it is queued again."""

    reason: str


class SlotMoved(DomainEvent, frozen=True, kw_only=True):
    env_id: str
    current: uuid.UUID


class LogAppended(DomainEvent, frozen=True, kw_only=True):
    deployment_id: uuid.UUID
    first: int  # the seq of lines[0]
    # (epoch microseconds, stream, text), in order
    lines: list[tuple[int, str, str]]
    phase: str = "build"  # "build" or "runtime": which limit the user lines count against


class LogCut(DomainEvent, frozen=True, kw_only=True):
    """Lines not kept because a phase's log reached its limit."""

    lines: int
    phase: str = "build"


SUCCESS = (DeploymentSucceeded, DeploymentRolledBack)


def slot_id(env_id: str) -> uuid.UUID:
    return index_uuid("deployment-slot", env_id)


def log_id(deployment_id: uuid.UUID) -> uuid.UUID:
    return index_uuid("deployment-log", str(deployment_id))


# --- applying events -------------------------------------------------------------------------


@singledispatch
def mutate(event: DomainEvent, state: object) -> object:
    raise NotImplementedError(type(event).__name__)


@mutate.register
def _(event: DeploymentCreated, _: None) -> Deployment:
    return Deployment(
        id=event.originator_id,
        version=event.originator_version,
        account=event.account,
        project_id=event.project_id,
        env_id=event.env_id,
        env_name=event.env_name,
        status="queued",
        ref=event.ref,
        sha=event.sha,
        config_version=event.config_version,
        settings=event.settings,
        created=event.timestamp,
        updated=event.timestamp,
        rollback_of=event.rollback_of,
        artifact_of=event.artifact_of or event.rollback_of or event.originator_id,
        actor=event.actor,
    )


def _moved(state: Deployment, event: DomainEvent, status: Status, **changes: object) -> Deployment:
    return msgspec.structs.replace(
        state, version=event.originator_version, updated=event.timestamp, status=status, **changes
    )


def _build_ended(state: Deployment, event: DomainEvent) -> dict[str, object]:
    """A failure or cancel during the build ends the build then."""
    return {"build_finished_at": event.timestamp} if state.status == "building" else {}


@mutate.register
def _(event: DeploymentBuilding, state: Deployment) -> Deployment:
    return _moved(
        state, event, "building", sha=event.sha, build_started_at=event.timestamp, build_finished_at=None
    )


@mutate.register
def _(event: DeploymentDeploying, state: Deployment) -> Deployment:
    return _moved(state, event, "deploying", build_finished_at=event.timestamp)


@mutate.register(DeploymentSucceeded)
@mutate.register(DeploymentRolledBack)
def _(event: DeploymentSucceeded | DeploymentRolledBack, state: Deployment) -> Deployment:
    return _moved(state, event, "ready", url=event.url, ready_at=event.timestamp)


@mutate.register
def _(event: DeploymentFailed, state: Deployment) -> Deployment:
    return _moved(
        state,
        event,
        "failed",
        reason=event.reason,
        failure_code=event.code,
        url=None,
        **_build_ended(state, event),
    )


@mutate.register
def _(event: DeploymentCanceled, state: Deployment) -> Deployment:
    return _moved(state, event, "canceled", reason=event.reason, url=None, **_build_ended(state, event))


@mutate.register
def _(event: DeploymentSuperseded, state: Deployment) -> Deployment:
    return _moved(state, event, "superseded", url=None)


@mutate.register
def _(event: DeploymentRestarted, state: Deployment) -> Deployment:
    return _moved(state, event, "queued", attempts=state.attempts + 1)


@mutate.register
def _(event: SlotMoved, _: Slot | None) -> Slot:
    return Slot(
        id=event.originator_id, version=event.originator_version, env_id=event.env_id, current=event.current
    )


@mutate.register
def _(event: LogAppended, state: Log | None) -> Log:
    log = state or Log(id=event.originator_id, version=0)
    user = sum(1 for _, stream, _ in event.lines if stream != "system")
    field = "build_lines" if event.phase == "build" else "runtime_lines"
    return msgspec.structs.replace(
        log,
        version=event.originator_version,
        lines=event.first + len(event.lines) - 1,
        **{field: getattr(log, field) + user},
    )


@mutate.register
def _(event: LogCut, state: Log | None) -> Log:
    log = state or Log(id=event.originator_id, version=0)
    field = "build_cut" if event.phase == "build" else "runtime_cut"
    return msgspec.structs.replace(
        log, version=event.originator_version, **{field: getattr(log, field) + event.lines}
    )


def apply_all(state: object, events: Iterable[DomainEvent]) -> object:
    for event in events:
        state = mutate(event, state)
    return state


# --- decisions -------------------------------------------------------------------------------


def create(
    deployment_id: uuid.UUID,
    target: DeployTarget,
    ref: str | None,
    sha: str | None,
    actor: Actor | None,
    now: datetime,
) -> list[DomainEvent]:
    settings = BuildSettings(
        repo_url=target.repo_url,
        build_command=target.build_command,
        start_command=target.start_command,
        health_check_path=target.health_check_path,
    )
    return [
        DeploymentCreated(
            originator_id=deployment_id,
            originator_version=1,
            timestamp=now,
            actor=actor,
            account=target.account,
            project_id=target.project_id,
            env_id=target.env_id,
            env_name=target.env_name,
            ref=ref,
            sha=sha,
            config_version=target.config_version,
            settings=settings,
        )
    ]


def rollback(
    deployment_id: uuid.UUID, source: Deployment, actor: Actor | None, now: datetime
) -> list[DomainEvent]:
    """A new deployment of `source`'s artifact, with its sha, settings and config version."""
    if source.ready_at is None:
        raise DomainError(
            "deployment_not_ready",
            f"This deployment is {source.status} and never became ready:"
            " there is no artifact to roll back to.",
        )
    return [
        DeploymentCreated(
            originator_id=deployment_id,
            originator_version=1,
            timestamp=now,
            actor=actor,
            account=source.account,
            project_id=source.project_id,
            env_id=source.env_id,
            env_name=source.env_name,
            ref=source.ref,
            sha=source.sha,
            config_version=source.config_version,
            settings=source.settings,
            rollback_of=source.id,
            artifact_of=source.artifact_of or source.id,
        )
    ]


def _next(
    state: Deployment, event_type: type[DeploymentEvent], now: datetime, **fields: object
) -> DeploymentEvent:
    return event_type(originator_id=state.id, originator_version=state.version + 1, timestamp=now, **fields)


def _require(state: Deployment, allowed: Iterable[str], doing: str) -> None:
    if state.status not in allowed:
        raise DomainError(
            "deployment_not_cancelable" if doing == "cancel" else "conflict",
            f"The deployment is {state.status}; it cannot {doing} now.",
        )


def building(state: Deployment, sha: str, now: datetime) -> list[DomainEvent]:
    _require(state, ("queued",), "start building")
    return [_next(state, DeploymentBuilding, now, sha=sha)]


def deploying(state: Deployment, now: datetime) -> list[DomainEvent]:
    _require(state, ("building",), "start deploying")
    return [_next(state, DeploymentDeploying, now)]


def ready(
    state: Deployment, slot: Slot | None, previous: Deployment | None, url: str, now: datetime
) -> list[DomainEvent]:
    """Ready, serving the environment: the slot moves to it and the one it replaces is superseded."""
    _require(state, ("deploying",), "become ready")
    kind = DeploymentRolledBack if state.rollback_of is not None else DeploymentSucceeded
    events: list[DomainEvent] = [_next(state, kind, now, url=url)]
    events.append(
        SlotMoved(
            originator_id=slot_id(state.env_id),
            originator_version=(slot.version if slot else 0) + 1,
            timestamp=now,
            env_id=state.env_id,
            current=state.id,
        )
    )
    if previous is not None and previous.id != state.id and previous.status == "ready":
        events.append(_next(previous, DeploymentSuperseded, now, by=state.id))
    return events


def failed(state: Deployment, code: str, reason: str, now: datetime) -> list[DomainEvent]:
    _require(state, ACTIVE, "fail")
    return [_next(state, DeploymentFailed, now, code=code, reason=reason)]


def cancel(state: Deployment, actor: Actor | None, now: datetime) -> list[DomainEvent]:
    _require(state, ACTIVE, "cancel")
    return [_next(state, DeploymentCanceled, now, actor=actor, reason="Canceled by request.")]


def restarted(state: Deployment, now: datetime) -> list[DomainEvent]:
    """After a restart of the service: queued again, or failed once it has been tried enough."""
    if state.status not in ("building", "deploying"):
        return []
    if state.attempts >= MAX_ATTEMPTS:
        reason = f"The deployments service stopped during this deployment {state.attempts} times; giving up."
        return [_next(state, DeploymentFailed, now, code="runner_interrupted", reason=reason)]
    reason = "The deployments service restarted during this deployment; starting it again."
    return [_next(state, DeploymentRestarted, now, reason=reason)]


def append(
    log: Log | None,
    deployment_id: uuid.UUID,
    lines: Sequence[tuple[int, str, str]],
    phase: str,
    limit: int,
    now: datetime,
) -> list[DomainEvent]:
    """Keep `lines` up to the phase's `limit` of user lines (system lines always count in);
    the first time lines are cut, one system line says so, and the count of what was cut is
    recorded for the phase's closing line."""
    state = log or Log(id=log_id(deployment_id), version=0)
    kept_so_far = state.build_lines if phase == "build" else state.runtime_lines
    cut_before = state.build_cut if phase == "build" else state.runtime_cut
    room = max(limit - kept_so_far, 0)
    kept: list[tuple[int, str, str]] = []
    cut = 0
    for line in lines:
        if line[1] == "system":
            kept.append(line)
        elif room > 0:
            kept.append(line)
            room -= 1
        else:
            cut += 1
    if cut and not cut_before:
        word = "build" if phase == "build" else "runtime"
        kept.append(
            (
                lines[-1][0],
                "system",
                f"The {word} log reached its limit of {limit:,} lines: later lines are not kept.",
            )
        )
    events: list[DomainEvent] = []
    version = state.version
    if kept:
        version += 1
        events.append(
            LogAppended(
                originator_id=state.id,
                originator_version=version,
                timestamp=now,
                deployment_id=deployment_id,
                first=state.lines + 1,
                lines=kept,
                phase=phase,
            )
        )
    if cut:
        version += 1
        events.append(
            LogCut(originator_id=state.id, originator_version=version, timestamp=now, lines=cut, phase=phase)
        )
    return events


def cut_summary(log: Log | None, phase: str) -> str | None:
    """The closing line of a phase whose log was cut, or None."""
    if log is None:
        return None
    cut = log.build_cut if phase == "build" else log.runtime_cut
    if not cut:
        return None
    return f"{cut:,} {phase} log lines were not kept (over the limit)."
