"""Deployments service messages: commands, queries, the deployment and log replies, and the
public events of a deployment's lifecycle.

A deployment (`dep_…`) builds one project's code at a git ref or sha, with one environment's
config version pinned, and serves it as that environment:

    queued → building → deploying → ready → superseded
                     ↘ failed, canceled

A newer ready deployment of the same environment supersedes the one before it. A rollback is a
new deployment made from an earlier ready one's artifact and config version, without a build.
Each deployment keeps its log: numbered lines (`seq` from 1, in order) of the build (`stdout`,
`stderr` of the user's commands, `system` for the runner's words) and, once it runs, of the app.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal, TypeVar

import msgspec

from stratus_contracts.auth import Caller
from stratus_contracts.events import Mode, event_type
from stratus_contracts.messages import Command, Query
from stratus_contracts.reply import RebuildResult

SERVICE = "deployments"
T = TypeVar("T")

Status = Literal["queued", "building", "deploying", "ready", "failed", "canceled", "superseded"]
STATUSES: tuple[Status, ...] = (
    "queued",
    "building",
    "deploying",
    "ready",
    "failed",
    "canceled",
    "superseded",
)
# Statuses a deployment leaves on its own: its build log may still grow.
ACTIVE: frozenset[str] = frozenset({"queued", "building", "deploying"})
LogStream = Literal["stdout", "stderr", "system"]
LOG_PAGE_MAX = 1000  # lines per page of `GET /v1/deployments/{id}/logs`


class DeploymentsCommand(Command[T], frozen=True, kw_only=True):
    service: ClassVar[str] = SERVICE


class DeploymentsQuery(Query[T], frozen=True, kw_only=True):
    service: ClassVar[str] = SERVICE


# --- what a deployment builds and runs ---------------------------------------------------------


class BuildSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How a project is built and run; an environment may override any of them (None: not set)."""

    repo_url: str | None = None
    build_command: str | None = None
    start_command: str | None = None
    health_check_path: str | None = None


class DeployTarget(msgspec.Struct, frozen=True, kw_only=True):
    """What projects resolves for a new deployment: the environment, its current config version
    and the effective build settings (the environment's override, else the project's)."""

    account: str
    mode: Mode
    project_id: str
    env_id: str
    env_name: str
    config_version: int
    repo_url: str
    build_command: str
    start_command: str
    health_check_path: str


# --- replies -----------------------------------------------------------------------------------


class Deployment(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["deployment"] = "deployment"
    project: str  # prj_…
    env: str  # the environment's name when deployed
    env_id: str
    status: Status
    ref: str | None
    sha: str | None  # pinned when the code is fetched (at once when the request named a sha)
    config_version: int  # the environment's config version the app runs with
    repo_url: str
    build_command: str
    start_command: str
    health_check_path: str
    url: str | None  # where this deployment answers while it is ready
    reason: str | None  # why it failed or was canceled
    failure_code: str | None  # a stable code for the failure (`build_failed`, …)
    rollback_of: str | None  # dep_… this one was rolled back to
    mode: Mode
    created: datetime
    updated: datetime
    ready_at: datetime | None = None
    version: int
    # When its latest build began and ended (null until then; events stored before these
    # existed decode without them).
    build_started_at: datetime | None = None
    build_finished_at: datetime | None = None


class DeploymentPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Deployment]
    has_more: bool
    next_cursor: str | None = None


class LogLine(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    ts: datetime
    stream: LogStream
    text: str


class LogPage(msgspec.Struct, frozen=True, kw_only=True):
    data: list[LogLine]
    has_more: bool
    next_cursor: str | None
    status: Status  # the deployment's status when the page was read
    last_seq: int  # the newest line's seq (0: none yet)


# --- commands and queries ----------------------------------------------------------------------


class CreateDeployment(DeploymentsCommand[Deployment], frozen=True, kw_only=True):
    """The gateway resolved `target` through projects (access, role, settings) first."""

    caller: Caller
    target: DeployTarget
    ref: str | None = None
    sha: str | None = None


class CancelDeployment(DeploymentsCommand[Deployment], frozen=True, kw_only=True):
    caller: Caller
    deployment_id: str


class RollbackDeployment(DeploymentsCommand[Deployment], frozen=True, kw_only=True):
    """A new deployment of `deployment_id`'s artifact and config version (409 if it never
    became ready)."""

    caller: Caller
    deployment_id: str


class GetDeployment(DeploymentsQuery[Deployment], frozen=True, kw_only=True):
    caller: Caller
    deployment_id: str


class ListDeployments(DeploymentsQuery[DeploymentPage], frozen=True, kw_only=True):
    caller: Caller
    project_id: str | None = None
    env: str | None = None  # an environment's name (with project) or id
    status: Status | None = None
    limit: int = 20
    cursor: str | None = None


class ListDeploymentLogs(DeploymentsQuery[LogPage], frozen=True, kw_only=True):
    """Lines after `after` (a seq; the cursor), or from `since`, oldest first."""

    caller: Caller
    deployment_id: str
    after: int = 0
    since: datetime | None = None
    limit: int = 100


class RebuildReadModels(DeploymentsCommand[RebuildResult], frozen=True, kw_only=True):
    """Drop the deployments read models and replay them (`stratus rebuild deployments`)."""


def log_subject(mode: str, deployment_id: str) -> str:
    """Core NATS subject on which the service says "new lines" for one deployment (no data: a
    follower then reads them with `ListDeploymentLogs`, which checks the tenant)."""
    return f"sig.deployments.logs.{mode}.{deployment_id}"


# --- public events -----------------------------------------------------------------------------

DEPLOYMENT_CREATED = event_type("deployment.created", Deployment, "A deployment was queued.")
DEPLOYMENT_BUILDING = event_type(
    "deployment.building", Deployment, "A deployment's code was fetched (its sha pinned) and its build began."
)
DEPLOYMENT_DEPLOYING = event_type(
    "deployment.deploying", Deployment, "A deployment's build finished and its app is starting."
)
DEPLOYMENT_SUCCEEDED = event_type(
    "deployment.succeeded", Deployment, "A deployment passed its health check and serves its environment."
)
DEPLOYMENT_FAILED = event_type(
    "deployment.failed", Deployment, "A deployment failed: `reason` and `failure_code` say why."
)
DEPLOYMENT_CANCELED = event_type("deployment.canceled", Deployment, "A deployment was canceled.")
DEPLOYMENT_ROLLED_BACK = event_type(
    "deployment.rolled_back",
    Deployment,
    "A rollback deployment (`rollback_of`) serves its environment with an earlier artifact and config.",
)
DEPLOYMENT_SUPERSEDED = event_type(
    "deployment.superseded", Deployment, "A newer deployment of the environment replaced this one."
)
