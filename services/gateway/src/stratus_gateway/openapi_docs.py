r"""OpenAPI response declarations: the problems each route can answer with, the response headers
the API's conventions put on them (API.md), and the finishing pass that makes `/openapi.json`
say exactly what the server does (`complete`).

Litestar generates the document from the routes; `complete` then adds what only the gateway
knows: every problem an operation can answer with whatever its handler declares (the edge's
414/431, authentication, availability, body and idempotency problems, 422 for a parameter out of
its bounds), the response headers as shared `components.headers` (each with a schema), request
body examples, `additionalProperties: false` on request bodies (unknown fields are a 422), and
the grammar of `If-Match` / `If-None-Match` / `Idempotency-Key`. `tests/e2e/test_openapi_spec.py`
validates the result with openapi-spec-validator, and `tests/e2e/test_schemathesis.py` holds the
server to it.

Request schemas are msgspec's own (`exact_request_schemas`: the bounds the server decodes with,
items' too), plus the rules the gateway and services check after decoding (`_rules`): `ref` or
`sha`; `vars` or `key`/`value`; one of a delivery, an event or a time range to redeliver; ids by
kind (`prj_` and 26 base32 characters); webhook event types from the catalogue or `*`; webhook
URLs and CIDRs by pattern; metrics `range` (1m–30d), `step` and `group_by`. Response schemas
require every field the server always sends (`require_sent_fields`). Patterns are written so
that Python's `re` and ECMA-262 read them alike (no `\s`: see `schemas.SPACE`).

What the document cannot state, and the server still refuses with a problem:
- state: an `If-Match` naming another version (412), an `Idempotency-Key` used for another
  request (422 `idempotency_key_reused`), a cursor the server did not issue (`invalid_cursor`);
- relations between values: `step` at most `range` and at most so many buckets
  (`metrics_range_invalid`, `metrics_too_many_points`), unique keys in `vars`;
- a webhook host the service will not deliver to (`*.localhost`, cloud metadata names,
  private addresses a name resolves to: `webhook_url_forbidden`);
- the dotenv grammar of `PUT /v1/envs/{id}/dotenv` (a text body);
- a webhook `url` or CIDR the patterns leave out but the server takes (the patterns are the
  common spellings: no IP-literal hosts, no IPv4-mapped IPv6), so the spec is the stricter.
"""

from __future__ import annotations

import typing
from collections import defaultdict
from datetime import datetime
from typing import Any

import msgspec
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec

from stratus_contracts.envs import NAME_PATTERN as ENVIRONMENT_NAME
from stratus_contracts.errors import spec
from stratus_gateway.preconditions import PRECONDITION_CODES
from stratus_gateway.problems import PROBLEM_JSON, Problem
from stratus_gateway.schemas import SPACE

AUTH_CODES = (
    "missing_api_key",
    "malformed_api_key",
    "invalid_api_key",
    "api_key_revoked",
    "key_expired",
    "invalid_token",
    "token_expired",
    "insufficient_scope",
    "ip_not_allowed",
)
COMMON_CODES = ("service_unavailable", "service_timeout", "internal_error")
BODY_CODES = (
    "malformed_json",
    "json_too_deep",
    "unsupported_media_type",
    "payload_too_large",
    "validation_failed",
)
# What the outer layer refuses before any route runs (`limits`), on every path.
EDGE_CODES = ("uri_too_long", "headers_too_large")
IDEMPOTENCY_CODES = ("idempotency_key_invalid", "idempotency_key_reused", "idempotency_key_in_use")
_PREFIX = "Problem details; `code` is one of: "
SSE_DOC = (
    "A stream is `text/event-stream`: one message per item, `id:` its id (send it back as "
    "`Last-Event-ID` to resume), `data:` the item as JSON."
)
# Operations that answer a JSON page or, with `Accept: text/event-stream`, a live SSE stream.
STREAMS = frozenset({"listEvents", "listDeploymentLogs"})
_SSE_MEDIA = {
    "schema": {"type": "string", "description": "Server-sent events (`id:`, `event:`, `data:` lines)."}
}
NOT_MODIFIED = "Not modified: the resource is still at a version `If-None-Match` names (no body)."


