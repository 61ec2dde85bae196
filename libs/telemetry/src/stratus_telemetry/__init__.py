"""Tracing and structured logging shared by every Stratus process.

`configure(service)` installs an OpenTelemetry tracer provider whose exporter is chosen by the
standard `OTEL_*` variables (none configured: spans are made but not exported) and JSON logs on
stderr that carry `request_id` and `trace_id`, written from a thread of their own (`logs`).
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from stratus_telemetry.logs import JsonFormatter, Line, QueueWriter, configure_logging, request_id_var

__all__ = [
    "TRACING",
    "JsonFormatter",
    "Line",
    "QueueWriter",
    "configure",
    "configure_logging",
    "configure_tracing",
    "request_id_var",
    "tracer",
]


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
