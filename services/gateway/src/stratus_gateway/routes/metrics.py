"""`/v1/metrics`: request telemetry series, the structured query, and custom events.

Reads go to the metrics service (`qry.metrics.*`) with the caller, whose account and mode the
service binds itself. Custom events are validated here and published to `tel.events` with a
JetStream ack awaited: a 202 means they are durable on the stream (the metrics service inserts
them shortly after); a stream that cannot take them is a 503 and nothing was accepted.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
import nats
from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, Parameter

from stratus_bus import Bus
from stratus_contracts import metrics as c
from stratus_contracts.errors import FieldError
from stratus_contracts.ids import new_id
from stratus_gateway.auth import caller
from stratus_gateway.envelope import Meta, meta, ok
from stratus_gateway.openapi_docs import problems
from stratus_gateway.problems import ApiError

Req = Request[Any, Any, Any]
_encoder = msgspec.msgpack.Encoder()
_GROUPS = ("env", "route", "status", "method")

Range = Annotated[
    str,
    Parameter(max_length=16, description="How far back: a duration from `1m` to `30d` (`15m`, `24h`, `7d`)."),
]
Step = Annotated[
    str | None,
    Parameter(
        max_length=16,
        description="Bucket size (`10s`, `5m`, `1h`); default: the finest of 10s, 1m, 5m, 15m, 1h, 6h, "
        "1d giving at most 500 buckets.",
    ),
]
GroupBy = Annotated[
    str | None,
    Parameter(
        max_length=64, description="Comma-separated labels to split series by: env, route, status, method."
    ),
]
ProjectFilter = Annotated[
    str | None, Parameter(max_length=64, description="Only this project's requests (an id).")
]
EnvFilter = Annotated[str | None, Parameter(max_length=64, description="Only this environment's (an id).")]
RouteFilter = Annotated[
    str | None, Parameter(max_length=256, description="Only this route template, e.g. `/v1/projects`.")
]
LabelValue = Annotated[str, msgspec.Meta(max_length=c.MAX_LABEL_VALUE)]
LabelKey = Annotated[str, msgspec.Meta(max_length=64, pattern=c.LABEL_KEY.pattern)]


class MetricsEnvelope(msgspec.Struct, kw_only=True):
    data: c.MetricsResult
    meta: Meta
    error: None = None


class MetricsQueryBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    metric: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    aggregation: c.Aggregation = "count"
    filters: Annotated[dict[LabelKey, LabelValue], msgspec.Meta(max_length=16)] = {}
    group_by: Annotated[list[LabelKey], msgspec.Meta(max_length=4)] = []
    range: Annotated[str, msgspec.Meta(max_length=16)] = "1h"
    step: Annotated[str, msgspec.Meta(max_length=16)] | None = None


class MetricEventInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(max_length=64, pattern=c.EVENT_NAME.pattern)]
    value: float
    timestamp: datetime | None = None  # default: when the gateway received it
    labels: Annotated[dict[LabelKey, LabelValue], msgspec.Meta(max_length=c.MAX_LABELS)] = {}


class MetricEventsBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    events: Annotated[list[MetricEventInput], msgspec.Meta(min_length=1, max_length=c.MAX_EVENTS)]


class MetricEventsAccepted(msgspec.Struct, kw_only=True):
    object: Literal["metric_events"] = "metric_events"
    accepted: int
    ids: list[str]


class MetricEventsEnvelope(msgspec.Struct, kw_only=True):
    data: MetricEventsAccepted
    meta: Meta
    error: None = None


def _seconds(name: str, text: str) -> int:
    seconds = c.parse_duration(text)
    if seconds is None:
        raise ApiError(
            "metrics_range_invalid",
            f"`{name}` must be a duration such as `90s`, `15m`, `24h` or `7d`.",
            errors=[FieldError(field=name, message="A whole number followed by s, m, h or d.")],
        )
    return seconds


def window(range_text: str, step_text: str | None) -> c.Window:
    seconds = _seconds("range", range_text)
    if not c.MIN_RANGE <= seconds <= c.MAX_RANGE:
        raise ApiError(
            "metrics_range_invalid",
            "`range` must be between 1m and 30d.",
            errors=[FieldError(field="range", message="Between 1m and 30d.")],
        )
    return c.Window(range=seconds, step=None if step_text is None else _seconds("step", step_text))


def _group_by(text: str | None) -> list[c.RequestLabel]:
    labels = [label.strip() for label in (text or "").split(",") if label.strip()]
    for label in labels:
        if label not in _GROUPS:
            raise ApiError(
                "validation_failed",
                errors=[FieldError(field="group_by", message=f"One or more of {', '.join(_GROUPS)}.")],
            )
    return list(dict.fromkeys(labels))  # type: ignore[arg-type]


def _retention_days() -> int:
    return int(os.environ.get("STRATUS_METRICS_RETENTION_DAYS", "30"))


class MetricsController(Controller):
    path = "/metrics"
    tags = ["metrics"]

    async def _series(
        self,
        request: Req,
        view: c.View,
        range: str,
        step: str | None,
        project: str | None,
        env: str | None,
        route: str | None,
        group_by: str | None,
    ) -> Response[MetricsEnvelope]:
        q = c.RequestSeries(
            caller=caller(request),
            view=view,
            window=window(range, step),
            project=project,
            env=env,
            route=route,
            group_by=_group_by(group_by),
        )
        bus: Bus = request.app.state["bus"]
        return ok(MetricsEnvelope(data=await bus.call(q), meta=meta()))

    @get(
        "/requests",
        operation_id="getRequestMetrics",
        summary="Request counts",
        description="Requests answered per bucket in this account and mode (authenticated requests, by "
        "route template), optionally filtered and split by env, route, status or method.",
        responses=problems("metrics_range_invalid", "metrics_too_many_points", "validation_failed"),
    )
    async def requests(
        self,
        request: Req,
        range: Range = "1h",
        step: Step = None,
        project: ProjectFilter = None,
        env: EnvFilter = None,
        route: RouteFilter = None,
        group_by: GroupBy = None,
    ) -> Response[MetricsEnvelope]:
        return await self._series(request, "requests", range, step, project, env, route, group_by)

    @get(
        "/latency",
        operation_id="getLatencyMetrics",
        summary="Request latency percentiles",
        description="p50, p90, p95 and p99 of request latency in milliseconds per bucket (label "
        "`quantile`), as measured by the gateway; null where a bucket has no requests.",
        responses=problems("metrics_range_invalid", "metrics_too_many_points", "validation_failed"),
    )
    async def latency(
        self,
        request: Req,
        range: Range = "1h",
        step: Step = None,
        project: ProjectFilter = None,
        env: EnvFilter = None,
        route: RouteFilter = None,
        group_by: GroupBy = None,
    ) -> Response[MetricsEnvelope]:
        return await self._series(request, "latency", range, step, project, env, route, group_by)

    @get(
        "/errors",
        operation_id="getErrorMetrics",
        summary="Error counts and rates",
        description="4xx and 5xx responses per bucket (label `class`): their count and their share of "
        "all requests (label `stat`: `count` or `rate`, null where a bucket has no requests).",
        responses=problems("metrics_range_invalid", "metrics_too_many_points", "validation_failed"),
    )
    async def errors(
        self,
        request: Req,
        range: Range = "1h",
        step: Step = None,
        project: ProjectFilter = None,
        env: EnvFilter = None,
        route: RouteFilter = None,
        group_by: GroupBy = None,
    ) -> Response[MetricsEnvelope]:
        return await self._series(request, "errors", range, step, project, env, route, group_by)

    @post(
        "/query",
        operation_id="queryMetrics",
        summary="Query a metric",
        description="One metric — `requests`, `latency` (ms), `build_duration` (seconds; labels project, "
        "env, result) or a custom event's name — aggregated per bucket (count, sum, avg, min, max, "
        "p50, p90, p95, p99), filtered by label values and split by labels. A read: no side effects.",
        opt={"scope": "read"},
        status_code=200,
        responses=problems(
            "metrics_range_invalid", "metrics_too_many_points", "validation_failed", body=True
        ),
    )
    async def query(self, request: Req, data: JSONBody[MetricsQueryBody]) -> Response[MetricsEnvelope]:
        q = c.RunQuery(
            caller=caller(request),
            metric=data.metric,
            aggregation=data.aggregation,
            window=window(data.range, data.step),
            filters=data.filters,
            group_by=data.group_by,
        )
        bus: Bus = request.app.state["bus"]
        return ok(MetricsEnvelope(data=await bus.call(q), meta=meta()))

    @post(
        "/events",
        operation_id="recordMetricEvents",
        summary="Record custom events",
        description="1–1,000 named values with up to 16 labels each; `timestamp` defaults to now and must "
        "lie within the retention period and at most 5 minutes ahead. 202 once they are durable on the "
        "telemetry stream; they are queryable by name through `POST /v1/metrics/query` moments later.",
        status_code=202,
        responses=problems("validation_failed", body=True),
    )
    async def record_events(
        self, request: Req, data: JSONBody[MetricEventsBody]
    ) -> Response[MetricEventsEnvelope]:
        who = caller(request)
        now = datetime.now(UTC)
        earliest, latest = (
            now - timedelta(days=_retention_days()),
            now + timedelta(seconds=c.MAX_FUTURE_SECONDS),
        )
        records, errors = [], []
        for i, event in enumerate(data.events):
            ts = event.timestamp or now
            if ts.tzinfo is None:
                errors.append(
                    FieldError(field=f"events[{i}].timestamp", message="Give an offset, e.g. `…Z`.")
                )
                continue
            if not earliest <= ts <= latest:
                errors.append(
                    FieldError(
                        field=f"events[{i}].timestamp",
                        message="Within the retention period and at most 5 minutes ahead.",
                    )
                )
                continue
            if event.value != event.value or event.value in (float("inf"), float("-inf")):
                errors.append(FieldError(field=f"events[{i}].value", message="A finite number."))
                continue
            records.append(
                c.EventRecord(
                    id=new_id("mev"),
                    ts=int(ts.timestamp() * 1000),
                    account=who.account_id,
                    mode=who.mode,
                    name=event.name,
                    value=event.value,
                    labels=event.labels,
                )
            )
        if errors:
            raise ApiError("validation_failed", errors=errors)
        bus: Bus = request.app.state["bus"]
        payload = _encoder.encode(c.EventBatch(records=records))
        # Awaited: the 202 promises the events are on the stream. A lost ack retried by the
        # client under the same Idempotency-Key replays this answer instead of publishing again.
        try:
            await bus.publish_durably(c.EVENTS_SUBJECT, payload, msg_id=new_id("mbt"))
        except nats.js.errors.Error as exc:  # no stream, or the stream refused: nothing accepted
            raise ApiError(
                "service_unavailable",
                "The telemetry stream cannot take events now.",
                headers={"Retry-After": "1"},
            ) from exc
        accepted = MetricEventsAccepted(accepted=len(records), ids=[r.id for r in records])
        return ok(MetricEventsEnvelope(data=accepted, meta=meta()), status=202)
