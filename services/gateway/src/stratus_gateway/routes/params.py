"""Parameters every list route shares, declared once so that their limits agree, and the one
check of a time a client gives."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar.params import Parameter

from stratus_contracts.errors import FieldError
from stratus_gateway.problems import ApiError

Limit = Annotated[int, Parameter(ge=1, le=100, description="Page size, 1–100.")]
Cursor = Annotated[
    str | None, Parameter(max_length=512, description="`meta.next_cursor` of the previous page.")
]


def aware(name: str, value: datetime | None) -> datetime | None:
    """RFC 3339 needs an offset: a bare local time would mean a different instant per client."""
    if value is not None and value.tzinfo is None:
        raise ApiError(
            "validation_failed",
            errors=[FieldError(field=name, message="Give an RFC 3339 time with an offset, e.g. `…Z`.")],
        )
    return value
