"""The metrics store: ClickHouse through `clickhouse-connect`, embedded chDB or a server alike.

The backend is the DSN alone (`STRATUS_METRICS_DSN`: `chdb:///abs/path` by default, `http://…`
in production): `clickhouse_connect.get_client(dsn=…)` gives the same client API for both, and
nothing here branches on which it is. chDB is one engine per process, so a process opens one
`MetricsStore` and every thread shares it; the client is synchronous and not made for
concurrent use, so one lock serialises its calls, which run on worker threads (never on the
event loop).

Schema: the numbered SQL files of `deploy/clickhouse/`, applied in order at start-up, each
recorded in `schema_migrations`. Queries are built from whitelisted identifiers only; every
value (account, mode, times, filters, label keys) is a bound parameter (`{name:Type}`), and the
account and mode always come from the caller, never from the query.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect
import pyarrow as pa

from stratus_bus.config import data_dir
from stratus_contracts import metrics as c
from stratus_contracts.errors import DomainError, FieldError

log = logging.getLogger("stratus.metrics.store")

REQUEST_COLUMNS = (
    "ts",
    "account",
    "mode",
    "project",
    "env",
    "route",
    "method",
    "status",
    "latency_ms",
    "key_id",
    "request_id",
)
EVENT_COLUMNS = ("ts", "account", "mode", "name", "value", "labels", "id")
BUILD_COLUMNS = ("ts", "account", "mode", "project", "env", "deployment_id", "result", "duration_s")
TABLES = ("requests", "events", "builds")
_PARTITION = re.compile(r"^\('(live|test)',(\d{8})\)$")
_MIGRATION = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_LEVELS = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
MAX_GROUP_BY = 4
MAX_FILTERS = 16


def default_dsn() -> str:
    return f"chdb://{data_dir() / 'metrics-chdb'}"


def dsn() -> str:
    return os.environ.get("STRATUS_METRICS_DSN") or default_dsn()


def retention_days() -> int:
    return int(os.environ.get("STRATUS_METRICS_RETENTION_DAYS", "30"))


def schema_dir() -> Path:
    """`deploy/clickhouse/` of the repository (or `STRATUS_METRICS_SCHEMA_DIR`, in an image)."""
    configured = os.environ.get("STRATUS_METRICS_SCHEMA_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[4] / "deploy" / "clickhouse"


def _ms(ts: int) -> datetime:
    return datetime.fromtimestamp(ts / 1000, UTC)


@dataclass(frozen=True)
class Build:
    """A build that ended: the row of `builds`."""

    ts: datetime
    account: str
    mode: str
    project: str
    env: str
    deployment_id: str
    result: str
    duration_s: float


@dataclass(frozen=True)
class Metric:
    """What a query may name of one metric: its table, the value aggregated, the fixed WHERE
    terms (a custom event's name) and its labels, each a column expression (None: any key of
    the `labels` map, bound as a parameter)."""

    table: str
    value: str
    labels: dict[str, str] | None
    where: tuple[str, ...] = ()
    aggregations: tuple[str, ...] = ("count", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99")


_REQUEST_LABELS = {
    "project": "project",
    "env": "env",
    "route": "route",
    "method": "method",
    "status": "toString(status)",
    "key_id": "key_id",
}
REQUESTS = Metric("requests", "1", _REQUEST_LABELS, aggregations=("count", "sum"))
LATENCY = Metric("requests", "latency_ms", _REQUEST_LABELS)
BUILDS = Metric("builds", "duration_s", {"project": "project", "env": "env", "result": "result"})


def _invalid(field: str, message: str) -> DomainError:
    return DomainError("validation_failed", message, [FieldError(field=field, message=message)])


class Window:
    """A query's buckets: `n` of `step` seconds, the last holding `now`."""

    def __init__(self, window: c.Window, now: datetime) -> None:
        seconds = window.range
        if not c.MIN_RANGE <= seconds <= c.MAX_RANGE:
            raise DomainError("metrics_range_invalid", "`range` must be between 1m and 30d.")
        step = window.step if window.step is not None else c.default_step(seconds)
        if not c.MIN_STEP <= step <= seconds:
            raise DomainError("metrics_range_invalid", "`step` must be at least 1s and at most the range.")
        self.seconds, self.step, self.n = seconds, step, c.buckets(seconds, step)
        if self.n > c.MAX_POINTS:
            raise c.too_many_points(self.n, "per series")
        last = int(now.timestamp()) // step
        self.first = last - self.n + 1  # bucket indexes: epoch seconds // step
        self.start = datetime.fromtimestamp(self.first * step, UTC)
        self.end = datetime.fromtimestamp((last + 1) * step, UTC)

    def range(self) -> c.MetricsRange:
        return c.MetricsRange(start=self.start, end=self.end, seconds=self.seconds)

    def times(self) -> list[datetime]:
        return [self.start + timedelta(seconds=i * self.step) for i in range(self.n)]


