"""The API's resources as async methods: one method per operation of `/openapi.json`.

Each method's parameters are the operation's, by the spec's names: path parameters positional,
query parameters and body fields keyword-only, plus `if_match` and `idempotency_key` where the
operation takes those headers. A method hands its `locals()` to the client, which routes every
argument by the operation table (`_operations.py`, generated from the spec): so the signature is
the whole truth about what is sent, and `tests/sdk/test_surface.py` checks it against the spec.
Arguments left at `UNSET` are not sent; `None` in a body is sent as JSON `null` (in a PATCH:
clear that setting).

`_sync_resources.py` is generated from this file by `clients/python/scripts/unasync.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from msgspec import UNSET, UnsetType

from stratus.models import (
    AuditEvent,
    ConfigVersion,
    ConfigVersionSummary,
    Deployment,
    Environment,
    EnvVar,
    Event,
    EventType,
    KeyView,
    KeyWithSecret,
    LogLine,
    MemberView,
    MetricEventsAccepted,
    MetricsResult,
    Project,
    ProjectMember,
    Token,
    Webhook,
    WebhookDelivery,
    WebhookWithSecret,
)
from stratus.types import (
    Aggregation,
    BuildInput,
    BuildPatch,
    DeliveryStatus,
    DeploymentStatus,
    MetricEvent,
    ProjectSort,
    Role,
    Scope,
    VarChange,
    VarItem,
    WebhookStatus,
)

if TYPE_CHECKING:
    from stratus._async_client import AsyncClient, AsyncEventStream, AsyncLogStream, AsyncPager

Time = datetime | str  # an aware datetime, or RFC 3339 text with an offset
IfMatch = int | str | None  # a resource's `version` (sent as `"3"`), or an entity tag as it is


class _Resource:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client


class AsyncProjects(_Resource):
    """`client.projects`: projects, and their teams (`.members`)."""

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self.members = AsyncProjectMembers(client)

    def list(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        sort: ProjectSort | None = None,
        name: str | None = None,
        owner: str | None = None,
    ) -> AsyncPager[Project]:
        """Every project, newest first unless `sort` says otherwise; `limit` is the page size."""
        return self._client._paginate("listProjects", locals(), Project)

    async def create(
        self, *, name: str, description: str | UnsetType = UNSET, idempotency_key: str | None = None
    ) -> Project:
        """A new project (with its `production` and `staging` environments)."""
        return await self._client._request("createProject", locals(), Project)

    async def get(self, project_id: str, *, if_none_match: IfMatch = None) -> Project:
        """`if_none_match`: the `version` (or ETag) you hold: `NotModified` (304) while it is current."""
        return await self._client._request("getProject", locals(), Project)

    async def update(
        self,
        project_id: str,
        *,
        name: str | UnsetType = UNSET,
        description: str | UnsetType = UNSET,
        build: BuildPatch | UnsetType = UNSET,
        if_match: IfMatch = None,
        idempotency_key: str | None = None,
    ) -> Project:
        """Change the name, description or build settings (a `None` build field clears it)."""
        return await self._client._request("updateProject", locals(), Project)

    async def delete(
        self, project_id: str, *, if_match: IfMatch = None, idempotency_key: str | None = None
    ) -> Project:
        """Delete the project; returns its final state."""
        return await self._client._request("deleteProject", locals(), Project)


class AsyncProjectMembers(_Resource):
    """`client.projects.members`: who may work on a project, and in which role."""

    def list(
        self, project_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> AsyncPager[ProjectMember]:
        return self._client._paginate("listProjectMembers", locals(), ProjectMember)

    async def get(self, project_id: str, member_id: str, *, if_none_match: IfMatch = None) -> ProjectMember:
        """`if_none_match`: the `version` (or ETag) you hold: `NotModified` (304) while it is current."""
        return await self._client._request("getProjectMember", locals(), ProjectMember)

    async def set(
        self,
        project_id: str,
        member_id: str,
        *,
        role: Role,
        if_match: IfMatch = None,
        idempotency_key: str | None = None,
    ) -> ProjectMember:
        """Give a member a role on the project, or change it (admin scope)."""
        return await self._client._request("putProjectMember", locals(), ProjectMember)

    async def remove(
        self, project_id: str, member_id: str, *, if_match: IfMatch = None, idempotency_key: str | None = None
    ) -> ProjectMember:
        """Take a member's access away (a project keeps its last owner)."""
        return await self._client._request("removeProjectMember", locals(), ProjectMember)