def problems(
    *codes: str, auth: bool = True, body: bool = False, common: bool = True
) -> dict[int, ResponseSpec]:
    """ResponseSpecs for the given codes (plus auth/body/availability ones), grouped by status."""
    all_codes = list(codes) + (list(COMMON_CODES) if common else [])
    if auth:
        all_codes += (*AUTH_CODES, "rate_limited")
    if body:
        all_codes += BODY_CODES
    by_status: dict[int, list[str]] = defaultdict(list)
    for code in dict.fromkeys(all_codes):
        by_status[spec(code).status].append(code)
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_JSON,
            description=_PREFIX + ", ".join(f"`{c}`" for c in group),
            generate_examples=False,
        )
        for status, group in sorted(by_status.items())
    }


_REF = "#/components/schemas/"
# An RFC 3339 time as the server parses one (msgspec): `format: date-time` also allows a leap
# second (`:60`) and the year 0000, which it refuses. Also checked on query times (`params`).
DATE_TIME = (
    r"^([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}"
    r"[Tt][0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_INT = {"type": "integer", "minimum": 0}
# Entity tags as RFC 9110 writes them: `*`, or one or more `"…"` / `W/"…"` separated by commas.
# `If-Match` is documented with one tag: a list naming several versions is a 400 (`preconditions`).
ENTITY_TAGS = r'^(\*|(W/)?"[!#-~]*"([ \t]*,[ \t]*(W/)?"[!#-~]*")*)$'
ENTITY_TAG = r'^(\*|(W/)?"[!#-~]*")$'
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-Id": {
        "description": "This request's id (an incoming sane `X-Request-Id` is echoed); quote it when "
        "reporting a problem. Also `meta.request_id` / `request_id` in the body.",
        "schema": {"type": "string"},
    },
    "X-RateLimit-Limit": {
        "description": "The paying bucket's capacity (the API key's plan, or the client address for "
        "requests without a valid key). Absent for keys on a plan without a limit.",
        "schema": _INT,
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the bucket. Absent for keys on a plan without a limit.",
        "schema": _INT,
    },
    "X-RateLimit-Reset": {
        "description": "Seconds until the bucket is full again (not an epoch). Absent for keys on a "
        "plan without a limit.",
        "schema": _INT,
    },
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": _INT},
    "Warning": {
        "description": '`299 stratus "…"` when the API key is older than the age warning (90 days '
        "by default): rotate it.",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored first answer to an earlier request with the "
        "same `Idempotency-Key`.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "ETag": {
        "description": 'The resource\'s version as a strong entity tag (`"3"`); send it back in '
        "`If-Match` (a write only at that version) or `If-None-Match` (304 while unchanged).",
        "schema": {"type": "string", "pattern": r'^"\d+"$'},
    },
    "Location": {
        "description": "The path of what this request created.",
        "schema": {"type": "string", "format": "uri-reference"},
    },
}
LOCATION_HEADER = ResponseHeader(
    name="Location", description=HEADERS["Location"]["description"], documentation_only=True
)
_WRITES = frozenset({"post", "put", "patch", "delete"})
_BODY_METHODS = frozenset({"post", "put", "patch"})
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
# Answered without a rate limit (`ratelimit.EXEMPT_PATHS`).
_UNLIMITED = frozenset({"/healthz", "/readyz"})
_HEADER_SCHEMAS = {
    "if-match": {"type": "string", "pattern": ENTITY_TAG, "examples": ['"3"', "*"]},
    "if-none-match": {"type": "string", "pattern": ENTITY_TAGS, "examples": ['"3"', "*"]},
    # 1–255 printable ASCII characters; HTTP drops spaces around a header value, so a key
    # neither starts nor ends with one.
    "idempotency-key": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": r"^[!-~]([ -~]{0,253}[!-~])?$",
    },
}