class Select:
    """One aggregate query under construction: WHERE terms and GROUP BY labels as SQL built
    from fixed fragments, their values as parameters."""

    def __init__(self, table: str, account: str, mode: str, window: Window) -> None:
        self.table = table
        self.window = window
        self.params: dict[str, Any] = {
            "account": account,
            "mode": mode,
            "start": window.start,
            "end": window.end,
            "step_ms": window.step * 1000,
        }
        self.where = [
            "account = {account:String}",
            "mode = {mode:String}",
            "ts >= {start:DateTime64(3, 'UTC')}",
            "ts < {end:DateTime64(3, 'UTC')}",
        ]
        self.groups: list[tuple[str, str]] = []  # (label name, SQL expression)

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return name

    def equals(self, expression: str, value: str) -> None:
        self.where.append(f"{expression} = {{{self.bind(value)}:String}}")

    def label(self, metric: Metric, name: str) -> str:
        if metric.labels is None:
            return f"labels[{{{self.bind(name)}:String}}]"
        return metric.labels[name]

    def sql(self, values: Sequence[str]) -> str:
        groups = [f"{expr} AS g{i}" for i, (_, expr) in enumerate(self.groups)]
        keys = ["b", *(f"g{i}" for i in range(len(self.groups)))]
        columns = ", ".join(["intDiv(toUnixTimestamp64Milli(ts), {step_ms:Int64}) AS b", *groups, *values])
        # Every fragment is one of ours (whitelisted names, fixed expressions, placeholders);
        # values are only ever parameters.
        return (
            f"SELECT {columns} FROM {self.table} WHERE {' AND '.join(self.where)} "
            f"GROUP BY {', '.join(keys)} ORDER BY {', '.join([*keys[1:], 'b'])} "
            f"LIMIT {c.MAX_POINTS + 1}"
        )


