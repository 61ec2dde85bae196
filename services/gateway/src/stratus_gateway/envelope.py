"""The success envelope `{"data", "meta", "error": null}` and its typed variants for OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec
from litestar import Response

from stratus_contracts.auth import Scope
from stratus_contracts.events import Mode
from stratus_contracts.identity import KeyView, MemberView
from stratus_contracts.projects import Project, ProjectMember
from stratus_telemetry import request_id_var


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
    account_id: str
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


def ok(envelope: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(envelope, status_code=status, headers=headers)