# A request body example per operation: what a client would send first (each is accepted as it
# is by a fresh account, so the schemathesis examples phase sends them too).
EXAMPLES: dict[str, Any] = {
    "createProject": {"name": "web", "description": "The marketing site"},
    "updateProject": {
        "description": "The marketing site",
        "build": {
            "repo_url": "https://github.com/acme/web.git",
            "build_command": "npm ci && npm run build",
            "start_command": "npm start",
            "health_check_path": "/healthz",
        },
    },
    "putProjectMember": {"role": "developer"},
    "createEnvironment": {"name": "preview-42", "branch": "preview/42", "auto_deploy": False},
    "replaceEnvironment": {"name": "staging", "description": "", "branch": "main", "auto_deploy": True},
    "updateEnvironment": {"description": "Deploys every push to main", "auto_deploy": True},
    "importDotenv": "# stratus:secret\nDATABASE_URL=postgres://db/app\nLOG_LEVEL=info\n",
    "setEnvVars": {"key": "DATABASE_URL", "value": "postgres://db/app", "secret": True},
    "patchEnvVars": {"LOG_LEVEL": "debug", "API_TOKEN": {"value": "t0k3n", "secret": True}, "OLD_FLAG": None},
    "createDeployment": {"project": "prj_2kq5mxvz3rb4lq7nbwnq5cj3xu", "env": "production", "ref": "main"},
    "createWebhook": {
        "url": "https://hooks.example.com/stratus",
        "events": ["deployment.succeeded", "deployment.failed"],
        "description": "Deploy notifications",
    },
    "updateWebhook": {"events": ["*"], "status": "enabled"},
    "rotateWebhookSecret": {"grace_seconds": 3600},
    "redeliverWebhook": {"since": "2026-04-28T00:00:00Z", "until": "2026-04-28T12:00:00Z"},
    "queryMetrics": {
        "metric": "build_duration",
        "aggregation": "p95",
        "group_by": ["project"],
        "range": "7d",
        "step": "7d",
    },
    "recordMetricEvents": {
        "events": [{"name": "signup.completed", "value": 1, "labels": {"plan": "pro"}}],
    },
    "createKey": {"name": "ci", "scopes": ["read", "write"], "environments": ["staging"]},
    "updateKey": {"name": "ci (staging only)", "scopes": ["read"]},
    "rotateKey": {"overlap_seconds": 3600},
    "createMember": {"email": "ada@example.com", "name": "Ada Lovelace"},
    "createToken": {"scopes": ["read"], "ttl_seconds": 900, "subject": "dashboard"},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def document_headers(document: dict[str, Any]) -> dict[str, Any]:
    """Declare the response headers every operation's responses carry: `X-Request-Id` on all;
    on `/v1` also the `X-RateLimit-*` headers and `Warning`; `Idempotent-Replayed` on `/v1`
    writes; `Retry-After` on 429 and 503. A header a route declares itself (`ETag`,
    `Location`) becomes a reference to its shared declaration."""
    document.setdefault("components", {}).setdefault("headers", {}).update(HEADERS)
    for path, method, operation in _operations(document):
        v1 = path.startswith("/v1/")
        for status, response in operation["responses"].items():
            if "$ref" in response:
                continue
            names = ["X-Request-Id"]
            if v1:
                names += ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Warning"]
                if method in _WRITES and str(status).startswith("2"):
                    names.append("Idempotent-Replayed")
            if str(status) in ("429", "503"):
                names.append("Retry-After")
            if str(status) == "304":
                names.append("ETag")
            headers = response.setdefault("headers", {})
            for name in list(headers):
                if name in HEADERS and "$ref" not in headers[name]:
                    headers[name] = _ref(name)
            for name in names:
                headers.setdefault(name, _ref(name))
            # The route's own headers arrive in no fixed order (ETag, Location): sort them, so
            # the document is the same from one process to the next (generated clients diff it).
            own = sorted((n for n in headers if n not in names), key=str.lower)
            response["headers"] = {n: headers[n] for n in [*own, *names]}
    return document


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document.get("paths", {}).items()
        for method, operation in item.items()
        if method in _HTTP_METHODS and isinstance(operation, dict) and "responses" in operation
    ]


