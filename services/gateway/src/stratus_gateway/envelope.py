"""The success envelope `{"data", "meta", "error": null}` and its typed variants for OpenAPI."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Response

from stratus_contracts.identity import Principal
from stratus_contracts.projects import Project
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


class MeEnvelope(msgspec.Struct, kw_only=True):
    data: Principal
    meta: Meta
    error: None = None


class HealthEnvelope(msgspec.Struct, kw_only=True):
    data: dict[str, Any]
    meta: Meta
    error: None = None


def meta() -> Meta:
    return Meta(request_id=request_id_var.get() or "")


def ok(envelope: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(envelope, status_code=status, headers=headers)