class AsyncEnvs(_Resource):
    """`client.envs`: environments, their variables (`.vars`), config versions (`.versions`)
    and `.env` files."""

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self.vars = AsyncEnvVars(client)
        self.versions = AsyncConfigVersions(client)

    def list(
        self, project_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> AsyncPager[Environment]:
        """A project's environments, oldest first."""
        return self._client._paginate("listEnvironments", locals(), Environment)

    async def create(
        self,
        project_id: str,
        *,
        name: str,
        description: str | UnsetType = UNSET,
        branch: str | UnsetType | None = UNSET,
        auto_deploy: bool | UnsetType = UNSET,
        build: BuildInput | UnsetType | None = UNSET,
        idempotency_key: str | None = None,
    ) -> Environment:
        return await self._client._request("createEnvironment", locals(), Environment)

    async def get(self, env_id: str, *, if_none_match: IfMatch = None) -> Environment:
        """`if_none_match`: the `version` (or ETag) you hold: `NotModified` (304) while it is current."""
        return await self._client._request("getEnvironment", locals(), Environment)

    async def replace(
        self,
        env_id: str,
        *,
        name: str,
        description: str | UnsetType = UNSET,
        branch: str | UnsetType | None = UNSET,
        auto_deploy: bool | UnsetType = UNSET,
        build: BuildInput | UnsetType | None = UNSET,
        if_match: IfMatch = None,
        idempotency_key: str | None = None,
    ) -> Environment:
        """Replace every setting (`PUT`): what is left out takes its default."""
        return await self._client._request("replaceEnvironment", locals(), Environment)

    async def update(
        self,
        env_id: str,
        *,
        name: str | UnsetType = UNSET,
        description: str | UnsetType = UNSET,
        branch: str | UnsetType | None = UNSET,
        auto_deploy: bool | UnsetType = UNSET,
        build: BuildPatch | UnsetType | None = UNSET,
        if_match: IfMatch = None,
        idempotency_key: str | None = None,
    ) -> Environment:
        """Change some settings (`PATCH`)."""
        return await self._client._request("updateEnvironment", locals(), Environment)

    async def delete(
        self, env_id: str, *, if_match: IfMatch = None, idempotency_key: str | None = None
    ) -> Environment:
        return await self._client._request("deleteEnvironment", locals(), Environment)

    async def export_dotenv(self, env_id: str, *, reveal: bool | None = None) -> str:
        """The variables as `.env` text (secrets redacted unless `reveal`, which needs admin)."""
        return await self._client._request("exportDotenv", locals(), str)

    async def import_dotenv(
        self,
        env_id: str,
        text: str,
        *,
        prune: bool | None = None,
        if_match: IfMatch = None,
        idempotency_key: str | None = None,
    ) -> ConfigVersion:
        """Set the variables of `.env` text; `prune` deletes those it neither sets nor keeps."""
        return await self._client._request("importDotenv", locals(), ConfigVersion)


class AsyncEnvVars(_Resource):
    """`client.envs.vars`: an environment's variables; every change is a new config version."""

    def list(
        self, env_id: str, *, limit: int | None = None, cursor: str | None = None, reveal: bool | None = None
    ) -> AsyncPager[EnvVar]:
        """The variables by key; secret values are `None` unless `reveal` (admin, audited)."""
        return self._client._paginate("listEnvVars", locals(), EnvVar)

    async def set(
        self,
        env_id: str,
        *,
        key: str | UnsetType = UNSET,
        value: str | UnsetType = UNSET,
        secret: bool | UnsetType = UNSET,
        vars: Sequence[VarItem] | UnsetType = UNSET,
        if_match: IfMatch = None,
        idempotency_key: str | None = None,
    ) -> ConfigVersion:
        """Set one variable (`key`, `value`, `secret`) or many (`vars`); the new config version
        (`new` is false when nothing changed)."""
        return await self._client._request("setEnvVars", locals(), ConfigVersion)

    async def patch(
        self,
        env_id: str,
        vars: Mapping[str, VarChange],
        *,
        if_match: IfMatch = None,
        idempotency_key: str | None = None,
    ) -> ConfigVersion:
        """Change by map: `{"KEY": "value", "K2": {"value": "…", "secret": True}, "OLD": None}`."""
        return await self._client._request("patchEnvVars", locals(), ConfigVersion)

    async def delete(
        self, env_id: str, key: str, *, if_match: IfMatch = None, idempotency_key: str | None = None
    ) -> ConfigVersion:
        return await self._client._request("deleteEnvVar", locals(), ConfigVersion)


class AsyncConfigVersions(_Resource):
    """`client.envs.versions`: an environment's config versions, newest first."""

    def list(
        self, env_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> AsyncPager[ConfigVersionSummary]:
        return self._client._paginate("listConfigVersions", locals(), ConfigVersionSummary)

    async def get(self, env_id: str, number: int, *, reveal: bool | None = None) -> ConfigVersion:
        """One version with its whole variable map (redacted unless `reveal`)."""
        return await self._client._request("getConfigVersion", locals(), ConfigVersion)


class AsyncDeployments(_Resource):
    """`client.deployments`: builds and releases of an environment, and their logs."""

    async def create(
        self,
        *,
        project: str,
        env: str | UnsetType = UNSET,
        ref: str | UnsetType | None = UNSET,
        sha: str | UnsetType | None = UNSET,
        idempotency_key: str | None = None,
    ) -> Deployment:
        """Deploy `ref` or `sha` of a project's environment (default `production`): the
        deployment, `queued`; follow it with `logs(id)` or poll `get(id)`."""
        return await self._client._request("createDeployment", locals(), Deployment)

    def list(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        project: str | None = None,
        env: str | None = None,
        status: DeploymentStatus | None = None,
    ) -> AsyncPager[Deployment]:
        """Newest first (a member-bound key must name a `project`)."""
        return self._client._paginate("listDeployments", locals(), Deployment)

    async def get(self, deployment_id: str) -> Deployment:
        return await self._client._request("getDeployment", locals(), Deployment)

    async def cancel(self, deployment_id: str, *, idempotency_key: str | None = None) -> Deployment:
        """Stop a queued, building or deploying deployment (409 once it finished)."""
        return await self._client._request("cancelDeployment", locals(), Deployment)

    async def rollback(self, deployment_id: str, *, idempotency_key: str | None = None) -> Deployment:
        """A new deployment of this one's artifact and config version, without a rebuild."""
        return await self._client._request("rollbackDeployment", locals(), Deployment)

    def list_logs(
        self,
        deployment_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        since: Time | None = None,
    ) -> AsyncPager[LogLine]:
        """The log as it is now, oldest line first, page by page (`limit` up to 1000)."""
        return self._client._paginate("listDeploymentLogs", locals(), LogLine)

    def logs(
        self,
        deployment_id: str,
        *,
        follow: bool = False,
        since: Time | None = None,
        cursor: str | None = None,
    ) -> AsyncLogStream:
        """The log live, as server-sent events: every line from the first (or after the line
        whose `seq` is `cursor`, or from `since`) until the build ends, or with `follow` on
        through the running app's lines. A dropped connection is resumed after the last line
        (`Last-Event-ID`), so no line is missed or repeated."""
        return self._client._stream_logs("listDeploymentLogs", locals())


class AsyncEvents(_Resource):
    """`client.events`: the account's event feed, as pages or live."""

    def list(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        type: str | None = None,
        project: str | None = None,
        created_gte: Time | None = None,
        created_lt: Time | None = None,
    ) -> AsyncPager[Event]:
        """Newest first; `type` is exact or a prefix ending in `.` or `*`."""
        return self._client._paginate("listEvents", locals(), Event)

    async def get(self, event_id: str) -> Event:
        return await self._client._request("getEvent", locals(), Event)

    def stream(
        self,
        *,
        type: str | None = None,
        project: str | None = None,
        created_gte: Time | None = None,
        created_lt: Time | None = None,
        last_event_id: str | None = None,
    ) -> AsyncEventStream:
        """Events as they are stored, from now on (or after `last_event_id`), resumed after the
        last one seen when the connection drops. It does not end: close it when done."""
        arguments = dict(locals())
        del arguments["last_event_id"]  # a header of the stream, not a parameter of the operation
        return self._client._stream_events("listEvents", arguments, last_event_id)


class AsyncEventTypes(_Resource):
    """`client.event_types`: the catalogue of event types, each with the JSON Schema of its data."""

    async def list(self) -> list[EventType]:
        return await self._client._request("listEventTypes", locals(), list[EventType])

    async def get(self, name: str) -> EventType:
        return await self._client._request("getEventType", locals(), EventType)


class AsyncWebhooks(_Resource):
    """`client.webhooks`: endpoints that receive signed events, and their deliveries
    (`.deliveries`). Verify what they receive with `stratus.webhooks.verify`."""

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self.deliveries = AsyncWebhookDeliveries(client)

    async def create(
        self,
        *,
        url: str,
        events: Sequence[str],
        project: str | UnsetType | None = UNSET,
        description: str | UnsetType = UNSET,
        idempotency_key: str | None = None,
    ) -> WebhookWithSecret:
        """A new endpoint for `events` (`["*"]`: all); its signing `secret` is in this answer
        only (`None` if the answer is a replay of a lost first one: rotate it then)."""
        return await self._client._request("createWebhook", locals(), WebhookWithSecret)

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> AsyncPager[Webhook]:
        return self._client._paginate("listWebhooks", locals(), Webhook)

    async def get(self, webhook_id: str, *, if_none_match: IfMatch = None) -> Webhook:
        """`if_none_match`: the `version` (or ETag) you hold: `NotModified` (304) while it is current."""
        return await self._client._request("getWebhook", locals(), Webhook)

    async def update(
        self,
        webhook_id: str,
        *,
        url: str | UnsetType = UNSET,
        events: Sequence[str] | UnsetType = UNSET,
        project: str | UnsetType | None = UNSET,
        description: str | UnsetType = UNSET,
        status: WebhookStatus | UnsetType = UNSET,
        if_match: IfMatch = None,
        idempotency_key: str | None = None,
    ) -> Webhook:
        return await self._client._request("updateWebhook", locals(), Webhook)

    async def delete(
        self, webhook_id: str, *, if_match: IfMatch = None, idempotency_key: str | None = None
    ) -> Webhook:
        return await self._client._request("deleteWebhook", locals(), Webhook)

    async def rotate_secret(
        self, webhook_id: str, *, grace_seconds: int | UnsetType = UNSET, idempotency_key: str | None = None
    ) -> WebhookWithSecret:
        """A new signing secret (in this answer only); the old one signs beside it for
        `grace_seconds` (default one day)."""
        return await self._client._request("rotateWebhookSecret", locals(), WebhookWithSecret)

    async def test(self, webhook_id: str, *, idempotency_key: str | None = None) -> WebhookDelivery:
        """Send the endpoint a `webhook.test` event; the delivery."""
        return await self._client._request("testWebhook", locals(), WebhookDelivery)

    async def redeliver(
        self,
        webhook_id: str,
        *,
        delivery_id: str | UnsetType | None = UNSET,
        event_id: str | UnsetType | None = UNSET,
        since: Time | UnsetType | None = UNSET,
        until: Time | UnsetType | None = UNSET,
        idempotency_key: str | None = None,
    ) -> list[WebhookDelivery]:
        """Send again now: one delivery, every delivery of one event, or every failed delivery
        made between `since` and `until`; the deliveries queued."""
        return await self._client._request("redeliverWebhook", locals(), list[WebhookDelivery])


class AsyncWebhookDeliveries(_Resource):
    """`client.webhooks.deliveries`: what was sent to an endpoint, with every attempt."""

    def list(
        self,
        webhook_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        status: DeliveryStatus | None = None,
    ) -> AsyncPager[WebhookDelivery]:
        return self._client._paginate("listWebhookDeliveries", locals(), WebhookDelivery)

    async def get(self, webhook_id: str, delivery_id: str) -> WebhookDelivery:
        return await self._client._request("getWebhookDelivery", locals(), WebhookDelivery)


class AsyncAuditEvents(_Resource):
    """`client.audit_events`: the audit log, newest first (admin scope)."""

    def list(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        resource: str | None = None,
        created_gte: Time | None = None,
        created_lt: Time | None = None,
    ) -> AsyncPager[AuditEvent]:
        return self._client._paginate("listAuditEvents", locals(), AuditEvent)


class AsyncMetrics(_Resource):
    """`client.metrics`: request telemetry, the structured query, custom events."""

    async def requests(
        self,
        *,
        range: str | None = None,
        step: str | None = None,
        project: str | None = None,
        env: str | None = None,
        route: str | None = None,
        group_by: str | Sequence[str] | None = None,
    ) -> MetricsResult:
        """Request counts over `range` (`1m`–`30d`) in buckets of `step`."""
        return await self._client._request("getRequestMetrics", locals(), MetricsResult)

    async def latency(
        self,
        *,
        range: str | None = None,
        step: str | None = None,
        project: str | None = None,
        env: str | None = None,
        route: str | None = None,
        group_by: str | Sequence[str] | None = None,
    ) -> MetricsResult:
        """Latency percentiles (ms) over `range` in buckets of `step`."""
        return await self._client._request("getLatencyMetrics", locals(), MetricsResult)

    async def errors(
        self,
        *,
        range: str | None = None,
        step: str | None = None,
        project: str | None = None,
        env: str | None = None,
        route: str | None = None,
        group_by: str | Sequence[str] | None = None,
    ) -> MetricsResult:
        """4xx and 5xx counts and rates over `range` in buckets of `step`."""
        return await self._client._request("getErrorMetrics", locals(), MetricsResult)

    async def query(
        self,
        *,
        metric: str,
        aggregation: Aggregation | UnsetType = UNSET,
        filters: Mapping[str, str] | UnsetType = UNSET,
        group_by: Sequence[str] | UnsetType = UNSET,
        range: str | UnsetType = UNSET,
        step: str | UnsetType | None = UNSET,
    ) -> MetricsResult:
        """One metric (`requests`, `latency`, `build_duration` or a custom event's name),
        aggregated, filtered by labels and grouped. A read: retried without an Idempotency-Key."""
        return await self._client._request("queryMetrics", locals(), MetricsResult)

    async def record(
        self, events: Sequence[MetricEvent], *, idempotency_key: str | None = None
    ) -> MetricEventsAccepted:
        """Custom events (1–1000 of `{name, value, timestamp?, labels?}`), durable once this
        returns; retries do not count them twice."""
        return await self._client._request("recordMetricEvents", locals(), MetricEventsAccepted)


class AsyncKeys(_Resource):
    """`client.keys`: API keys of the calling key's mode (admin scope, API keys only)."""

    async def create(
        self,
        *,
        name: str,
        scopes: Sequence[Scope],
        project_ids: Sequence[str] | UnsetType | None = UNSET,
        environments: Sequence[str] | UnsetType | None = UNSET,
        allowed_ips: Sequence[str] | UnsetType = UNSET,
        expires_at: Time | UnsetType | None = UNSET,
        member_id: str | UnsetType | None = UNSET,
        idempotency_key: str | None = None,
    ) -> KeyWithSecret:
        """A new key; its `secret` is in this answer only (`None` in a replay)."""
        return await self._client._request("createKey", locals(), KeyWithSecret)

    def list(
        self, *, limit: int | None = None, cursor: str | None = None, revoked: bool | None = None
    ) -> AsyncPager[KeyView]:
        return self._client._paginate("listKeys", locals(), KeyView)

    async def get(self, key_id: str, *, if_none_match: IfMatch = None) -> KeyView:
        """`if_none_match`: the `version` (or ETag) you hold: `NotModified` (304) while it is current."""
        return await self._client._request("getKey", locals(), KeyView)

    async def update(
        self,
        key_id: str,
        *,
        name: str | UnsetType = UNSET,
        scopes: Sequence[Scope] | UnsetType = UNSET,
        project_ids: Sequence[str] | UnsetType | None = UNSET,
        environments: Sequence[str] | UnsetType | None = UNSET,
        allowed_ips: Sequence[str] | UnsetType | None = UNSET,
        expires_at: Time | UnsetType | None = UNSET,
        if_match: IfMatch = None,
        idempotency_key: str | None = None,
    ) -> KeyView:
        """Change a key; `None` lifts a restriction."""
        return await self._client._request("updateKey", locals(), KeyView)

    async def revoke(
        self, key_id: str, *, if_match: IfMatch = None, idempotency_key: str | None = None
    ) -> KeyView:
        return await self._client._request("revokeKey", locals(), KeyView)

    async def rotate(
        self,
        key_id: str,
        *,
        overlap_seconds: int | UnsetType = UNSET,
        if_match: IfMatch = None,
        idempotency_key: str | None = None,
    ) -> KeyWithSecret:
        """A new secret (in this answer only); the old one works `overlap_seconds` more."""
        return await self._client._request("rotateKey", locals(), KeyWithSecret)


class AsyncMembers(_Resource):
    """`client.members`: the people of the account (admin scope, API keys only)."""

    async def create(
        self, *, email: str, name: str | UnsetType = UNSET, idempotency_key: str | None = None
    ) -> MemberView:
        return await self._client._request("createMember", locals(), MemberView)

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> AsyncPager[MemberView]:
        return self._client._paginate("listMembers", locals(), MemberView)

    async def get(self, member_id: str, *, if_none_match: IfMatch = None) -> MemberView:
        """`if_none_match`: the `version` (or ETag) you hold: `NotModified` (304) while it is current."""
        return await self._client._request("getMember", locals(), MemberView)

    async def delete(
        self, member_id: str, *, if_match: IfMatch = None, idempotency_key: str | None = None
    ) -> MemberView:
        """Remove a member: its keys are revoked and it leaves every project team."""
        return await self._client._request("deleteMember", locals(), MemberView)


class AsyncTokens(_Resource):
    """`client.tokens`: short-lived tokens narrowed from the calling key, for front ends."""

    async def create(
        self,
        *,
        scopes: Sequence[Scope] | UnsetType | None = UNSET,
        project_ids: Sequence[str] | UnsetType | None = UNSET,
        environments: Sequence[str] | UnsetType | None = UNSET,
        ttl_seconds: int | UnsetType = UNSET,
        subject: str | UnsetType | None = UNSET,
        idempotency_key: str | None = None,
    ) -> Token:
        """A token (`token` is `None` in a replay of a lost first answer: make another)."""
        return await self._client._request("createToken", locals(), Token)


class AsyncSystem(_Resource):
    """`client.system`: liveness, readiness and the error catalogue (no key needed)."""

    async def health(self) -> dict[str, Any]:
        return await self._client._request("healthz", locals(), dict[str, Any])

    async def ready(self) -> dict[str, Any]:
        """NATS and every service answer (a `ServerError`, 503, when one does not)."""
        return await self._client._request("readyz", locals(), dict[str, Any])

    async def explain_error(self, code: str) -> str:
        """What an error `code` means, as text."""
        return await self._client._request("explainError", locals(), str)
