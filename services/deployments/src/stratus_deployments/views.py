"""What the deployments service shows of its aggregates: the reply mapping (deployment →
`Deployment`) and which domain events become which public events.

Every lifecycle event carries the whole deployment as it was right after it, so a consumer has
`{project, env, sha}` and the status without asking. Slot and log events are internal.
"""

from __future__ import annotations

from typing import Any

from stratus_contracts import deployments as c
from stratus_contracts.events import Mode
from stratus_contracts.ids import encode_id
from stratus_deployments import domain
from stratus_kit import Publisher


def deployment(state: domain.Deployment, mode: Mode) -> c.Deployment:
    settings = state.settings
    return c.Deployment(
        id=encode_id("dep", state.id),
        project=state.project_id,
        env=state.env_name,
        env_id=state.env_id,
        status=state.status,
        ref=state.ref,
        sha=state.sha,
        config_version=state.config_version,
        repo_url=settings.repo_url or "",
        build_command=settings.build_command or "",
        start_command=settings.start_command or "",
        health_check_path=settings.health_check_path or "/",
        url=state.url,
        reason=state.reason,
        failure_code=state.failure_code,
        rollback_of=None if state.rollback_of is None else encode_id("dep", state.rollback_of),
        mode=mode,
        created=state.created,
        updated=state.updated,
        ready_at=state.ready_at,
        build_started_at=state.build_started_at,
        build_finished_at=state.build_finished_at,
        version=state.version,
    )


def _data(event: Any, before: Any, after: domain.Deployment, mode: Mode) -> tuple[Mode, str, c.Deployment]:
    return mode, after.account, deployment(after, mode)


PUBLISHER = Publisher(
    {
        domain.DeploymentCreated: (c.DEPLOYMENT_CREATED, _data),
        domain.DeploymentBuilding: (c.DEPLOYMENT_BUILDING, _data),
        domain.DeploymentDeploying: (c.DEPLOYMENT_DEPLOYING, _data),
        domain.DeploymentSucceeded: (c.DEPLOYMENT_SUCCEEDED, _data),
        domain.DeploymentRolledBack: (c.DEPLOYMENT_ROLLED_BACK, _data),
        domain.DeploymentFailed: (c.DEPLOYMENT_FAILED, _data),
        domain.DeploymentCanceled: (c.DEPLOYMENT_CANCELED, _data),
        domain.DeploymentSuperseded: (c.DEPLOYMENT_SUPERSEDED, _data),
    }
)
