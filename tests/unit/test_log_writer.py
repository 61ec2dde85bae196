"""The log writer every process uses (`stratus_telemetry.logs`): JSON lines written from a thread
of their own, with the context they were logged in, in order, none lost on a clean exit, and
errors written at once."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from stratus_telemetry import Line, QueueWriter, configure_logging, logs, request_id_var
from stratus_testing import wait_until


@pytest.fixture
def writer() -> Iterator[tuple[QueueWriter, io.StringIO]]:
    """A writer installed as `configure_logging` installs it, the root logger's only handler
    (pytest adds its capture handlers for each phase of a test: the `alone` call in each test
    takes them off again, as a process of ours has none)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    installed = configure_logging("unit", stream=stream)
    yield installed, stream
    installed.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def alone(writer: tuple[QueueWriter, io.StringIO]) -> tuple[QueueWriter, io.StringIO]:
    logging.getLogger().handlers[:] = [writer[0]]
    return writer


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


ACCESS = Line("unit.access", "request", ("method", "path", "status", "duration_ms"))


def test_lines_and_records_keep_their_order_and_the_context_they_were_logged_in(writer) -> None:
    installed, stream = alone(writer)
    log = logging.getLogger("unit.other")
    token = request_id_var.set("req_first")
    ACCESS.log("GET", "/v1/me", 200, 0.05)
    log.info("between %s", "lines", extra={"plan": {"limit": 1}})
    with TracerProvider().get_tracer("unit").start_as_current_span("span") as span:
        ids = span.get_span_context()
        ACCESS.log("POST", "/v1/projects", 201, 1.5)
    request_id_var.reset(token)
    ACCESS.log("GET", "/healthz", 200, 0.01)  # no request id any more
    installed.flush()
    first, record, traced, last = lines(stream)
    assert list(first) == ["ts", "level", "service", "logger", "msg", "request_id", *ACCESS.fields]
    assert first["request_id"] == "req_first" and first["status"] == 200 and first["level"] == "info"
    assert record["msg"] == "between lines" and record["plan"] == {"limit": 1}
    assert record["request_id"] == "req_first" and record["logger"] == "unit.other"
    assert traced["trace_id"] == format(ids.trace_id, "032x") and traced["span_id"] == format(
        ids.span_id, "016x"
    )
    assert "request_id" not in last and "trace_id" not in last
    assert first["ts"].endswith("Z") and len(first["ts"]) == len("2026-12-03T10:03:40.996Z")


def test_a_line_is_the_json_a_record_with_the_same_fields_would_be(writer) -> None:
    installed, stream = alone(writer)
    ACCESS.log("GET", "/v1/me", None, 0.05)
    logging.getLogger("unit.access").info(
        "request", extra={"method": "GET", "path": "/v1/me", "status": None, "duration_ms": 0.05}
    )
    installed.flush()
    line, record = lines(stream)
    assert {k: v for k, v in line.items() if k != "ts"} == {k: v for k, v in record.items() if k != "ts"}


def test_the_thread_writes_without_a_flush_and_errors_at_once(writer) -> None:
    _, stream = alone(writer)
    ACCESS.log("GET", "/v1/me", 200, 0.05)
    wait_until(lambda: "request" in stream.getvalue(), timeout=5, message="the writer's round")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("unit").exception("it failed")
    entry = wait_until(lambda: [e for e in lines(stream) if e["msg"] == "it failed"], timeout=5)[0]
    assert entry["level"] == "error" and "RuntimeError: boom" in entry["exc"]


def test_values_that_do_not_encode_never_cost_the_line(writer) -> None:
    installed, stream = alone(writer)
    circular: dict = {}
    circular["self"] = circular
    ACCESS.log("GET", object(), {1, 2}, 0.05)
    logging.getLogger("unit").warning("odd", extra={"value": circular, "key": {(1, 2): "tuple key"}})
    logging.getLogger("unit").info("bad %d format", "x")
    installed.flush()
    line, odd, bad = lines(stream)
    assert line["path"].startswith("<object object") and line["status"] == [1, 2]
    assert odd["msg"] == "odd" and "self" in odd["value"]
    assert "bad %d format" in bad["msg"]


def test_a_caller_that_finds_the_queue_full_writes_it_itself(writer, monkeypatch) -> None:
    installed, stream = alone(writer)
    monkeypatch.setattr(logs, "MAX_PENDING", 40)
    ACCESS.log("GET", "/0", 200, 0.0)  # starts the writer's thread
    installed.wake_at = 0  # from now on every append asks whether the queue is over its bound
    for n in range(1, 100):
        ACCESS.log("GET", f"/{n}", 200, 0.0)
        assert len(installed._pending) < 40 + ACCESS.items + 1
    installed.flush()
    assert [e["path"] for e in lines(stream)] == [f"/{n}" for n in range(100)]


def test_with_another_handler_on_the_root_a_line_goes_through_logging(writer) -> None:
    installed, stream = alone(writer)
    other = io.StringIO()
    handler = logging.StreamHandler(other)
    handler.setFormatter(logs.JsonFormatter("other"))
    logging.getLogger().addHandler(handler)
    try:
        ACCESS.log("GET", "/v1/me", 200, 0.05)
    finally:
        logging.getLogger().removeHandler(handler)
    installed.flush()
    assert [e["path"] for e in lines(stream)] == ["/v1/me"]
    assert json.loads(other.getvalue())["path"] == "/v1/me"


def test_nothing_queued_is_lost_when_the_process_exits(tmp_path: Path) -> None:
    log_file = tmp_path / "out.log"
    program = textwrap.dedent(
        """
        import logging, sys
        from stratus_telemetry import Line, configure_logging
        configure_logging("exit-test")
        line = Line("exit.access", "request", ("n",))
        for n in range(20000):
            line.log(n)
            if n % 1000 == 0:
                logging.getLogger("exit").info("record %d", n)
        """
    )
    with log_file.open("wb") as out:
        done = subprocess.run([sys.executable, "-c", program], stderr=out, timeout=60, check=False)
    assert done.returncode == 0
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [e["n"] for e in entries if e["msg"] == "request"] == list(range(20000))
    assert len([e for e in entries if e["msg"].startswith("record")]) == 20


def test_an_elapsed_field_is_the_milliseconds_from_the_given_clock_reading(writer) -> None:
    installed, stream = alone(writer)
    timed = Line("unit.timed", "done", ("what", "took_ms"), elapsed="took_ms")
    started = time.perf_counter()
    timed.log("direct", started - 0.25)
    logging.getLogger().addHandler(logging.NullHandler())  # the way through `logging` too
    timed.log("through logging", started - 0.25)
    installed.flush()
    spent = (time.perf_counter() - started) * 1000
    for entry in lines(stream):
        assert 250 <= entry["took_ms"] <= 250 + spent + 1, entry
    assert [e["what"] for e in lines(stream)] == ["direct", "through logging"]
