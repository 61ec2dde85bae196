"""Routes outside the resource model: `/v1/me`, health, readiness, error pages and the specs
(`/openapi.json`, `/asyncapi.json`)."""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath

from stratus_bus import Bus, RemoteError, ServiceTimeout, ServiceUnavailable
from stratus_contracts import asyncapi, services, subjects
from stratus_contracts.errors import CATALOGUE
from stratus_contracts.reply import Ping, Pong
from stratus_gateway import idempotency
from stratus_gateway.auth import current, required_scope
from stratus_gateway.envelope import HealthEnvelope, Me, MeEnvelope, MeToken, meta, ok
from stratus_gateway.openapi_docs import complete, document_headers, problems
from stratus_gateway.problems import problem_response
from stratus_gateway.versioning import document as document_deprecations

Req = Request[Any, Any, Any]
SERVICES = tuple(s.name for s in services.SERVICES)


@get("/me", operation_id="getMe", summary="The calling key", tags=["identity"], responses=problems())
async def me() -> Response[MeEnvelope]:
    auth = current()  # not a `request` parameter: injecting one costs more than this route
    who, key, claims = auth.caller, auth.principal, auth.token
    token = None
    if claims is not None:
        token = MeToken(id=claims.jti, subject=claims.sub, expires_at=datetime.fromtimestamp(claims.exp, UTC))
    data = Me(
        key_id=who.key_id,
        account=who.account_id,
        mode=who.mode,
        name=key.name,
        scopes=who.scopes,
        project_ids=who.project_ids,
        environments=who.environments,
        allowed_ips=key.allowed_ips,
        member_id=who.member_id,
        created=key.created,
        age_seconds=auth.age_seconds,
        expires_at=key.expires_at,
        token=token,
    )
    return ok(MeEnvelope(data=data, meta=meta()))


@get("/healthz", operation_id="healthz", summary="Process liveness", tags=["system"], security=[{}])
async def healthz() -> Response[HealthEnvelope]:
    return ok(HealthEnvelope(data={"status": "ok"}, meta=meta()))


async def _ping(bus: Bus, service: str) -> bool:
    try:
        await bus.call(Ping(), subject=subjects.ping(service), returns=Pong, timeout=1.0)
    except (ServiceUnavailable, ServiceTimeout, RemoteError):
        return False
    return True


@get(
    "/readyz",
    operation_id="readyz",
    summary="Readiness: NATS and every service answer",
    tags=["system"],
    security=[{}],
    responses={
        200: ResponseSpec(
            data_container=HealthEnvelope,
            description='Every dependency answers: `data` is `{status: "ready", checks: {name: true, …}}`.',
            generate_examples=False,
        ),
        **problems(auth=False),
    },
)
async def readyz(request: Req) -> Response[Any]:
    bus: Bus = request.app.state["bus"]
    checks = {"nats": bus.nc.is_connected}
    if checks["nats"]:
        results = await asyncio.gather(*(_ping(bus, s) for s in SERVICES))
        checks.update(zip(SERVICES, results, strict=True))
    else:
        checks.update(dict.fromkeys(SERVICES, False))
    if all(checks.values()):
        data: dict[str, Any] = {"status": "ready", "checks": checks}
        if (recorder := request.app.state.get("telemetry")) is not None:
            data["telemetry"] = recorder.stats()  # dropped_total rises when the bus cannot keep up
        return ok(HealthEnvelope(data=data, meta=meta()))
    down = ", ".join(name for name, up in checks.items() if not up)
    return problem_response(
        "service_unavailable", f"Not ready: {down} not answering.", headers={"Retry-After": "1"}
    )


@get(
    "/errors/{code:str}",
    operation_id="explainError",
    summary="What an error code means",
    tags=["system"],
    security=[{}],
    media_type=MediaType.TEXT,
    responses=problems("route_not_found", auth=False, common=False),
)
async def explain_error(code: FromPath[str]) -> str:
    s = CATALOGUE.get(code)
    if s is None:
        raise NotFoundException()
    return f"{code} ({s.status} {s.title})\n\n{s.explanation}\n"


@get("/openapi.json", include_in_schema=False, security=[{}])
async def openapi_json(request: Req) -> Response[Any]:
    return Response(served_openapi(request.app), media_type="application/json")


def served_openapi(app: Any) -> bytes:
    """The document `/openapi.json` (and `/docs/openapi.json`) serves, built and encoded once."""
    if getattr(app.state, "openapi", None) is None:
        app.state.openapi = msgspec.json.encode(build_openapi(app))
    return app.state.openapi  # type: ignore[no-any-return]


def build_openapi(app: Any) -> dict[str, Any]:
    """The OpenAPI document as served: Litestar's, finished by the gateway (`openapi_docs`)."""
    spec = document_scopes(app.openapi_schema.to_schema(), app)
    spec = document_headers(complete(idempotency.document(spec)))
    return document_deprecations(spec, app.state.deprecations)


@functools.cache
def _asyncapi() -> bytes:
    # Generated from the contracts, which do not change while the process runs: encode it once.
    return msgspec.json.encode(asyncapi.document())


@get("/asyncapi.json", include_in_schema=False, security=[{}])
async def asyncapi_json() -> Response[Any]:
    """The AsyncAPI 3.0 document of the NATS subjects (events, commands, queries); docs/asyncapi.json."""
    return Response(_asyncapi(), media_type="application/json")


def document_scopes(spec: dict[str, Any], app: Any) -> dict[str, Any]:
    """Add each `/v1` operation's required scope (`x-required-scope`, and a line in its
    description), and whether short-lived tokens may call it, from the routes' own settings."""
    for route in app.routes:
        path_item = spec["paths"].get(route.path_format)
        if path_item is None or not route.path_format.startswith("/v1/"):
            continue
        for handler in getattr(route, "route_handlers", ()):
            for method in handler.http_methods:
                operation = path_item.get(method.lower())
                if operation is None:
                    continue
                needed = required_scope(method, handler)
                operation["x-required-scope"] = needed
                operation["x-tokens-allowed"] = not handler.opt.get("keys_only", False)
                note = f"Requires the `{needed}` scope."
                operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
    return spec
