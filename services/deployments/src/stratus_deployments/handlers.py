"""Deployment handlers: `(message, state, now) → (events, reply)`; the kit saves.

The public ones answer the gateway: a caller sees a deployment only in their own account and
mode, of a project and environment their key may see (anything else is the same 404). The
gateway resolved the deployment's target through projects first, which checks the project,
the environment and a member's role; it also checks a member-bound key's project before it
asks for one of its deployments.

The local ones (no subject) are the runner's reports, sent by the orchestrator in this process:
each is a step of the lifecycle that `domain` refuses when the deployment has moved on (a cancel
that won the race), so the runner's view never overwrites the user's.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from stratus_contracts import deployments as c
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_contracts.events import Mode
from stratus_contracts.ids import decode_id, new_uuid
from stratus_contracts.messages import Command, Query
from stratus_deployments import domain, read_model, views
from stratus_kit import Decision, State

# --- local messages: the orchestrator's reports -------------------------------------------------


class Report(Command[c.Deployment], frozen=True, kw_only=True):
    mode: Mode
    deployment_id: uuid.UUID


class MarkBuilding(Report, frozen=True, kw_only=True):
    sha: str


class MarkDeploying(Report, frozen=True, kw_only=True):
    pass


class MarkReady(Report, frozen=True, kw_only=True):
    url: str


class MarkFailed(Report, frozen=True, kw_only=True):
    code: str
    reason: str


class MarkRestarted(Report, frozen=True, kw_only=True):
    pass


class AppendLog(Command[int], frozen=True, kw_only=True):
    """Keep lines of one deployment's log (within the phase's limit); answers the newest seq."""

    mode: Mode
    deployment_id: uuid.UUID
    phase: str  # "build" or "runtime"
    lines: list[tuple[int, str, str]]  # (epoch µs, stream, text)
    limit: int
    close: bool = False  # the phase ended: add the closing line if lines were cut


class Pending(Query[list[tuple[uuid.UUID, str, str]]], frozen=True, kw_only=True):
    """Every deployment of the partition not finished yet, oldest first: (id, status, env id)."""

    mode: Mode


class Serving(Query[list[uuid.UUID]], frozen=True, kw_only=True):
    """The deployments of the partition that serve their environment."""

    mode: Mode


class Load(Query[domain.Deployment | None], frozen=True, kw_only=True):
    mode: Mode
    deployment_id: uuid.UUID


# --- reads -------------------------------------------------------------------------------------


def not_found(deployment_id: str) -> DomainError:
    return DomainError("deployment_not_found", f"No deployment {deployment_id!r} in this account.")


def visible(state: object, caller: Caller) -> bool:
    if not isinstance(state, domain.Deployment) or state.account != caller.account_id:
        return False
    if not caller.may_see_project(state.project_id):
        return False
    return caller.environments is None or state.env_name in caller.environments


def accessible(state: State, caller: Caller, deployment_id: str) -> domain.Deployment:
    found = state.get(decode_id("dep", deployment_id))
    if not visible(found, caller):
        raise not_found(deployment_id)
    return found  # type: ignore[return-value]


def get_deployment(q: c.GetDeployment, state: State, now: datetime) -> Decision:
    return [], views.deployment(accessible(state, q.caller, q.deployment_id), state.name)  # type: ignore[arg-type]


def list_deployments(q: c.ListDeployments, state: State, now: datetime) -> Decision:
    caller = q.caller
    if q.project_id is not None and not caller.may_see_project(q.project_id):
        return [], c.DeploymentPage(data=[], has_more=False)
    model = state.read_model(read_model.NAME)
    visible_projects = None if caller.project_ids is None else frozenset(caller.project_ids)
    ids, more, cursor = read_model.page(
        model,
        caller.account_id,
        project_id=q.project_id,
        env=q.env,
        status=q.status,
        visible_projects=visible_projects,
        limit=q.limit,
        cursor=q.cursor,
    )
    shown = [state.get(i) for i in ids]
    data = [views.deployment(d, state.name) for d in shown if visible(d, caller)]  # type: ignore[arg-type]
    return [], c.DeploymentPage(data=data, has_more=more, next_cursor=cursor)


def list_deployment_logs(q: c.ListDeploymentLogs, state: State, now: datetime) -> Decision:
    found = accessible(state, q.caller, q.deployment_id)
    log = state.get(domain.log_id(found.id))
    last = log.lines if isinstance(log, domain.Log) else 0
    limit = max(1, min(q.limit, c.LOG_PAGE_MAX))
    lines = read_model.lines(state.read_model(read_model.NAME), q.deployment_id, q.after, q.since, limit + 1)
    more = len(lines) > limit
    lines = lines[:limit]
    cursor = str(lines[-1].seq) if lines else (str(q.after) if q.after else None)
    return [], c.LogPage(data=lines, has_more=more, next_cursor=cursor, status=found.status, last_seq=last)


# --- writes ------------------------------------------------------------------------------------


def create_deployment(cmd: c.CreateDeployment, state: State, now: datetime) -> Decision:
    caller, target = cmd.caller, cmd.target
    if target.account != caller.account_id or target.mode != caller.mode:
        raise DomainError("project_not_found", f"No project {target.project_id!r} in this account.")
    events = domain.create(new_uuid(), target, cmd.ref, cmd.sha, caller.actor(), now)
    return events, views.deployment(domain.apply_all(None, events), state.name)  # type: ignore[arg-type]


def rollback_deployment(cmd: c.RollbackDeployment, state: State, now: datetime) -> Decision:
    source = accessible(state, cmd.caller, cmd.deployment_id)
    events = domain.rollback(new_uuid(), source, cmd.caller.actor(), now)
    return events, views.deployment(domain.apply_all(None, events), state.name)  # type: ignore[arg-type]


def cancel_deployment(cmd: c.CancelDeployment, state: State, now: datetime) -> Decision:
    found = accessible(state, cmd.caller, cmd.deployment_id)
    events = domain.cancel(found, cmd.caller.actor(), now)
    return events, views.deployment(domain.apply_all(found, events), state.name)  # type: ignore[arg-type]


# --- the orchestrator's reports ----------------------------------------------------------------


def _own(state: State, deployment_id: uuid.UUID) -> domain.Deployment:
    found = state.get(deployment_id)
    if not isinstance(found, domain.Deployment):
        raise DomainError("deployment_not_found", f"No deployment {deployment_id}.")
    return found


def _reply(state: State, found: domain.Deployment, events: list) -> Decision:
    return events, views.deployment(
        domain.apply_all(found, [e for e in events if e.originator_id == found.id]), state.name
    )  # type: ignore[arg-type]


def mark_building(cmd: MarkBuilding, state: State, now: datetime) -> Decision:
    found = _own(state, cmd.deployment_id)
    return _reply(state, found, domain.building(found, cmd.sha, now))


def mark_deploying(cmd: MarkDeploying, state: State, now: datetime) -> Decision:
    found = _own(state, cmd.deployment_id)
    return _reply(state, found, domain.deploying(found, now))


def mark_ready(cmd: MarkReady, state: State, now: datetime) -> Decision:
    found = _own(state, cmd.deployment_id)
    slot = state.get(domain.slot_id(found.env_id))
    previous = state.get(slot.current) if isinstance(slot, domain.Slot) and slot.current else None
    return _reply(state, found, domain.ready(found, slot, previous, cmd.url, now))


def mark_failed(cmd: MarkFailed, state: State, now: datetime) -> Decision:
    found = _own(state, cmd.deployment_id)
    return _reply(state, found, domain.failed(found, cmd.code, cmd.reason, now))


def mark_restarted(cmd: MarkRestarted, state: State, now: datetime) -> Decision:
    found = _own(state, cmd.deployment_id)
    return _reply(state, found, domain.restarted(found, now))


def append_log(cmd: AppendLog, state: State, now: datetime) -> Decision:
    log = state.get(domain.log_id(cmd.deployment_id))
    lines = list(cmd.lines)
    if cmd.close and (summary := domain.cut_summary(log, cmd.phase)) is not None:
        lines.append((int(now.timestamp() * 1_000_000), "system", summary))
    events = domain.append(log, cmd.deployment_id, lines, cmd.phase, cmd.limit, now) if lines else []
    after = domain.apply_all(log, events)
    return events, after.lines if isinstance(after, domain.Log) else 0


def pending(q: Pending, state: State, now: datetime) -> Decision:
    return [], read_model.unfinished(state.read_model(read_model.NAME))


def serving(q: Serving, state: State, now: datetime) -> Decision:
    return [], read_model.serving(state.read_model(read_model.NAME))


def load(q: Load, state: State, now: datetime) -> Decision:
    found = state.get(q.deployment_id)
    return [], found if isinstance(found, domain.Deployment) else None


HANDLERS = {
    c.CreateDeployment: create_deployment,
    c.RollbackDeployment: rollback_deployment,
    c.CancelDeployment: cancel_deployment,
    c.GetDeployment: get_deployment,
    c.ListDeployments: list_deployments,
    c.ListDeploymentLogs: list_deployment_logs,
    MarkBuilding: mark_building,
    MarkDeploying: mark_deploying,
    MarkReady: mark_ready,
    MarkFailed: mark_failed,
    MarkRestarted: mark_restarted,
    AppendLog: append_log,
    Pending: pending,
    Serving: serving,
    Load: load,
}
