"""Metrics service messages: the telemetry records on the `TELEMETRY` stream, the queries behind
`/v1/metrics/*`, the series they answer with, and the limits both sides check.

Records travel in batches (one MessagePack message carries many records, of many accounts):
the gateway publishes request records to `tel.requests` and custom events to `tel.events`; the
metrics service's durable consumer inserts them into ClickHouse. Queries carry the caller, and
the service binds its account and mode in every WHERE clause itself: nothing in a query names
an account or a mode.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import ClassVar, Literal, TypeVar

import msgspec

from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_contracts.messages import Query

SERVICE = "metrics"
T = TypeVar("T")

# --- the stream ------------------------------------------------------------------------------

TELEMETRY_STREAM = "TELEMETRY"
TELEMETRY_SUBJECTS = "tel.>"
REQUESTS_SUBJECT = "tel.requests"
EVENTS_SUBJECT = "tel.events"
# Durable consumers of the metrics service: telemetry (requests and custom events) and builds
# (deployment events on `EVENTS`).
CONSUMER = "metrics"
BUILDS_CONSUMER = "metrics-builds"
# The stream buffers what the metrics service has not consumed yet; it is not the store. Bounded
# in age and size so that a metrics service that is down for long cannot fill the disk.
STREAM_MAX_AGE = 3 * 24 * 3600.0
STREAM_MAX_BYTES = 2 * 1024**3


class RequestRecord(msgspec.Struct, frozen=True, array_like=True):
    """One HTTP request, as the gateway saw it (positional on the wire: a batch of 1,000 of
    these is most of a telemetry message)."""

    ts: int  # epoch milliseconds, when the request arrived
    account: str
    mode: str
    route: str  # the route's path template (`/v1/projects/{project_id}`), or "" when none matched
    method: str
    status: int
    latency_ms: float
    request_id: str
    key_id: str = ""
    project: str = ""
    env: str = ""


class RequestBatch(msgspec.Struct, frozen=True):
    records: list[RequestRecord]


class EventRecord(msgspec.Struct, frozen=True, array_like=True):
    """One custom event (`POST /v1/metrics/events`)."""

    id: str  # mev_…, unique: a redelivered batch is inserted once
    ts: int  # epoch milliseconds
    account: str
    mode: str
    name: str
    value: float
    labels: dict[str, str] = {}


class EventBatch(msgspec.Struct, frozen=True):
    records: list[EventRecord]


# --- limits ----------------------------------------------------------------------------------

MIN_RANGE = 60
MAX_RANGE = 30 * 86400
MIN_STEP = 1
MAX_POINTS = 10_000
# Default steps, finest first: the first that gives at most DEFAULT_POINTS buckets is used.
STEPS = (10, 60, 300, 900, 3600, 6 * 3600, 86400)
DEFAULT_POINTS = 500
MAX_EVENTS = 1000
EVENT_NAME = re.compile(r"^[a-z0-9_.]{1,64}$")
LABEL_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_LABELS = 16
MAX_LABEL_VALUE = 256
MAX_FUTURE_SECONDS = 300  # a custom event's timestamp may be ahead of the server's clock by this

_DURATION = re.compile(r"^([1-9][0-9]{0,6})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

RequestLabel = Literal["env", "route", "status", "method"]
Aggregation = Literal["count", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99"]
View = Literal["requests", "latency", "errors"]
# Labels of the built-in metrics: name → what it is. Custom events have any labels they carry.
REQUEST_LABELS = ("project", "env", "route", "method", "status", "key_id")
BUILD_LABELS = ("project", "env", "result")
BUILTIN_METRICS = ("requests", "latency", "build_duration")


def parse_duration(text: str) -> int | None:
    """`90s`, `15m`, `24h`, `7d` → seconds; None when it is not such a duration."""
    m = _DURATION.match(text)
    return int(m.group(1)) * _UNITS[m.group(2)] if m else None


def default_step(range_seconds: int) -> int:
    for step in STEPS:
        if -(-range_seconds // step) <= DEFAULT_POINTS:
            return step
    return STEPS[-1]


def buckets(range_seconds: int, step: int) -> int:
    return -(-range_seconds // step)


def too_many_points(points: int, what: str) -> DomainError:
    return DomainError(
        "metrics_too_many_points",
        f"This query would answer {what} {points:,} points, more than {MAX_POINTS:,}. Narrow it: "
        "a bigger `step`, a shorter `range`, fewer `group_by` labels or more filters.",
    )


class Window(msgspec.Struct, frozen=True, kw_only=True):
    range: int  # seconds, MIN_RANGE..MAX_RANGE
    step: int | None = None  # seconds; None: default_step(range)


# --- queries ---------------------------------------------------------------------------------


class MetricsQuery(Query[T], frozen=True, kw_only=True):
    service: ClassVar[str] = SERVICE


class Series(msgspec.Struct, frozen=True, kw_only=True):
    labels: dict[str, str]
    # [bucket start, value]: every bucket of the window; null where there is nothing to
    # aggregate (a count is 0 there, a percentile or average null).
    # (pairs as 2-item lists: a tuple would need JSON Schema 2020 `prefixItems`, and the AsyncAPI
    # document stays draft-07)
    points: list[list[datetime | float | None]]


class MetricsRange(msgspec.Struct, frozen=True, kw_only=True):
    start: datetime  # the first bucket's start
    end: datetime  # the end of the last bucket (exclusive)
    seconds: int  # the requested range


class MetricsResult(msgspec.Struct, frozen=True, kw_only=True):
    object: Literal["metric_series"] = "metric_series"
    metric: str
    aggregation: str
    range: MetricsRange
    step: int  # seconds per bucket
    series: list[Series]


class RequestSeries(MetricsQuery[MetricsResult], frozen=True, kw_only=True):
    """`GET /v1/metrics/requests|latency|errors`: the request telemetry of the caller's account
    and mode. `latency` answers p50, p90, p95 and p99 (label `quantile`); `errors` the 4xx and
    5xx counts and rates (labels `class` and `stat`)."""

    caller: Caller
    view: View
    window: Window
    project: str | None = None
    env: str | None = None
    route: str | None = None
    group_by: list[RequestLabel] = []


class RunQuery(MetricsQuery[MetricsResult], frozen=True, kw_only=True):
    """`POST /v1/metrics/query`: one metric (`requests`, `latency`, `build_duration` or a custom
    event's name), aggregated per bucket, filtered by labels and grouped by some. Every name is
    checked against what the metric has; every value is bound as a query parameter."""

    caller: Caller
    metric: str
    aggregation: Aggregation
    window: Window
    filters: dict[str, str] = {}
    group_by: list[str] = []


__all__ = [
    "CONSUMER",
    "EVENTS_SUBJECT",
    "MAX_POINTS",
    "REQUESTS_SUBJECT",
    "TELEMETRY_STREAM",
    "EventBatch",
    "EventRecord",
    "MetricsResult",
    "RequestBatch",
    "RequestRecord",
    "RequestSeries",
    "RunQuery",
    "Series",
    "Window",
]
