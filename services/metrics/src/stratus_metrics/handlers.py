"""Metrics handlers: the request-series and structured queries, run on a worker thread against
the caller's mode's view of the store. The account and mode are the caller's, bound by the
store in every WHERE clause; nothing in the query body can name another."""

from __future__ import annotations

from datetime import datetime

from stratus_contracts import metrics as c
from stratus_kit import Decision, Handler, State
from stratus_metrics.store import MetricsStore


class ModeView:
    """The store as one partition (mode) sees it; the process has one store for both modes
    (chDB is one engine per process), closed once."""

    def __init__(self, store: MetricsStore, mode: str) -> None:
        self.store = store
        self.mode = mode

    def close(self) -> None:
        self.store.close()


def _view(state: State) -> ModeView:
    view = state.read_model("metrics")
    assert isinstance(view, ModeView)
    return view


def request_series(q: c.RequestSeries, state: State, now: datetime) -> Decision:
    view = _view(state)
    return (), view.store.request_series(q, q.caller.account_id, view.mode, now)


def run_query(q: c.RunQuery, state: State, now: datetime) -> Decision:
    view = _view(state)
    return (), view.store.run_query(q, q.caller.account_id, view.mode, now)


HANDLERS: dict[type, Handler] = {
    c.RequestSeries: request_series,
    c.RunQuery: run_query,
}
