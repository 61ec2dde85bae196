"""Composition root of the gateway: the Litestar app, its routes, guards and error handling."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Request, Router
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.types import ASGIApp

from stratus_bus import Bus
from stratus_bus.config import nats_url
from stratus_gateway import auth
from stratus_gateway.middleware import request_context
from stratus_gateway.problems import EXCEPTION_HANDLERS, ApiError
from stratus_gateway.routes import system, tokens
from stratus_gateway.routes.audit import AuditController
from stratus_gateway.routes.keys import KeyController
from stratus_gateway.routes.members import MemberController
from stratus_gateway.routes.project_members import ProjectMemberController
from stratus_gateway.routes.projects import ProjectController

MAX_BODY = 1024 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def require_json(request: Request[Any, Any, Any]) -> None:
    """415 for a body that is not JSON; checked before the body is read."""
    if request.method not in _BODY_METHODS:
        return
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if has_body and request.content_type[0] != "application/json":
        raise ApiError(
            "unsupported_media_type",
            f"Got {request.content_type[0] or 'no content type'}; send application/json.",
        )


def create_app(bus: Bus | None = None) -> Litestar:
    """The gateway app. Without a bus it connects to `NATS_URL` on startup."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = bus is None  # an injected bus (tests, embedding) belongs to the caller
        if owned:
            app.state.bus = await Bus.connect(nats_url(), name="gateway")
        authn = await auth.start(app, app.state.bus)
        try:
            yield
        finally:
            await authn.stop()
            if owned:
                await app.state.bus.drain()

    v1 = Router(
        "/v1",
        route_handlers=[
            ProjectController,
            ProjectMemberController,
            AuditController,
            KeyController,
            MemberController,
            system.me,
            tokens.create_token,
        ],
        middleware=[auth.authentication],
        before_request=require_json,
        security=[{"bearer": []}],
    )
    return Litestar(
        route_handlers=[
            v1,
            system.healthz,
            system.readyz,
            system.explain_error,
            system.openapi_json,
        ],
        lifespan=[lifespan],
        state=State({"bus": bus}),
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=MAX_BODY,
        openapi_config=OpenAPIConfig(
            title="Stratus API",
            version="1.0.0",
            description="One API over projects, environments, deployments, metrics and webhooks.",
            path="/docs",
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="`sk_live_…` or `sk_test_…` API key.",
                    )
                }
            ),
            tags=[Tag(name="projects"), Tag(name="identity"), Tag(name="audit"), Tag(name="system")],
            create_examples=False,
        ),
        # Logging is ours (JSON via stratus_telemetry); Litestar's default config would replace it.
        logging_config=None,
        debug=False,
    )


def asgi(bus: Bus | None = None) -> ASGIApp:
    """The app as served: request-context middleware outside everything, so every response has it."""
    return request_context(create_app(bus))
