"""`/docs`: the API reference as a page, rendered by Swagger UI from `/openapi.json`, with no
network: its script and style sheet are files of this package (`docs_ui/`, the npm package
`swagger-ui-dist` as built), served from `/docs/assets/…`, and the page loads nothing else (its
`Content-Security-Policy` says so: `'self'` only; Swagger UI's online validator badge is off).

Litestar's own documentation router is what serves it (`openapi_config.render_plugins`), with
two changes: `/docs/openapi.json` is the same finished document as `/openapi.json`, and an
unknown `/docs/…` path is the usual 404 problem, not Litestar's HTML page.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from litestar import Request, Response, Router, get
from litestar.datastructures import ResponseHeader
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import FromPath

SWAGGER_UI_VERSION = "5.35.0"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
}
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)
_CACHE = {"Cache-Control": "public, max-age=86400"}

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body>
</html>
"""
# Outside the page, so that the policy can forbid inline scripts.
INIT = b"""window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
  tryItOutEnabled: false
});
"""


@functools.cache
def asset(name: str) -> bytes:
    return resources.files("stratus_gateway").joinpath("docs_ui", name).read_bytes()


@get("/assets/{name:str}", include_in_schema=False, security=[{}], sync_to_thread=False)
def docs_asset(name: FromPath[str]) -> Response[bytes]:
    """A file of the vendored Swagger UI (or the page's own start-up script)."""
    if name == "init.js":
        return Response(INIT, media_type=ASSETS["swagger-ui-bundle.js"], headers=_CACHE)
    if name not in ASSETS:
        raise NotFoundException()
    return Response(asset(name), media_type=ASSETS[name], headers=_CACHE)


class SwaggerPage(OpenAPIRenderPlugin):
    """The page at `/docs`."""

    def __init__(self) -> None:
        super().__init__(path="/", favicon="", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return PAGE.format(title=openapi_schema["info"]["title"]).encode()

    def receive_router(self, router: Router) -> None:
        router.register(docs_asset)


class FinishedDocument(OpenAPIRenderPlugin):
    """`/docs/openapi.json`: the document `/openapi.json` serves, not Litestar's unfinished one."""

    def __init__(self) -> None:
        super().__init__(path="/openapi.json", media_type="application/json", favicon="", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        from stratus_gateway.routes.system import served_openapi  # the routes import this module

        return served_openapi(request.app)


class DocsRouter(Router):
    """Litestar's documentation router without its HTML 404 page for unknown `/docs/…` paths."""

    def register(self, value: Any) -> Any:
        if getattr(getattr(value, "fn", None), "__name__", "") == "handle_schema_path_not_found":
            return []
        return super().register(value)


def router() -> Router:
    return DocsRouter(
        "/docs",
        route_handlers=[],
        include_in_schema=False,
        security=[{}],
        response_headers=[ResponseHeader(name="Content-Security-Policy", value=CSP)],
    )
