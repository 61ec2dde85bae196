"""Tracing and structured logging shared by every Stratus process.

`configure(service)` installs an OpenTelemetry tracer provider whose exporter is chosen by the
standard `OTEL_*` variables (none configured: spans are made but not exported) and JSON logs on
stderr that carry `request_id` and `trace_id`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from importlib.metadata import entry_points

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "stratus_request_id", default=None
)

# Attributes every LogRecord has, plus uvicorn's ANSI-coloured duplicate of the message.
_LOG_RECORD_BUILTINS = frozenset(vars(logging.makeLogRecord({})).keys()) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; request and trace ids come from the current context."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            entry["trace_id"] = format(ctx.trace_id, "032x")
            entry["span_id"] = format(ctx.span_id, "016x")
        for key, value in record.__dict__.items():
            if key not in _LOG_RECORD_BUILTINS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("STRATUS_LOG_LEVEL", "INFO").upper())
    # Access logs would repeat what the gateway logs itself, without the request id.
    logging.getLogger("uvicorn.access").disabled = True


def _exporter_names() -> list[str]:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not names and os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        names = "otlp"
    return [n.strip() for n in names.split(",") if n.strip() and n.strip() != "none"]


class _Tracing:
    """What `configure_tracing` installed. `recording` is read on every request (the gateway
    skips building server spans nobody records), so it is a plain attribute: asking
    OpenTelemetry for the current provider costs more than the cheap span it would decide on."""

    recording = False


TRACING = _Tracing()


def configure_tracing(service: str, *extra: SpanProcessor) -> TracerProvider:
    """Install the global tracer provider. Exporters are the `OTEL_TRACES_EXPORTER` entry points."""
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    names = _exporter_names()
    # With nothing to export to, spans are not recorded at all (they still carry trace ids for
    # logs and propagation): recording spans nobody reads costs every request for nothing.
    record = bool(names or extra or os.environ.get("OTEL_TRACES_SAMPLER"))
    provider = TracerProvider(resource=resource, sampler=None if record else ALWAYS_OFF)
    available = {ep.name: ep for ep in entry_points(group="opentelemetry_traces_exporter")}
    available.setdefault("otlp", available.get("otlp_proto_http"))
    for name in names:
        if available.get(name) is None:
            logging.getLogger(__name__).warning("unknown OTEL_TRACES_EXPORTER %r ignored", name)
            continue
        provider.add_span_processor(BatchSpanProcessor(available[name].load()()))
    for processor in extra:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    TRACING.recording = record
    return provider


def configure(service: str) -> TracerProvider:
    configure_logging(service)
    return configure_tracing(service)


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)
