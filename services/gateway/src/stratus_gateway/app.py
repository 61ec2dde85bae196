"""Composition root of the gateway: the Litestar app, its routes, guards and error handling."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Request, Router
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp

from stratus_bus import Bus
from stratus_bus.config import nats_url
from stratus_gateway import auth, docs, idempotency, limits, ratelimit, telemetry, versioning
from stratus_gateway.middleware import edge
from stratus_gateway.problems import EXCEPTION_HANDLERS, ApiError
from stratus_gateway.routes import system, tokens
from stratus_gateway.routes.audit import AuditController
from stratus_gateway.routes.deployments import DeploymentController
from stratus_gateway.routes.env_vars import EnvVarController
from stratus_gateway.routes.envs import EnvController, ProjectEnvController
from stratus_gateway.routes.event_types import EventTypeController
from stratus_gateway.routes.events import EventController
from stratus_gateway.routes.keys import KeyController
from stratus_gateway.routes.members import MemberController
from stratus_gateway.routes.metrics import MetricsController
from stratus_gateway.routes.params import check_query
from stratus_gateway.routes.project_members import ProjectMemberController
from stratus_gateway.routes.projects import ProjectController
from stratus_gateway.routes.webhooks import DeliveryController, WebhookController

log = logging.getLogger("stratus.gateway")
MAX_BODY = 1024 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
DESCRIPTION = (
    "One API, one credential and one set of conventions over projects and their teams, environments "
    "and their encrypted variables, deployments and their logs, webhooks, the event feed and event "
    "types, API keys, short-lived tokens and members, the audit log and request metrics.\n\n"
    'Successes are `{"data", "meta": {"request_id"}, "error": null}`; lists add `meta.has_more` and '
    "`meta.next_cursor` (pass it back as `?cursor=`). Every error is an RFC 9457 "
    "`application/problem+json` body with a stable `code` (`GET /errors/{code}` explains one). "
    "Writes take an optional `Idempotency-Key`; single resources carry an `ETag` for `If-Match` "
    "and `If-None-Match`."
)


def _text_body(request: Request[Any, Any, Any]) -> bool:
    """Whether the route takes a text/plain body (opt `text_body`: dotenv import), not JSON."""
    return bool(request.route_handler.opt.get("text_body"))


def require_json(request: Request[Any, Any, Any]) -> None:
    """415 for a body that is not JSON; checked before the body is read."""
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if has_body and request.content_type[0] != "application/json":
        raise ApiError(
            "unsupported_media_type",
            f"Got {request.content_type[0] or 'no content type'}; send application/json.",
        )


async def before_v1(request: Request[Any, Any, Any]) -> None:
    """Before a `/v1` handler's parameters are parsed: authorize (401/403/429), then the body:
    JSON only (415), nested at most 32 deep (400)."""
    await auth.authorize(request.scope)
    check_query(request.query_params.multi_items())
    # Routes with opt `text_body` (dotenv import) check their own content type.
    if request.scope["method"] in _BODY_METHODS and not _text_body(request):
        require_json(request)
        await limits.check_json_depth(request)


def create_app(bus: Bus | None = None) -> Litestar:
    """The gateway app. Without a bus it connects to `NATS_URL` on startup."""
    deprecations = versioning.deprecations_from_env()  # a bad value stops the gateway here

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = bus is None  # an injected bus (tests, embedding) belongs to the caller
        if owned:
            app.state.bus = await Bus.connect(nats_url(), name="gateway")
        limiter = await ratelimit.start(app, app.state.bus)
        authn = await auth.start(app, app.state.bus, limiter)
        await idempotency.start(app, app.state.bus)
        recorder = None
        if telemetry.enabled():
            recorder = telemetry.Recorder(app.state.bus)
            await recorder.start()
            app.state.telemetry = recorder
        try:
            yield
        finally:
            if recorder is not None:
                app.state.telemetry = None
                await recorder.stop()
            await limiter.stop()
            await authn.stop()
            if owned:
                await app.state.bus.drain()
            log.info("gateway stopped")  # the lifespan's shutdown ran (whichever server served)

    v1 = idempotency.attach(
        Router(
            "/v1",
            route_handlers=[
                ProjectController,
                ProjectMemberController,
                ProjectEnvController,
                EnvController,
                EnvVarController,
                DeploymentController,
                EventController,
                WebhookController,
                DeliveryController,
                EventTypeController,
                AuditController,
                MetricsController,
                KeyController,
                MemberController,
                system.me,
                tokens.create_token,
            ],
            before_request=before_v1,
            security=[{"bearer": []}],
        )
    )
    app = Litestar(
        route_handlers=[
            v1,
            system.healthz,
            system.readyz,
            system.explain_error,
            system.openapi_json,
            system.asyncapi_json,
        ],
        lifespan=[lifespan],
        state=State({"bus": bus, "deprecations": deprecations, "telemetry": None}),
        exception_handlers={**EXCEPTION_HANDLERS, NotFoundException: versioning.on_not_found},  # type: ignore[dict-item]
        before_send=[versioning.deprecation_headers(deprecations)] if deprecations else [],
        request_max_body_size=MAX_BODY,
        openapi_config=OpenAPIConfig(
            title="Stratus API",
            version="1.0.0",
            description=DESCRIPTION,
            openapi_router=docs.router(),
            render_plugins=[docs.SwaggerPage(), docs.FinishedDocument()],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="`sk_live_…` or `sk_test_…` API key.",
                    )
                }
            ),
            tags=[
                Tag(name="projects"),
                Tag(name="environments"),
                Tag(name="deployments"),
                Tag(name="events"),
                Tag(name="webhooks"),
                Tag(name="identity"),
                Tag(name="audit"),
                Tag(name="metrics"),
                Tag(name="system"),
            ],
            create_examples=False,
        ),
        # Logging is ours (JSON via stratus_telemetry); Litestar's default config would replace it.
        logging_config=None,
        debug=False,
    )
    allow_every_method(app)
    return app


def allow_every_method(app: Litestar) -> None:
    """Make `OPTIONS` answer the `Allow` a 405 on the same path does: every method of the path.

    Litestar makes a path's OPTIONS handler when the first handler is registered at that path,
    bound to the route as it was then; a path whose methods come from several handlers (GET and
    POST on `/v1/projects`) is rebuilt as each is added, so `Allow` named only the first ones.
    Bind each to the route as finally built. `tests/e2e/test_http_truths.py` compares both
    answers on every path the OpenAPI document lists."""
    for route in app.routes:
        entry = getattr(route, "route_handler_map", {}).get("OPTIONS")
        if not isinstance(route, HTTPRoute) or entry is None:
            continue
        for cell in getattr(entry[0].fn, "__closure__", None) or ():
            if isinstance(cell.cell_contents, HTTPRoute):
                cell.cell_contents = route


def asgi(bus: Bus | None = None) -> ASGIApp:
    """The app as served: inside the outer layer (`middleware.edge`: request id and span, size
    limits, rate limiting of requests without credentials, response headers, access log)."""
    return edge(create_app(bus))