def _problem_response(code: str) -> dict[str, Any]:
    return {
        "description": f"{_PREFIX}`{code}`",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def add_problem(operation: dict[str, Any], code: str) -> None:
    """Declare that `operation` can answer with the problem `code` (under its status)."""
    responses = operation["responses"]
    status = str(spec(code).status)
    response = responses.get(status)
    if response is None or PROBLEM_JSON not in response.get("content", {}):
        responses[status] = _problem_response(code)
        return
    description = response.get("description", "")
    if f"`{code}`" in description:
        return
    if description.startswith(_PREFIX):
        response["description"] = f"{description}, `{code}`"
    else:
        response["description"] = f"{description} `code` may also be `{code}`.".strip()


def _parameters(operation: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in operation.get("parameters", ()) if isinstance(p, dict)]


def _checked(parameter: dict[str, Any]) -> bool:
    """Whether Litestar can refuse a value of this path or query parameter (a 422): any type or
    bound beyond a plain string. Header parameters are parsed by the gateway (`preconditions`)."""
    schema = parameter.get("schema", {})
    bounds = set(schema) - {"description", "examples", "example", "title", "default"}
    return parameter.get("in") in ("path", "query") and (bounds != {"type"} or schema["type"] != "string")


def _codes_for(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    """Every problem the gateway can answer this operation with, whatever its route declared."""
    codes = [*EDGE_CODES]
    headers = {p["name"].lower() for p in _parameters(operation) if p.get("in") == "header"}
    if path.startswith("/v1/"):
        codes += [*AUTH_CODES, "rate_limited", *COMMON_CODES]
        if operation.get("x-tokens-allowed") is False:
            codes.append("token_not_allowed")
        if method in _BODY_METHODS:
            codes += ["unsupported_media_type", "payload_too_large", "json_too_deep"]
            if "requestBody" in operation:
                codes += ["malformed_json", "validation_failed"]
        if method in _WRITES:
            codes += IDEMPOTENCY_CODES
    elif path not in _UNLIMITED:
        codes.append("rate_limited")  # without credentials, per client address
    if "requestBody" in operation or any(_checked(p) for p in _parameters(operation)):
        codes.append("validation_failed")  # a parameter outside its bounds
    if "if-match" in headers:
        codes += PRECONDITION_CODES
    if "if-none-match" in headers:
        codes.append("invalid_precondition")
    return codes


def _is_problem_response(response: dict[str, Any]) -> bool:
    return PROBLEM_JSON in response.get("content", {})


def _schemas_reached(document: dict[str, Any], schema: Any, seen: set[str]) -> None:
    """The names of the component schemas `schema` refers to, transitively."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                _schemas_reached(document, document["components"]["schemas"].get(name), seen)
        for value in schema.values():
            _schemas_reached(document, value, seen)
    elif isinstance(schema, list):
        for value in schema:
            _schemas_reached(document, value, seen)


def _close(schema: Any) -> None:
    """`additionalProperties: false` on every object with declared properties in `schema` (not
    through references: the referenced schemas are closed by name)."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" and "properties" in schema:
            schema.setdefault("additionalProperties", False)
        for key, value in schema.items():
            if key != "$ref":
                _close(value)
    elif isinstance(schema, list):
        for value in schema:
            _close(value)


def _structs() -> dict[str, list[type[msgspec.Struct]]]:
    """Every msgspec Struct class loaded, by class name."""
    found: dict[str, list[type[msgspec.Struct]]] = defaultdict(list)
    todo: list[type[msgspec.Struct]] = [msgspec.Struct]
    while todo:
        for sub in todo.pop().__subclasses__():
            found[sub.__name__].append(sub)
            todo.append(sub)
    return found


def _may_be_unset(annotation: Any) -> bool:
    return annotation is msgspec.UnsetType or any(_may_be_unset(a) for a in typing.get_args(annotation))


def _always_sent(cls: type[msgspec.Struct]) -> tuple[set[str], list[str]]:
    """The encoded names of `cls`'s fields, and those msgspec always encodes: all but an
    UNSET-able field, and, with `omit_defaults`, a field with a default."""
    omit_defaults = cls.__struct_config__.omit_defaults
    names: set[str] = set()
    sent: list[str] = []
    for field in msgspec.structs.fields(cls):
        names.add(field.encode_name)
        defaulted = field.default is not msgspec.NODEFAULT or field.default_factory is not msgspec.NODEFAULT
        if not _may_be_unset(field.type) and not (omit_defaults and defaulted):
            sent.append(field.encode_name)
    return names, sent


def _struct_for(structs: dict[str, list[type[msgspec.Struct]]], name: str, schema: dict[str, Any]) -> Any:
    """The Struct the component schema `name` was generated from (by name and properties)."""
    for cls in structs.get(name, []) + structs.get(name.split("_", 1)[0], []):
        if _always_sent(cls)[0] == set(schema.get("properties", ())):
            return cls
    return None


def exact_request_schemas(document: dict[str, Any], requested: set[str]) -> None:
    """Replace each request body's component schema by msgspec's own schema of its Struct: the
    rules the server decodes with. Litestar's drops the bounds of a list's items and of a
    nullable field's type (`environments: ["", …]` looked valid and was a 422); msgspec's keeps
    them. Components it refers to are added (or replaced) the same way."""
    schemas = document.get("components", {}).get("schemas", {})
    structs = _structs()
    classes = {name: cls for name in requested if (cls := _struct_for(structs, name, schemas.get(name, {})))}
    if not classes:
        return
    _, generated = msgspec.json.schema_components(list(classes.values()), ref_template=_REF + "{name}")
    renamed = {cls.__name__: name for name, cls in classes.items()}
    for generated_name, schema in generated.items():
        schema.pop("title", None)
        if schema.get("required") == []:
            del schema["required"]
        name = renamed.get(generated_name, generated_name)
        schemas[name] = schema
        requested.add(name)
        if (cls := _struct_for(structs, generated_name, schema)) is not None:
            _times_have_offsets(cls, schema)


def _mentions(annotation: Any, kind: type) -> bool:
    return annotation is kind or any(_mentions(a, kind) for a in typing.get_args(annotation))


def _times_have_offsets(cls: type[msgspec.Struct], schema: dict[str, Any]) -> None:
    """A `datetime` field without `tz=True` is a plain string to msgspec's schema (it decodes a
    time without an offset too); the gateway refuses one (`params.aware`): `format: date-time`."""
    for field in msgspec.structs.fields(cls):
        prop = schema["properties"].get(field.encode_name, {})
        if _mentions(field.type, datetime) and (target := _typed(prop, "string")) is not None:
            target.setdefault("format", "date-time")


def _id(prefix: str) -> dict[str, str]:
    """A public id of one kind (`stratus_contracts.ids`: the prefix, `_`, 26 base32 characters)."""
    return {"pattern": f"^{prefix}_[a-z2-7]{{26}}$"}


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_H = "[0-9a-fA-F]{1,4}"
_IPV6 = (
    f"(({_H}:){{7}}{_H}|({_H}:){{1,7}}:|({_H}:){{1,6}}:{_H}|({_H}:){{1,5}}(:{_H}){{1,2}}"
    f"|({_H}:){{1,4}}(:{_H}){{1,3}}|({_H}:){{1,3}}(:{_H}){{1,4}}|({_H}:){{1,2}}(:{_H}){{1,5}}"
    f"|{_H}:(:{_H}){{1,6}}|:((:{_H}){{1,7}}|:))"
)
_IPV4_CIDR = rf"{_OCTET}(\.{_OCTET}){{3}}(/(3[0-2]|[12]?[0-9]))?"
_IPV6_CIDR = rf"{_IPV6}(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?"
CIDR = {"pattern": f"^({_IPV4_CIDR}|{_IPV6_CIDR})$"}
_LABEL = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
# An http(s) URL with a DNS name (its last label letters: not an IP literal), an optional port and
# no credentials, space, quote or backslash. The webhooks service also refuses names and
# addresses it will not connect to (loopback, private, metadata: `webhook_url_forbidden`).
WEBHOOK_URL = {
    "pattern": rf"^https?://{_LABEL}(\.{_LABEL})*\.[a-z]{{2,63}}(:[1-9][0-9]{{0,3}})?([/?#][!#-\[\]-~]*)?$"
}
DURATION = r"[1-9][0-9]{0,6}[smhd]"
# `range`: a duration from 1m to 30d, spelled in its own unit (60–2592000 s, 1–43200 m, 1–720 h,
# 1–30 d) within the 16 characters allowed.
RANGE = (
    r"^(([6-9][0-9]|[1-9][0-9]{2,5}|1[0-9]{6}|2[0-4][0-9]{5}|25[0-8][0-9]{4}|259[01][0-9]{3}|2592000)s"
    r"|([1-9][0-9]{0,3}|[1-3][0-9]{4}|4[0-2][0-9]{3}|43200)m|([1-9][0-9]?|[1-6][0-9]{2}|7[01][0-9]|720)h"
    r"|([1-9]|[12][0-9]|30)d)$"
)
GROUP_BY = r"^ *((env|route|status|method) *)?(, *((env|route|status|method) *)?)*$"


# `stratus_contracts.projects.build_setting_problem`, as patterns: a repository as an https URL
# with a path or an absolute local path (ssh, scp-like and file URLs are taken too, but not
# stated), a health check path from `/`, commands without NUL (a start command not blank).
_NO_CONTROL = r"[^\x00-\x1f\x7f" + SPACE + "]"
BUILD = {
    "repo_url": {"pattern": rf"^(https://{_LABEL}(\.{_LABEL})*(/[A-Za-z0-9._~-]+)+|/{_NO_CONTROL}*)$"},
    "health_check_path": {"pattern": f"^/{_NO_CONTROL}*$"},
    "build_command": {"pattern": r"^[^\x00]*$"},
    "start_command": {"pattern": rf"^[^\x00]*[^\x00{SPACE}][^\x00]*$"},
}


def _event_types() -> list[str]:
    from stratus_contracts.events import catalogue

    return [*catalogue(), "*"]


def _rules() -> dict[str, tuple[dict[str, dict[str, Any]], dict[str, Any]]]:
    """Per request schema: keywords for its properties (`name[]`: a list's items) and for the
    schema itself, stating what the server checks beyond msgspec's types."""
    events = {"enum": _event_types()}
    environment = {"pattern": ENVIRONMENT_NAME}
    keys = {
        "project_ids[]": _id("prj"),
        "environments[]": environment,
        "allowed_ips[]": CIDR,
        "member_id": _id("mem"),
    }
    # "Present and not null" (its type is the property's own schema's business).
    string = {"not": {"type": "null"}}
    nothing = {"type": "null"}
    return {
        "DeploymentCreate": (
            {"project": _id("prj")},
            # `ref` or `sha`, not both (a 422 from the gateway).
            {"not": {"required": ["ref", "sha"], "properties": {"ref": string, "sha": string}}},
        ),
        "VarsPost": (
            {},
            # One variable (`key` and `value`, maybe `secret`) or a list of them (`vars`).
            {
                "oneOf": [
                    {
                        "required": ["key", "value"],
                        "properties": {"key": string, "value": string, "vars": nothing},
                    },
                    {
                        "required": ["vars"],
                        "properties": {
                            "vars": {"type": "array"},
                            "key": nothing,
                            "value": nothing,
                            "secret": nothing,
                        },
                    },
                ]
            },
        ),
        "RedeliverBody": (
            {"delivery_id": _id("dlv"), "event_id": _id("evt")},
            # One delivery, one event's deliveries, or the failed ones of a time range.
            {
                "oneOf": [
                    {
                        "required": ["delivery_id"],
                        "properties": {
                            "delivery_id": string,
                            "event_id": nothing,
                            "since": nothing,
                            "until": nothing,
                        },
                    },
                    {
                        "required": ["event_id"],
                        "properties": {
                            "event_id": string,
                            "delivery_id": nothing,
                            "since": nothing,
                            "until": nothing,
                        },
                    },
                    {
                        "anyOf": [
                            {"required": ["since"], "properties": {"since": string}},
                            {"required": ["until"], "properties": {"until": string}},
                        ],
                        "properties": {"delivery_id": nothing, "event_id": nothing},
                    },
                ]
            },
        ),
        "WebhookCreate": ({"url": WEBHOOK_URL, "events[]": events, "project": _id("prj")}, {}),
        "WebhookUpdate": ({"url": WEBHOOK_URL, "events[]": events, "project": _id("prj")}, {}),
        "KeyCreate": (keys, {}),
        "KeyUpdate": (keys, {}),
        "TokenCreate": ({"project_ids[]": _id("prj"), "environments[]": environment}, {}),
        "BuildSettingsInput": (BUILD, {}),
        "BuildSettingsPatch": (BUILD, {}),
        "MetricsQueryBody": ({"range": {"pattern": RANGE}, "step": {"pattern": f"^{DURATION}$"}}, {}),
    }


def _typed(schema: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The part of a property's schema that holds a value of JSON type `kind` (through anyOf)."""
    if schema.get("type") == kind:
        return schema
    for branch in schema.get("anyOf", schema.get("oneOf", ())):
        if branch.get("type") == kind:
            return branch
    return None


def _pin_times(schema: Any) -> None:
    """Add `DATE_TIME` to every `format: date-time` string in `schema` (not through references)."""
    if isinstance(schema, dict):
        if schema.get("format") == "date-time":
            schema.setdefault("pattern", DATE_TIME)
        for key, value in schema.items():
            if key != "$ref":
                _pin_times(value)
    elif isinstance(schema, list):
        for value in schema:
            _pin_times(value)


def apply_rules(document: dict[str, Any], requested: set[str]) -> None:
    """Add `_rules()` to the request schemas, the server's time grammar to their times and the
    query's, and the metrics parameters' grammar."""
    schemas = document.get("components", {}).get("schemas", {})
    for name in requested:
        _pin_times(schemas.get(name))
    for _path, _method, operation in _operations(document):
        for parameter in _parameters(operation):
            if parameter.get("in") == "query":
                _pin_times(parameter.get("schema"))
    for name, (properties, whole) in _rules().items():
        schema = schemas.get(name)
        if schema is None:
            continue
        for field, keywords in properties.items():
            prop = schema["properties"].get(field.removesuffix("[]"), {})
            target = _typed(prop, "array") if field.endswith("[]") else _typed(prop, "string")
            if target is not None and field.endswith("[]"):
                target = target["items"]
            if target is not None:
                target.update(keywords)
        schema.update(whole)
    for path, _method, operation in _operations(document):
        if not path.startswith("/v1/metrics/"):
            continue
        for parameter in _parameters(operation):
            pattern = {"range": RANGE, "step": f"^{DURATION}$", "group_by": GROUP_BY}.get(parameter["name"])
            if (
                parameter.get("in") == "query"
                and pattern
                and (target := _typed(parameter["schema"], "string"))
            ):
                target["pattern"] = pattern


def require_sent_fields(document: dict[str, Any], requested: set[str]) -> None:
    """Mark as `required` every field the server always sends, in the component schemas only
    responses use (`requested`: those a request body reaches keep their defaults optional).

    A schema is matched to the Struct it was generated from by name (a generic one, such as
    `Event_dict_str_typing.Any_`, by the name before its parameters) and by its properties;
    one no Struct matches is left as Litestar made it."""
    structs = _structs()
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        properties = schema.get("properties")
        if name in requested or not properties or (cls := _struct_for(structs, name, schema)) is None:
            continue
        sent = _always_sent(cls)[1]
        schema["required"] = [p for p in properties if p in sent or p in schema.get("required", ())]


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """The finishing pass over the generated document (see the module's docstring)."""
    closed: set[str] = set()
    for path, method, operation in _operations(document):
        if operation.get("operationId") in STREAMS:
            operation["responses"]["200"].setdefault("content", {})["text/event-stream"] = dict(_SSE_MEDIA)
        responses = operation["responses"]
        for status in list(responses):
            response = responses.pop(status)
            # Litestar's own 400 body ({status_code, detail, extra}) is never sent: its
            # validation errors are our 422 `validation_failed`.
            if str(status) == "400" and not _is_problem_response(response):
                continue
            responses[str(status)] = response
        for parameter in _parameters(operation):
            if parameter.get("in") == "header" and (schema := _HEADER_SCHEMAS.get(parameter["name"].lower())):
                parameter["schema"] = dict(schema)
        for code in _codes_for(path, method, operation):
            add_problem(operation, code)
        if any(p["name"].lower() == "if-none-match" for p in _parameters(operation)):
            responses.setdefault("304", {"description": NOT_MODIFIED})
        operation["responses"] = dict(sorted(responses.items()))
        body = operation.get("requestBody")
        if body is not None:
            for media in body.get("content", {}).values():
                example = EXAMPLES.get(operation.get("operationId", ""))
                if example is not None:
                    media.setdefault("example", example)
                _close(media.get("schema"))
                _schemas_reached(document, media.get("schema"), closed)
    exact_request_schemas(document, closed)
    apply_rules(document, closed)
    for name in closed:
        _close(document["components"]["schemas"][name])
    require_sent_fields(document, closed)
    return document