class MetricsStore:
    def __init__(self, url: str | None = None) -> None:
        self.url = url or dsn()
        self._lock = threading.Lock()
        self.client: Any = clickhouse_connect.get_client(dsn=self.url)
        self.closed = False

    # -- schema -------------------------------------------------------------------------------

    def migrate(self, directory: Path | None = None) -> list[int]:
        """Apply the SQL files not applied yet, in order; the versions applied now."""
        directory = directory or schema_dir()
        with self._lock:
            self.client.command(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, "
                "applied DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY version"
            )
            done = {row[0] for row in self.client.query("SELECT version FROM schema_migrations").result_rows}
            applied = []
            for path in sorted(directory.glob("*.sql")):
                m = _MIGRATION.match(path.name)
                if m is None or int(m.group(1)) in done:
                    continue
                for statement in _statements(path.read_text()):
                    self.client.command(statement)
                self.client.insert(
                    "schema_migrations",
                    [[int(m.group(1)), path.name, datetime.now(UTC)]],
                    column_names=["version", "name", "applied"],
                )
                applied.append(int(m.group(1)))
        if applied:
            log.info("metrics schema migrated", extra={"versions": applied})
        return applied

    # -- writing ------------------------------------------------------------------------------

    def insert_requests(
        self, fresh: Sequence[c.RequestRecord], redelivered: Sequence[c.RequestRecord]
    ) -> int:
        """Insert request records in one insert; the redelivered ones only where no row with
        their (account, ts, request id) exists. The number of rows inserted."""
        rows = list(fresh)
        if redelivered:
            known = self._existing(
                "requests", "request_id", [(r.account, r.mode, r.ts, r.request_id) for r in redelivered]
            )
            rows += [r for r in redelivered if (r.account, r.mode, r.ts, r.request_id) not in known]
        if not rows:
            return 0
        # As an Arrow table: the engine reads the columns as they are, where the client's own
        # insert converted every value in Python (a datetime per row): 3.4 -> 1.8 µs a row.
        string = pa.string()
        table = pa.Table.from_arrays(
            [
                pa.array([r.ts for r in rows], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
                pa.array([r.account for r in rows], string),
                pa.array([r.mode for r in rows], string),
                pa.array([r.project for r in rows], string),
                pa.array([r.env for r in rows], string),
                pa.array([r.route for r in rows], string),
                pa.array([r.method for r in rows], string),
                pa.array([r.status for r in rows], pa.uint16()),
                pa.array([r.latency_ms for r in rows], pa.float64()),
                pa.array([r.key_id for r in rows], string),
                pa.array([r.request_id for r in rows], string),
            ],
            names=list(REQUEST_COLUMNS),
        )
        with self._lock:
            self.client.insert_arrow("requests", table)
        return len(rows)

    def insert_events(self, fresh: Sequence[c.EventRecord], redelivered: Sequence[c.EventRecord]) -> int:
        rows = list(fresh)
        if redelivered:
            known = self._existing("events", "id", [(r.account, r.mode, r.ts, r.id) for r in redelivered])
            rows += [r for r in redelivered if (r.account, r.mode, r.ts, r.id) not in known]
        if not rows:
            return 0
        columns = [
            [_ms(r.ts) for r in rows],
            [r.account for r in rows],
            [r.mode for r in rows],
            [r.name for r in rows],
            [r.value for r in rows],
            [r.labels for r in rows],
            [r.id for r in rows],
        ]
        self._insert("events", columns, EVENT_COLUMNS)
        return len(rows)

    def insert_builds(self, fresh: Sequence[Build], redelivered: Sequence[Build]) -> int:
        rows = list(fresh)
        if redelivered:
            keys = [(b.account, b.mode, int(b.ts.timestamp() * 1000), b.deployment_id) for b in redelivered]
            known = self._existing("builds", "deployment_id", keys)
            rows += [b for b, key in zip(redelivered, keys, strict=True) if key not in known]
        if not rows:
            return 0
        columns = [[getattr(b, name) for b in rows] for name in BUILD_COLUMNS]
        self._insert("builds", columns, BUILD_COLUMNS)
        return len(rows)

    def _insert(self, table: str, columns: list[list[Any]], names: Sequence[str]) -> None:
        with self._lock:
            self.client.insert(table, columns, column_names=list(names), column_oriented=True)

    def _existing(
        self, table: str, id_column: str, keys: Sequence[tuple[str, str, int, str]]
    ) -> set[tuple[str, str, int, str]]:
        """Which of these (account, mode, ts ms, id) rows the table holds, read in one query
        bounded by their accounts, modes and time range (the primary key's order)."""
        found: set[tuple[str, str, int, str]] = set()
        if not keys:
            return found
        params = {
            "accounts": sorted({k[0] for k in keys}),
            "modes": sorted({k[1] for k in keys}),
            "lo": min(k[2] for k in keys),
            "hi": max(k[2] for k in keys),
            "ids": sorted({k[3] for k in keys}),
        }
        # The table and id column are ours; every value is a parameter.
        sql = (
            f"SELECT account, mode, toUnixTimestamp64Milli(ts), {id_column} FROM {table} "
            "WHERE account IN {accounts:Array(String)} AND mode IN {modes:Array(String)} "
            "AND ts >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
            "AND ts <= fromUnixTimestamp64Milli({hi:Int64}, 'UTC') "
            f"AND {id_column} IN {{ids:Array(String)}}"
        )
        with self._lock:
            for account, mode, ts, key in self.client.query(sql, parameters=params).result_rows:
                found.add((account, mode, int(ts), key))
        return found

    # -- partitions ---------------------------------------------------------------------------

    def partitions(self) -> list[tuple[str, str, str, int]]:
        """(table, partition id, mode, day as YYYYMMDD) of every active partition."""
        with self._lock:
            rows = self.client.query(
                "SELECT DISTINCT table, partition_id, partition FROM system.parts "
                "WHERE database = currentDatabase() AND active AND table IN {tables:Array(String)}",
                parameters={"tables": list(TABLES)},
            ).result_rows
        found = []
        for table, partition_id, partition in rows:
            m = _PARTITION.match(partition)
            if m is not None:
                found.append((table, partition_id, m.group(1), int(m.group(2))))
        return found

    def _drop(self, table: str, partition_id: str) -> None:
        # The partition id is ClickHouse's own (read from system.parts), not a client's value;
        # DROP PARTITION takes no parameter placeholder.
        if not re.fullmatch(r"[0-9a-f]{1,64}", partition_id):
            raise ValueError(f"unexpected partition id {partition_id!r}")
        with self._lock:
            self.client.command(f"ALTER TABLE {table} DROP PARTITION ID '{partition_id}'")

    def drop_mode(self, mode: str) -> int:
        """The sandbox reset: drop every partition of a mode (`test`); the number dropped."""
        dropped = 0
        for table, partition_id, part_mode, _ in self.partitions():
            if part_mode == mode:
                self._drop(table, partition_id)
                dropped += 1
        return dropped

    def expire(self, now: datetime, days: int | None = None) -> int:
        """Retention: drop the days older than `days` (STRATUS_METRICS_RETENTION_DAYS)."""
        keep_from = int((now - timedelta(days=days or retention_days())).strftime("%Y%m%d"))
        dropped = 0
        for table, partition_id, _, day in self.partitions():
            if day < keep_from:
                self._drop(table, partition_id)
                dropped += 1
        return dropped

    # -- queries ------------------------------------------------------------------------------

    def request_series(self, q: c.RequestSeries, account: str, mode: str, now: datetime) -> c.MetricsResult:
        window = Window(q.window, now)
        select = Select("requests", account, mode, window)
        for name in ("project", "env", "route"):
            value = getattr(q, name)
            if value is not None:
                select.equals(name, value)
        select.groups = [(name, _REQUEST_LABELS[name]) for name in dict.fromkeys(q.group_by)]
        if q.view == "requests":
            series = self._series(select, ["count() AS v0"], [({}, True)])
            return self._result(window, "requests", "count", series)
        if q.view == "latency":
            values = [
                "quantilesExact(0.5, 0.9, 0.95, 0.99)(latency_ms) AS q",
                *(f"q[{i + 1}] AS v{i}" for i in range(4)),
            ]
            extra = [({"quantile": name}, False) for name in _LEVELS]
            return self._result(window, "latency", "quantiles", self._series(select, values, extra, skip=1))
        values = [
            "countIf(status >= 400 AND status < 500) AS v0",
            "countIf(status >= 500) AS v1",
            "count() AS v2",
        ]
        extra = [({"class": "4xx", "stat": "count"}, True), ({"class": "5xx", "stat": "count"}, True)]
        counted = self._series(select, values, [*extra, ({"stat": "total"}, True)], keep_raw=True)
        series: list[c.Series] = []
        totals = {_key(s.labels): s for s in counted if s.labels.get("stat") == "total"}
        for s in counted:
            if s.labels.get("stat") != "count":
                continue
            series.append(s)
            total = totals[_key(s.labels)]
            rates: list[list[Any]] = [
                [t, None if not n else (v or 0.0) / n]
                for (t, v), (_, n) in zip(s.points, total.points, strict=True)
            ]
            series.append(c.Series(labels={**s.labels, "stat": "rate"}, points=rates))
        self._check_points(window, len(series))
        return self._result(window, "errors", "count", series)

    def run_query(self, q: c.RunQuery, account: str, mode: str, now: datetime) -> c.MetricsResult:
        metric = _metric(q.metric)
        if q.aggregation not in metric.aggregations:
            raise _invalid(
                "aggregation",
                f"`{q.metric}` takes {', '.join(metric.aggregations)}; use `latency` for request durations.",
            )
        if len(q.filters) > MAX_FILTERS:
            raise _invalid("filters", f"At most {MAX_FILTERS} filters.")
        if len(q.group_by) > MAX_GROUP_BY or len(set(q.group_by)) != len(q.group_by):
            raise _invalid("group_by", f"At most {MAX_GROUP_BY} distinct labels.")
        for field, names in (("filters", list(q.filters)), ("group_by", q.group_by)):
            for name in names:
                _check_label(metric, field, name)
        for name, value in q.filters.items():
            if len(value) > c.MAX_LABEL_VALUE:
                raise _invalid(f"filters.{name}", f"At most {c.MAX_LABEL_VALUE} characters.")
        window = Window(q.window, now)
        select = Select(metric.table, account, mode, window)
        for term in metric.where:
            select.where.append(term.format(name=f"{{{select.bind(q.metric)}:String}}"))
        for name, value in q.filters.items():
            select.equals(select.label(metric, name), value)
        select.groups = [(name, select.label(metric, name)) for name in q.group_by]
        counts = q.aggregation in ("count", "sum")  # nothing there: 0, not null
        expression = _aggregate(q.aggregation, metric.value)
        series = self._series(select, [f"{expression} AS v0"], [({}, counts)])
        return self._result(window, q.metric, q.aggregation, series)

    # -- helpers ------------------------------------------------------------------------------

    def _series(
        self,
        select: Select,
        values: list[str],
        extra: list[tuple[dict[str, str], bool]],
        *,
        skip: int = 0,
        keep_raw: bool = False,
    ) -> list[c.Series]:
        """Run the query; one series per group and value column (`extra` labels it, and says
        whether its empty buckets are 0 — counts — or null), every bucket of the window filled."""
        window = select.window
        with self._lock:
            rows = self.client.query(select.sql(values), parameters=select.params).result_rows
        if len(rows) > c.MAX_POINTS:
            raise c.too_many_points(len(rows), "more than")
        names = [name for name, _ in select.groups]
        grouped: dict[tuple[str, ...], list[Any]] = {}
        if not names:
            grouped[()] = []  # an ungrouped query answers its series even with no data
        for row in rows:
            key = tuple(str(v) for v in row[1 : 1 + len(names)])
            grouped.setdefault(key, []).append(row)
        if not keep_raw:
            self._check_points(window, len(grouped) * len(extra))
        times = window.times()
        series = []
        for key, group_rows in grouped.items():
            labels = dict(zip(names, key, strict=True))
            for i, (labels_extra, zero) in enumerate(extra):
                points: list[float | None] = [0.0 if zero else None] * window.n
                for row in group_rows:
                    index = row[0] - window.first
                    if 0 <= index < window.n:
                        value = row[1 + len(names) + skip + i]
                        points[index] = None if value != value else float(value)  # NaN: nothing there
                series.append(
                    c.Series(
                        labels={**labels, **labels_extra},
                        points=[[t, v] for t, v in zip(times, points, strict=True)],
                    )
                )
        return series

    def _check_points(self, window: Window, n_series: int) -> None:
        if n_series * window.n > c.MAX_POINTS:
            raise c.too_many_points(n_series * window.n, "")

    def _result(
        self, window: Window, metric: str, aggregation: str, series: list[c.Series]
    ) -> c.MetricsResult:
        return c.MetricsResult(
            metric=metric, aggregation=aggregation, range=window.range(), step=window.step, series=series
        )

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with self._lock:
                self.client.close()


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k not in ("stat", "class")))


