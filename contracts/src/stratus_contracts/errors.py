"""The catalogue of stable error codes: the one place a `code` gets its HTTP status and title."""

from __future__ import annotations

from typing import NamedTuple

import msgspec


class ErrorSpec(NamedTuple):
    status: int
    title: str
    explanation: str


CATALOGUE: dict[str, ErrorSpec] = {
    # authentication
    "missing_api_key": ErrorSpec(
        401, "API key missing", "Send `Authorization: Bearer sk_live_…` or `sk_test_…`."
    ),
    "malformed_api_key": ErrorSpec(
        401,
        "API key malformed",
        "The bearer value is not a Stratus API key: keys look like `sk_live_` or `sk_test_` followed by at least 24 URL-safe characters.",
    ),
    "invalid_api_key": ErrorSpec(
        401,
        "API key not recognised",
        "No active key matches this value. Check that you copied the whole key.",
    ),
    "api_key_revoked": ErrorSpec(
        401, "API key revoked", "This key was revoked and can no longer be used. Create a new key."
    ),
    "key_expired": ErrorSpec(
        401,
        "API key expired",
        "This key (or this secret of a rotated key) has expired. Use the current secret or create a new key.",
    ),
    "invalid_token": ErrorSpec(
        401, "Token not valid", "The short-lived token is malformed or its signature does not verify."
    ),
    "token_expired": ErrorSpec(401, "Token expired", "The short-lived token has expired. Ask for a new one."),
    # authorization
    "insufficient_scope": ErrorSpec(
        403, "Insufficient scope", "The key lacks the scope this route needs; `detail` names it."
    ),
    "ip_not_allowed": ErrorSpec(
        403,
        "IP address not allowed",
        "The key has an IP allowlist that does not include the caller's address; `detail` names the address.",
    ),
    "key_restricted": ErrorSpec(
        403, "Key restricted", "The key is restricted to some projects or environments and cannot do this."
    ),
    "token_widening": ErrorSpec(
        403, "Token cannot widen rights", "A token can carry only rights its parent key has."
    ),
    "token_not_allowed": ErrorSpec(
        403, "Not allowed with a token", "This route needs an API key; short-lived tokens cannot use it."
    ),
    # rate limits
    "rate_limited": ErrorSpec(
        429,
        "Rate limited",
        "Too many requests: for this API key's plan, or, without a valid key, from this address. Wait the `Retry-After` seconds; the `X-RateLimit-*` headers show the budget.",
    ),
    # request shape
    "route_not_found": ErrorSpec(
        404, "Route not found", "No route matches this path. Every API route lives under `/v1`."
    ),
    "method_not_allowed": ErrorSpec(
        405,
        "Method not allowed",
        "The route exists but does not accept this HTTP method; see the `Allow` header.",
    ),
    "unsupported_media_type": ErrorSpec(
        415, "Unsupported media type", "Send request bodies as `Content-Type: application/json`."
    ),
    "malformed_json": ErrorSpec(400, "Malformed JSON", "The request body is not valid JSON."),
    "bad_request": ErrorSpec(400, "Bad request", "The request could not be understood."),
    "invalid_cursor": ErrorSpec(
        400,
        "Invalid cursor",
        "The `cursor` parameter is not one this API returned. Start again without it.",
    ),
    "payload_too_large": ErrorSpec(413, "Payload too large", "Request bodies are limited to 1 MiB."),
    "validation_failed": ErrorSpec(
        422,
        "Validation failed",
        "One or more fields are invalid; `errors` lists each field and what is wrong.",
    ),
    "unsupported_version": ErrorSpec(
        404,
        "API version not supported",
        "The path starts with an API version this server does not serve. The only version is `/v1`.",
    ),
    "json_too_deep": ErrorSpec(
        400,
        "JSON nested too deeply",
        "The request body nests arrays and objects more than 32 levels deep.",
    ),
    "uri_too_long": ErrorSpec(
        414, "URI too long", "The request's path and query string together are limited to 8 KiB."
    ),
    "headers_too_large": ErrorSpec(
        431,
        "Request headers too large",
        "The request's header fields are limited to 32 KiB in total and 16 KiB each.",
    ),
    # optimistic concurrency
    "precondition_failed": ErrorSpec(
        412,
        "Precondition failed",
        "The resource changed since you read it: its version (`ETag`) no longer matches `If-Match`. GET it again, re-apply your change and retry with the new `ETag`.",
    ),
    "invalid_precondition": ErrorSpec(
        400,
        "Invalid If-Match",
        'Send `If-Match` as one strong entity tag exactly as the `ETag` header gave it (`"3"`), or `*`.',
    ),
    # idempotency
    "idempotency_key_invalid": ErrorSpec(
        400,
        "Invalid Idempotency-Key",
        "Send one `Idempotency-Key` header of 1–255 printable ASCII characters, such as a UUID.",
    ),
    "idempotency_key_reused": ErrorSpec(
        422,
        "Idempotency-Key reused",
        "This key was used in the last 24 hours for a different request (method, path, query, body, `If-Match` or API key). Use a new key for a new request.",
    ),
    "idempotency_key_in_use": ErrorSpec(
        409,
        "Idempotency-Key in use",
        "A request with this key is still being processed. Retry after the `Retry-After` delay to get its answer.",
    ),
    # availability
    "service_unavailable": ErrorSpec(
        503,
        "Service unavailable",
        "A backing service is not reachable right now. Retry after the `Retry-After` delay.",
    ),
    "service_timeout": ErrorSpec(
        504,
        "Service timeout",
        "A backing service did not answer in time. The request may or may not have been applied; retry with the same `Idempotency-Key`.",
    ),
    "internal_error": ErrorSpec(
        500,
        "Internal error",
        "Something went wrong on our side. Quote the `request_id` when you report it.",
    ),
    # projects
    "project_not_found": ErrorSpec(
        404, "Project not found", "No project with this id exists in this account and mode."
    ),
    "project_name_taken": ErrorSpec(
        409, "Project name already taken", "Project names are unique within an account and mode."
    ),
    "insufficient_role": ErrorSpec(
        403,
        "Insufficient project role",
        "The key belongs to a member whose role on this project is too weak for this action; `detail` names the role needed.",
    ),
    "project_member_not_found": ErrorSpec(
        404, "Project member not found", "The member has no role on this project."
    ),
    "last_owner": ErrorSpec(
        409,
        "Last owner",
        "A project that has an owner keeps at least one: make another member owner before removing or demoting this one.",
    ),
    # environments and secrets
    "environment_not_found": ErrorSpec(
        404, "Environment not found", "No environment with this id exists in this account and mode."
    ),
    "environment_name_taken": ErrorSpec(
        409, "Environment name already taken", "Environment names are unique within a project."
    ),
    "env_var_not_found": ErrorSpec(
        404, "Variable not found", "The environment has no variable with this key."
    ),
    "config_version_not_found": ErrorSpec(
        404,
        "Config version not found",
        "The environment has no config version with this number; `GET /v1/envs/{id}/versions` lists them.",
    ),
    "encryption_unavailable": ErrorSpec(
        503,
        "Encryption unavailable",
        "Variables cannot be encrypted or decrypted right now: the service lacks the master key that protects them. An operator must set `STRATUS_MASTER_KEY` (see the README).",
    ),
    "master_key_mismatch": ErrorSpec(
        409,
        "Master key mismatch",
        "The replica that answered holds another master key than the one the rotation expects: restart every replica with the new key first, then rotate again.",
    ),
    # events
    "event_not_found": ErrorSpec(
        404,
        "Event not found",
        "No event with this id exists in this account and mode (or it is older than the stream keeps).",
    ),
    "event_type_not_found": ErrorSpec(
        404,
        "Event type not found",
        "No event type has this name. `GET /v1/event-types` lists them (names such as `deployment.succeeded`).",
    ),
    # webhooks
    "webhook_not_found": ErrorSpec(
        404, "Webhook endpoint not found", "No webhook endpoint with this id exists in this account and mode."
    ),
    "delivery_not_found": ErrorSpec(
        404, "Delivery not found", "No delivery with this id belongs to this webhook endpoint."
    ),
    "webhook_url_forbidden": ErrorSpec(
        422,
        "Webhook URL forbidden",
        "Webhook URLs must reach a public address: loopback, private, link-local, multicast and cloud metadata addresses are refused (after DNS resolution, at every delivery too), as are credentials in the URL. `detail` says which rule.",
    ),
    # deployments
    "deployment_not_found": ErrorSpec(
        404, "Deployment not found", "No deployment with this id exists in this account and mode."
    ),
    "deploy_settings_missing": ErrorSpec(
        422,
        "Build settings missing",
        "The project has no `repo_url` or `start_command` (nor does the environment override them): set them with `PATCH /v1/projects/{id}` first.",
    ),
    "deployment_not_ready": ErrorSpec(
        409,
        "Deployment never became ready",
        "Only a deployment that reached `ready` (its artifact was built and served) can be rolled back to.",
    ),
    "deployment_not_cancelable": ErrorSpec(
        409,
        "Deployment cannot be canceled",
        "Only a `queued`, `building` or `deploying` deployment can be canceled; this one has finished.",
    ),
    # metrics
    "metrics_range_invalid": ErrorSpec(
        422,
        "Metrics range or step invalid",
        "`range` is a duration such as `15m`, `24h` or `7d` between 1 minute and 30 days; `step`, when given, a duration of at least `1s` and at most the range.",
    ),
    "metrics_too_many_points": ErrorSpec(
        422,
        "Too many points",
        "A metrics answer holds at most 10,000 points (series × buckets). Narrow the query: a bigger `step`, a shorter `range`, fewer `group_by` labels or more filters; `detail` says how many it would have been.",
    ),
    # identity
    "account_not_found": ErrorSpec(404, "Account not found", "No such account."),
    "key_not_found": ErrorSpec(404, "API key not found", "No API key with this id exists in this account."),
    "key_revoked": ErrorSpec(
        409, "API key revoked", "A revoked key cannot be changed or rotated. Create a new key instead."
    ),
    "scope_not_held": ErrorSpec(
        403,
        "Rights not held",
        "A key can only create or manage keys within its own rights: its scopes, projects, environments and member. `detail` names what the calling key lacks.",
    ),
    "member_not_found": ErrorSpec(
        404, "Member not found", "No member with this id exists in this account and mode."
    ),
    "member_email_taken": ErrorSpec(
        409, "Member email already taken", "Member emails are unique within an account and mode."
    ),
}


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    field: str
    message: str


class ErrorReply(msgspec.Struct, frozen=True, kw_only=True):
    """A typed error a service returns instead of a result; `code` is from CATALOGUE."""

    code: str
    message: str
    errors: list[FieldError] = []


class DomainError(Exception):
    """Raised by domain or handler code to answer with a typed error instead of a result."""

    def __init__(self, code: str, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.reply = ErrorReply(code=code, message=message, errors=errors or [])


def spec(code: str) -> ErrorSpec:
    return CATALOGUE.get(code, CATALOGUE["internal_error"])


def markdown() -> str:
    """docs/errors.md, generated: `uv run python -m stratus_contracts.errors > docs/errors.md`."""
    lines = [
        "# Error codes",
        "",
        "Every error is an RFC 9457 problem (`application/problem+json`) with a stable `code`.",
        "`type` is `/errors/<code>`, and the gateway serves a short explanation at that path.",
        "Generated from `contracts/src/stratus_contracts/errors.py` by",
        "`uv run python -m stratus_contracts.errors > docs/errors.md` (a test keeps them in step).",
        "",
        "| code | status | title | meaning |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{code}` | {s.status} | {s.title} | {s.explanation} |" for code, s in CATALOGUE.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")  # noqa: T201
