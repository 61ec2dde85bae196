"""Parameters every list route shares, declared once so that their limits agree, and the one
check of a time a client gives."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from litestar.params import Parameter

from stratus_contracts.errors import FieldError
from stratus_gateway.openapi_docs import DATE_TIME
from stratus_gateway.problems import ApiError

# Query parameters that are times: RFC 3339 only (Litestar also reads a bare number as an epoch).
TIME_PARAMETERS = frozenset({"created[gte]", "created[lt]", "since", "until"})
RFC3339 = re.compile(DATE_TIME)

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


def check_query(query: list[tuple[str, str]]) -> None:
    """422 for a query parameter given twice (every parameter here takes one value: Litestar would
    read `limit=1&limit=2` as a list, or keep one of them) and for a time that is not RFC 3339."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for name, value in query:
        if name in seen:
            errors.append(FieldError(field=name, message="Give this parameter once."))
        seen.add(name)
        if name in TIME_PARAMETERS and not RFC3339.match(value):
            errors.append(
                FieldError(
                    field=name, message="An RFC 3339 time with an offset, e.g. `2026-04-28T10:14:22Z`."
                )
            )
    if errors:
        raise ApiError("validation_failed", errors=errors)
