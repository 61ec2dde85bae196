"""Names for the values the API's parameters accept: scopes, roles, statuses, the input objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

from stratus.models import BuildSettingsInput, BuildSettingsPatch, MetricEventInput, VarInput

Scope: TypeAlias = Literal["read", "write", "admin"]
Role: TypeAlias = Literal["viewer", "developer", "admin", "owner"]
DeploymentStatus: TypeAlias = Literal[
    "queued", "building", "deploying", "ready", "failed", "canceled", "superseded"
]
DeliveryStatus: TypeAlias = Literal["pending", "succeeded", "failed", "simulated"]
WebhookStatus: TypeAlias = Literal["enabled", "disabled"]
Aggregation: TypeAlias = Literal["count", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99"]
ProjectSort: TypeAlias = Literal["created", "-created", "name"]

# Input objects: the model, or a plain mapping with the same fields.
BuildInput: TypeAlias = BuildSettingsInput | Mapping[str, str | None]
BuildPatch: TypeAlias = BuildSettingsPatch | Mapping[str, str | None]
VarItem: TypeAlias = VarInput | Mapping[str, Any]
MetricEvent: TypeAlias = MetricEventInput | Mapping[str, Any]
# `PATCH /vars`: a value (keeps the secret flag), `{"value", "secret"}`, or None to delete.
VarChange: TypeAlias = str | Mapping[str, Any] | None

__all__ = [
    "Aggregation",
    "BuildInput",
    "BuildPatch",
    "DeliveryStatus",
    "DeploymentStatus",
    "MetricEvent",
    "ProjectSort",
    "Role",
    "Scope",
    "VarChange",
    "VarItem",
    "WebhookStatus",
]
