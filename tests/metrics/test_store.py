"""The metrics store on real chDB: migrations, exact counts across redelivery, percentiles,
the point and range limits, tenancy, label queries, builds, the sandbox drop and retention."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from stratus_contracts import metrics as c
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError
from stratus_metrics.store import Build, MetricsStore

NOW = datetime.now(UTC).replace(microsecond=0)


def account() -> str:
    return f"acct_{uuid.uuid4().hex[:26]}"


def caller(acct: str, mode: str = "live") -> Caller:
    return Caller(account_id=acct, mode=mode, key_id="key_x")  # type: ignore[arg-type]


def request(
    acct: str,
    mode: str = "live",
    *,
    status: int = 200,
    latency: float = 1.0,
    route: str = "/v1/me",
    ago: float = 30.0,
    method: str = "GET",
    env: str = "",
) -> c.RequestRecord:
    ts = int((NOW - timedelta(seconds=ago)).timestamp() * 1000)
    return c.RequestRecord(
        ts=ts,
        account=acct,
        mode=mode,
        route=route,
        method=method,
        status=status,
        latency_ms=latency,
        request_id=f"req_{uuid.uuid4().hex}",
        env=env,
    )


def series(
    store: MetricsStore, acct: str, view: str = "requests", mode: str = "live", **kw
) -> c.MetricsResult:
    window = c.Window(range=kw.pop("range", 3600), step=kw.pop("step", 3600))
    q = c.RequestSeries(caller=caller(acct, mode), view=view, window=window, **kw)  # type: ignore[arg-type]
    return store.request_series(q, acct, mode, NOW)


def query(store: MetricsStore, acct: str, mode: str = "live", **kw) -> c.MetricsResult:
    # Two hourly buckets, the last holding NOW: a row up to an hour old is always inside, whatever
    # the time of day (one bucket would hold only the hour NOW is in).
    window = c.Window(range=kw.pop("range", 7200), step=kw.pop("step", 3600))
    q = c.RunQuery(caller=caller(acct, mode), window=window, **kw)
    return store.run_query(q, acct, mode, NOW)


def total(result: c.MetricsResult, **labels: str) -> float:
    return sum(v or 0 for s in result.series if labels.items() <= s.labels.items() for _, v in s.points)


def test_migrations_are_recorded_and_applied_once(store: MetricsStore) -> None:
    assert store.migrate() == []
    versions = store.client.query("SELECT version FROM schema_migrations ORDER BY version").result_rows
    assert [v for (v,) in versions] == [1, 2, 3]


def test_counts_per_route_and_status_and_redelivery_is_not_counted_twice(store: MetricsStore) -> None:
    acct = account()
    rows = [request(acct, route="/v1/me")] * 0 + [request(acct, route="/v1/me") for _ in range(3)]
    rows += [request(acct, route="/v1/projects", status=404) for _ in range(2)]
    assert store.insert_requests(rows, []) == 5
    # The same batch again, as JetStream redelivers it after a crash before the ack.
    assert store.insert_requests([], rows) == 0
    assert store.insert_requests([], [*rows, request(acct)]) == 1
    result = series(store, acct, group_by=["route", "status"])
    assert total(result, route="/v1/me", status="200") == 4
    assert total(result, route="/v1/projects", status="404") == 2
    assert len(result.series) == 2


def test_latency_percentiles_are_exact(store: MetricsStore) -> None:
    acct = account()
    store.insert_requests([request(acct, latency=float(v)) for v in range(1, 101)], [])
    result = series(store, acct, view="latency")
    got = {s.labels["quantile"]: [v for _, v in s.points if v is not None] for s in result.series}
    # quantileExact: the value at position floor(level × n) of the sorted values.
    assert got == {"p50": [51.0], "p90": [91.0], "p95": [96.0], "p99": [100.0]}


def test_error_counts_and_rates(store: MetricsStore) -> None:
    acct = account()
    rows = [request(acct, status=s) for s in (200, 200, 404, 422, 500, 503, 200, 200)]
    store.insert_requests(rows, [])
    result = series(store, acct, view="errors")
    assert total(result, **{"class": "4xx", "stat": "count"}) == 2
    assert total(result, **{"class": "5xx", "stat": "rate"}) == pytest.approx(0.25)


def test_buckets_are_filled_and_aligned(store: MetricsStore) -> None:
    acct = account()
    store.insert_requests([request(acct, ago=90), request(acct, ago=3)], [])
    result = series(store, acct, range=300, step=60)
    assert len(result.series[0].points) == 5 and result.step == 60
    assert result.range.end - result.range.start == timedelta(seconds=300)
    assert [t.timestamp() % 60 for t, _ in result.series[0].points] == [0.0] * 5
    assert sum(v for _, v in result.series[0].points) == 2
    assert series(store, account(), view="latency").series[0].points[0][1] is None


def test_tenancy_account_and_mode_are_bound(store: MetricsStore) -> None:
    mine, theirs = account(), account()
    store.insert_requests([request(theirs), request(mine, mode="test")], [])
    assert total(series(store, mine)) == 0
    assert total(series(store, mine, mode="test")) == 1
    assert total(query(store, mine, metric="requests", aggregation="count")) == 0


def test_point_and_range_limits(store: MetricsStore) -> None:
    acct = account()
    with pytest.raises(DomainError) as err:
        series(store, acct, range=30 * 86400, step=60)
    assert err.value.reply.code == "metrics_too_many_points" and "step" in err.value.reply.message
    for bad in ({"range": 59, "step": 10}, {"range": 31 * 86400, "step": 86400}, {"range": 60, "step": 120}):
        with pytest.raises(DomainError) as err:
            series(store, acct, **bad)
        assert err.value.reply.code == "metrics_range_invalid"
    # Many groups × buckets: refused after counting the groups.
    store.insert_requests([request(acct, route=f"/r{i}") for i in range(30)], [])
    with pytest.raises(DomainError) as err:
        series(store, acct, range=86400, step=60, group_by=["route"])
    assert err.value.reply.code == "metrics_too_many_points"
    assert series(store, acct, range=86400, step=3600, group_by=["route"]).step == 3600
    assert series(store, acct, range=7 * 86400, step=None).step == 3600  # the default: ≤ 500 points


def test_custom_events_by_name_and_labels(store: MetricsStore) -> None:
    acct = account()
    ts = int((NOW - timedelta(minutes=5)).timestamp() * 1000)
    events = [
        c.EventRecord(
            id=f"mev_{i}",
            ts=ts,
            account=acct,
            mode="live",
            name="signup",
            value=float(i),
            labels={"plan": "pro" if i % 2 else "free"},
        )
        for i in range(10)
    ]
    store.insert_events(events, [])
    assert store.insert_events([], events) == 0
    result = query(store, acct, metric="signup", aggregation="sum", group_by=["plan"])
    assert {
        s.labels["plan"]: total(
            c.MetricsResult(metric="", aggregation="", range=result.range, step=1, series=[s])
        )
        for s in result.series
    } == {"pro": 25, "free": 20}
    assert total(query(store, acct, metric="signup", aggregation="count", filters={"plan": "pro"})) == 5
    assert total(query(store, acct, metric="other", aggregation="count")) == 0


def test_injection_attempts_are_inert(store: MetricsStore) -> None:
    acct, other = account(), account()
    store.insert_requests([request(other)], [])
    store.insert_events(
        [
            c.EventRecord(
                id="mev_x",
                ts=int(NOW.timestamp() * 1000) - 1000,
                account=other,
                mode="live",
                name="signup",
                value=1.0,
                labels={"k": "v"},
            )
        ],
        [],
    )
    evil = "x' OR 1=1 OR account != '"
    # Values are bound: no rows, never another tenant's.
    assert total(series(store, acct, route=evil, project=evil, env=evil)) == 0
    assert total(query(store, acct, metric="signup", aggregation="count", filters={"k": evil})) == 0
    assert total(query(store, acct, metric="requests", aggregation="count", filters={"route": evil})) == 0
    # Names are whitelisted: a refusal with a stable code.
    for kw in (
        {"metric": "requests) OR (1=1", "aggregation": "count"},
        {"metric": "requests", "aggregation": "count", "group_by": ["route, account"]},
        {"metric": "requests", "aggregation": "count", "filters": {"1=1 OR account": "x"}},
        {"metric": "signup", "aggregation": "count", "group_by": ["k'] OR 1=1 --"]},
        {"metric": "signup", "aggregation": "count", "filters": {"k'] != '": "v"}},
    ):
        with pytest.raises(DomainError) as err:
            query(store, acct, **kw)
        assert err.value.reply.code == "validation_failed"


def test_build_durations(store: MetricsStore) -> None:
    acct = account()
    builds = [
        Build(
            ts=NOW - timedelta(hours=h),
            account=acct,
            mode="live",
            project=p,
            env="production",
            deployment_id=f"dep_{p}_{h}",
            result="succeeded",
            duration_s=float(10 * h),
        )
        for p in ("prj_a", "prj_b")
        for h in range(1, 21)
    ]
    assert store.insert_builds(builds, []) == 40
    assert store.insert_builds([], builds[:5]) == 0
    result = query(
        store,
        acct,
        metric="build_duration",
        aggregation="p95",
        group_by=["project"],
        range=7 * 86400,
        step=7 * 86400,
    )
    assert {s.labels["project"]: [v for _, v in s.points if v is not None] for s in result.series} == {
        "prj_a": [200.0],
        "prj_b": [200.0],
    }


def test_sandbox_drop_leaves_live_and_retention_drops_old_days(store: MetricsStore) -> None:
    acct = account()
    store.insert_requests([request(acct), request(acct, mode="test")], [])
    store.insert_requests([request(acct, ago=40 * 86400)], [])
    assert store.drop_mode("test") >= 1
    assert total(series(store, acct, mode="test")) == 0
    assert total(series(store, acct)) == 1
    old = store.client.query(
        "SELECT count() FROM requests WHERE account = {a:String}", parameters={"a": acct}
    ).result_rows[0][0]
    assert old == 2
    assert store.expire(NOW, days=30) >= 1
    left = store.client.query(
        "SELECT count() FROM requests WHERE account = {a:String}", parameters={"a": acct}
    ).result_rows[0][0]
    assert left == 1
