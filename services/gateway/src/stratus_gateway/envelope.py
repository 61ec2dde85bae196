"""The success envelope `{"data", "meta", "error": null}` and its typed variants for OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec
from litestar import Response
from litestar.serialization import encode_json
from litestar.types import Receive, Send
from litestar.types import Scope as ASGIScope

from stratus_contracts.auth import Scope
from stratus_contracts.events import Mode
from stratus_contracts.identity import KeyView, MemberView
from stratus_contracts.projects import Project, ProjectMember
from stratus_telemetry import request_id_var

# Scope key: (name, value) header pairs that the outer middleware adds to the response, whoever
# answers (rate-limit headers, the old-key `Warning`).
RESPONSE_HEADERS = "stratus.response_headers"


class Meta(msgspec.Struct, kw_only=True):
    request_id: str


class ListMeta(msgspec.Struct, kw_only=True):
    request_id: str
    has_more: bool
    next_cursor: str | None


class ProjectEnvelope(msgspec.Struct, kw_only=True):
    data: Project
    meta: Meta
    error: None = None


class ProjectListEnvelope(msgspec.Struct, kw_only=True):
    data: list[Project]
    meta: ListMeta
    error: None = None


class ProjectMemberEnvelope(msgspec.Struct, kw_only=True):
    data: ProjectMember
    meta: Meta
    error: None = None


class ProjectMemberListEnvelope(msgspec.Struct, kw_only=True):
    data: list[ProjectMember]
    meta: ListMeta
    error: None = None


class MeToken(msgspec.Struct, kw_only=True):
    id: str
    subject: str | None
    expires_at: datetime


class Me(msgspec.Struct, kw_only=True):
    """The calling credential: which key (and token), whose account, what it may do, how old."""

    object: Literal["credential"] = "credential"
    key_id: str
    account: str  # the account's id, named as every other object names it (`account`)
    mode: Mode
    name: str
    scopes: tuple[Scope, ...]
    project_ids: tuple[str, ...] | None
    environments: tuple[str, ...] | None
    allowed_ips: tuple[str, ...]
    member_id: str | None
    created: datetime
    age_seconds: int
    expires_at: datetime | None
    token: MeToken | None = None


class MeEnvelope(msgspec.Struct, kw_only=True):
    data: Me
    meta: Meta
    error: None = None


class KeyEnvelope(msgspec.Struct, kw_only=True):
    data: KeyView
    meta: Meta
    error: None = None


class KeyListEnvelope(msgspec.Struct, kw_only=True):
    data: list[KeyView]
    meta: ListMeta
    error: None = None


class KeyWithSecret(KeyView, frozen=True, kw_only=True):
    """A key as created or rotated: the only time its `secret` is ever shown. `null` in a replay
    (`Idempotent-Replayed: true`): secrets are never stored, so only the first answer has it."""

    secret: str | None


class KeyWithSecretEnvelope(msgspec.Struct, kw_only=True):
    data: KeyWithSecret
    meta: Meta
    error: None = None


class MemberEnvelope(msgspec.Struct, kw_only=True):
    data: MemberView
    meta: Meta
    error: None = None


class MemberListEnvelope(msgspec.Struct, kw_only=True):
    data: list[MemberView]
    meta: ListMeta
    error: None = None


class HealthEnvelope(msgspec.Struct, kw_only=True):
    data: dict[str, Any]
    meta: Meta
    error: None = None


def meta() -> Meta:
    return Meta(request_id=request_id_var.get() or "")


_JSON = (b"content-type", b"application/json")


class _Sent:
    """The ASGI callable of an `Enveloped` response: status, headers and body, ready to send."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


class Enveloped(Response[Any]):
    """A success envelope as JSON, encoded once with Litestar's own encoder.

    Litestar's `Response` builds a header mapping, a cookie list and an `ASGIResponse` on every
    request; on a cheap route that is a sizeable share of the gateway's CPU (docs/performance.md).
    This sends the same bytes and headers directly. A route that declares response headers,
    cookies or background tasks gets Litestar's path, so nothing it supports is lost.
    """

    __slots__ = ()

    def __init__(self, content: Any, *, status_code: int = 200, headers: dict[str, str] | None = None):
        # Response.__init__ also normalises cookies, headers and type encoders through typing
        # isinstance checks; an envelope has no cookies and its headers are already a dict.
        self.content = content
        self.status_code = status_code
        self.headers = headers if headers is not None else {}
        self.background = None
        self.cookies = []
        self.encoding = "utf-8"
        self.media_type = "application/json"
        self.response_type_encoders = {}

    def to_asgi_response(  # type: ignore[override]
        self,
        app: Any,
        request: Any,
        *,
        background: Any = None,
        cookies: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        if background or cookies or headers or self.cookies or self.background:
            return super().to_asgi_response(
                app, request, background=background, cookies=cookies, headers=headers, **kwargs
            )
        body = encode_json(self.content)
        raw = [_JSON, (b"content-length", str(len(body)).encode())]
        for name, value in self.headers.items():
            raw.append((name.lower().encode("latin-1"), str(value).encode("latin-1")))
        return _Sent(self.status_code or 200, raw, body)


def ok(envelope: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Enveloped(envelope, status_code=status, headers=headers)
