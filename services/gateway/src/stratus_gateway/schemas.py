"""Request bodies at the HTTP edge: strict msgspec Structs (unknown fields are a 422)."""

from __future__ import annotations

from typing import Annotated

import msgspec

ProjectName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
        description="Lowercase letters, digits and hyphens (a DNS label); unique per account and mode.",
        examples=["web"],
    ),
]
Description = Annotated[str, msgspec.Meta(max_length=1000, description="Free text, up to 1000 characters.")]


class ProjectCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: ProjectName
    description: Description = ""


class ProjectUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Fields to change; omitted (or null) fields stay as they are."""

    name: ProjectName | None = None
    description: Description | None = None
