"""API versions and deprecations: `/v1` is the only version; deprecation is configuration.

* A path under a version prefix this server does not serve (`/v2/…`, `/v0/…`, `/v1beta/…`) is 404
  `unsupported_version`; any other unknown path stays 404 `route_not_found`.
* `STRATUS_DEPRECATIONS` is a JSON list of rules, first match wins:

      [{"path": "/v1/projects/{project_id}/members", "method": "PUT",
        "deprecated": "2026-06-01T00:00:00Z", "sunset": "2026-12-01T00:00:00Z",
        "link": "https://docs.example.com/migrate/team-access"}]

  `path` matches at segment boundaries: `/v1` covers the whole version, `/v1/projects` that path
  and everything below it; a `{name}` segment matches any one segment; `"exact": true` matches
  the path alone. `method` (optional) narrows the rule to one method. `deprecated` (required)
  and `sunset` (optional) are RFC 3339 times (a bare date is midnight UTC), `link` (required) is
  the migration guide.

  A matching request — whatever its status — answers with `Deprecation: @<unix time>` (RFC 9745;
  the older draft's `Deprecation: true` is not sent, so `"deprecated": true` is refused: give the
  date), `Sunset: <HTTP-date>` (RFC 8594) when set, and `Link: <link>; rel="deprecation"` (plus
  `rel="sunset"` when a sunset is set). `/openapi.json` marks the matching operations
  `deprecated: true`. An invalid value stops the gateway at start with a message naming the rule.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import NotFoundException
from litestar.types import BeforeMessageSendHookHandler, Message, Scope

from stratus_gateway.problems import Problem, on_http_exception, problem_response

SUPPORTED_VERSIONS = ("v1",)
ENV = "STRATUS_DEPRECATIONS"
_VERSION_PREFIX = re.compile(r"^/(v\d+[A-Za-z0-9._-]*)(?:/|$)")
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def unsupported_version(path: str) -> str | None:
    """The version prefix of `path` when it names one this server does not serve."""
    match = _VERSION_PREFIX.match(path)
    if match is None or match.group(1) in SUPPORTED_VERSIONS:
        return None
    return match.group(1)


def on_not_found(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[Problem]:
    """404s: an unknown version prefix says so; anything else is the usual problem."""
    if (version := unsupported_version(request.url.path)) is not None:
        served = ", ".join(f"/{v}" for v in SUPPORTED_VERSIONS)
        return problem_response(
            "unsupported_version", f"API version {version!r} is not served here; use {served}."
        )
    return on_http_exception(request, exc)


# --- deprecations -------------------------------------------------------------------------------


class _RuleConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    path: str
    deprecated: str | bool
    link: str
    sunset: str | None = None
    method: str | None = None
    exact: bool = False


class Deprecation:
    """One configured rule, with its response headers built once."""

    def __init__(
        self,
        path: str,
        deprecated: datetime,
        link: str,
        sunset: datetime | None = None,
        method: str | None = None,
        exact: bool = False,
    ) -> None:
        self.path, self.method, self.exact = path, method, exact
        self.deprecated, self.sunset, self.link = deprecated, sunset, link
        parts = [
            "[^/]+" if segment.startswith("{") and segment.endswith("}") else re.escape(segment)
            for segment in path.rstrip("/").split("/")
        ]
        self._pattern = re.compile("^" + "/".join(parts) + ("/?$" if exact else "(?:/|$)"))
        links = [f'<{link}>; rel="deprecation"; type="text/html"']
        headers = [(b"deprecation", f"@{int(deprecated.timestamp())}".encode())]
        if sunset is not None:
            headers.append((b"sunset", format_datetime(sunset.astimezone(UTC), usegmt=True).encode()))
            links.append(f'<{link}>; rel="sunset"; type="text/html"')
        headers.append((b"link", ", ".join(links).encode()))
        self.headers: list[tuple[bytes, bytes]] = headers

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and self._pattern.match(path) is not None


def _instant(value: str, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {value!r} is not an RFC 3339 time") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_deprecations(text: str | None) -> list[Deprecation]:
    """The rules in a `STRATUS_DEPRECATIONS` value; ValueError names the rule that is wrong."""
    if not text or not text.strip():
        return []
    try:
        configs = msgspec.json.decode(text, type=list[_RuleConfig])
    except msgspec.DecodeError as exc:
        raise ValueError(f"{ENV}: {exc}") from exc
    rules = []
    for i, config in enumerate(configs):
        where = f"{ENV}[{i}]"
        if not config.path.startswith("/"):
            raise ValueError(f"{where}.path: {config.path!r} must start with '/'")
        if isinstance(config.deprecated, bool):
            raise ValueError(
                f"{where}.deprecated: give the RFC 3339 time it was deprecated "
                "(the `Deprecation` header is RFC 9745's `@<unix time>`)"
            )
        method = config.method.upper() if config.method else None
        if method is not None and method not in _METHODS:
            raise ValueError(f"{where}.method: {config.method!r} is not an HTTP method")
        if not config.link.startswith(("https://", "http://", "/")):
            raise ValueError(f"{where}.link: {config.link!r} is not an absolute URL or path")
        deprecated = _instant(config.deprecated, f"{where}.deprecated")
        sunset = _instant(config.sunset, f"{where}.sunset") if config.sunset else None
        if sunset is not None and sunset < deprecated:
            raise ValueError(f"{where}.sunset: comes before `deprecated`")
        rules.append(Deprecation(config.path, deprecated, config.link, sunset, method, exact=config.exact))
    return rules


def deprecations_from_env() -> list[Deprecation]:
    return parse_deprecations(os.environ.get(ENV))


def deprecation_headers(rules: list[Deprecation]) -> BeforeMessageSendHookHandler:
    """A `before_send` hook adding the first matching rule's headers to every response it covers
    (errors included: a client learns the route is going away even from a 4xx)."""

    def hook(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        method, path = scope["method"], scope["path"]
        for rule in rules:
            if rule.matches(method, path):
                message["headers"] = [*message.get("headers", ()), *rule.headers]
                return

    return hook


def document(spec: dict[str, Any], rules: list[Deprecation]) -> dict[str, Any]:
    """Mark the operations a rule covers `deprecated` in the OpenAPI document, with a note."""
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            rule = next((r for r in rules if r.matches(method.upper(), path)), None)
            if rule is None:
                continue
            operation["deprecated"] = True
            note = f"Deprecated since {rule.deprecated.isoformat()}"
            if rule.sunset is not None:
                note += f"; removed after {rule.sunset.isoformat()}"
            note += f". See {rule.link}."
            operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
    return spec