def _metric(name: str) -> Metric:
    if name == "requests":
        return REQUESTS
    if name == "latency":
        return LATENCY
    if name == "build_duration":
        return BUILDS
    if not c.EVENT_NAME.match(name):
        raise _invalid(
            "metric", "`requests`, `latency`, `build_duration` or a custom event's name ([a-z0-9_.]{1,64})."
        )
    return Metric("events", "value", None, where=("name = {name}",))


def _check_label(metric: Metric, field: str, name: str) -> None:
    if metric.labels is None:
        if not c.LABEL_KEY.match(name):
            raise _invalid(field, "Label names are 1–64 of A-Z a-z 0-9 _ . -")
    elif name not in metric.labels:
        raise _invalid(field, f"`{name}` is not a label of this metric: {', '.join(metric.labels)}.")


def _aggregate(aggregation: str, value: str) -> str:
    if aggregation == "count":
        return "count()"
    if aggregation in _LEVELS:
        return f"quantileExact({_LEVELS[aggregation]})({value})"
    return f"{aggregation}({value})"  # sum, avg, min, max: checked against Metric.aggregations


def _statements(text: str) -> list[str]:
    """The statements of a migration file (`;` at a line's end ends one; `--` comments dropped)."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    statements = (s.strip().rstrip(";").strip() for s in "\n".join(lines).split(";\n"))
    return [s for s in statements if s]


__all__ = ["Build", "MetricsStore", "dsn", "retention_days"]
