"""The gateway's one outer ASGI layer: request id, server span, size limits, address rate limit,
response headers, the access log line and the request's telemetry record (`telemetry`).

It wraps every response (errors and unknown routes included), so `X-Request-Id` is always set.
These jobs share one layer and one pass over the request headers because every layer and every
`send` wrapper is paid on every request; as separate middlewares they cost more than the
authentication behind them (docs/performance.md).

In order: the URL and header sizes are checked (414/431, see `limits`), then a request without
credentials pays from its client address's bucket (429 once over, see `ratelimit`), then the app
runs. Authenticated requests pay from their key's bucket in `auth`; a request that carried
credentials but that no route took (404, 405) is authenticated as its answer starts, and its
key pays (with `X-RateLimit-*` on the answer, or a 429 instead of it), or, when the credentials
are not valid, its address pays afterwards.
"""

from __future__ import annotations

import re
import time
from typing import Any

from litestar import Litestar
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from stratus_contracts.ids import new_request_id
from stratus_gateway import limits, problems, ratelimit
from stratus_gateway.envelope import RESPONSE_HEADERS
from stratus_telemetry import TRACING, Line, request_id_var

# One line per request at INFO. `Line.log` queues these values for the log writer
# thread, which encodes it: a LogRecord per request cost more than a whole /v1/me.
ACCESS_LOG = Line(
    "stratus.gateway.access", "request", ("method", "path", "status", "duration_ms"), elapsed="duration_ms"
)
_tracer = trace.get_tracer("stratus.gateway")
BEARER_STATE = "stratus.authorization"  # the raw Authorization header, found in the one pass here
AUTH_STATE = "stratus.auth"  # where `auth` leaves the resolved credential in the ASGI scope
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_UNROUTED = frozenset({404, 405})


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def _server_span(method: str, path: str, request_id: str) -> Any:
    """The request's server span. Only made when spans are recorded (what
    `stratus_telemetry.configure_tracing` set up): without a recording provider a span would only
    lend its trace id to log lines and bus messages, which carry the request id for that, and
    making one costs more than authenticating the request (docs/performance.md)."""
    span = _tracer.start_span(f"{method} {path}", kind=SpanKind.SERVER)
    span.set_attribute("http.request.method", method)
    span.set_attribute("url.path", path)
    span.set_attribute("stratus.request_id", request_id)
    return span


def edge(app: Litestar) -> ASGIApp:
    """Wrap the Litestar app in the outer layer (the app's `state.rate_limiter` is read per
    request, so the app may start after this is built)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        recorder = app.state.get("telemetry")  # telemetry.Recorder, or None when it is off
        if recorder is not None:
            began, wall = time.perf_counter(), time.time()
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        state: Any = scope
        request_id = authorization = oversized = None
        total = 0
        for name, value in scope["headers"]:
            size = len(name) + len(value)
            total += size
            if size > limits.MAX_HEADER:
                oversized = oversized or (name, size)
            elif name == b"authorization":
                authorization = value
            elif name == b"x-request-id":
                text = value.decode("latin-1")
                request_id = text if _SANE_ID.match(text) else None
        request_id = request_id or new_request_id()
        token = request_id_var.set(request_id)
        method, path = scope["method"], scope["path"]
        span = _server_span(method, path, request_id) if TRACING.recording else None
        if span is not None:
            context_token = otel_context.attach(trace.set_span_in_context(span))
        status = 500
        started = time.perf_counter() if ACCESS_LOG.enabled() else 0.0
        request_id_header = (b"x-request-id", request_id.encode())

        refused = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, refused
            if message["type"] == "http.response.start":
                status = message["status"]
                if status in _UNROUTED and authorization is not None and AUTH_STATE not in state:
                    # No route (404) or no such method (405): nothing authenticated the request,
                    # but its key pays all the same, and says so in `X-RateLimit-*`.
                    refusal = await app.state["authenticator"].charge_unrouted(state)
                    if refusal is not None:
                        refused = True
                        await problems.send_problem(
                            send,
                            refusal.code,
                            refusal.detail,
                            [request_id_header, *_encoded(refusal.headers), *state.get(RESPONSE_HEADERS, ())],
                        )
                        return
                headers = [*message.get("headers", ()), request_id_header]
                if extra := state.get(RESPONSE_HEADERS):
                    headers += extra
                message["headers"] = headers
            elif refused:
                return  # the body of the answer a 429 replaced
            await send(message)

        try:
            url = len(scope.get("raw_path") or path.encode()) + len(scope.get("query_string", b""))
            if oversized is not None or total > limits.MAX_HEADERS or url > limits.MAX_URL:
                await limits.send_refusal(send_wrapper, *limits.refusal(url, total, oversized))
                return
            exempt = path in ratelimit.EXEMPT_PATHS
            if authorization is not None:
                state[BEARER_STATE] = authorization
            elif not exempt:
                decision = await ratelimit.charge_address(state, app.state["rate_limiter"])
                if decision is not None and not decision.allowed:
                    await ratelimit.send_refusal(send_wrapper, decision)
                    return
            await app(scope, receive, send_wrapper)
            if not exempt and ratelimit.CHARGED_STATE not in state:
                await ratelimit.charge_address(state, app.state["rate_limiter"])
        finally:
            if span is not None:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            if started:
                ACCESS_LOG.log(method, path, status, started)  # duration_ms: the writer subtracts
            if recorder is not None and (auth := state.get(AUTH_STATE)) is not None:
                # Only authenticated requests: a record belongs to an account and a mode. The
                # route is Litestar's template, so ids in paths never make new series.
                who, params = auth.caller, state.get("path_params") or {}
                recorder.add(
                    (
                        int(wall * 1000),
                        who.account_id,
                        who.mode,
                        state.get("path_template") or "",
                        method,
                        status,
                        (time.perf_counter() - began) * 1000.0,
                        request_id,
                        who.key_id,
                        params.get("project_id") or "",
                        params.get("env_id") or "",
                    )
                )
            if span is not None:
                otel_context.detach(context_token)
                span.end()
            request_id_var.reset(token)

    return middleware
