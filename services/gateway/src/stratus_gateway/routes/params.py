"""Query parameters every list route shares, declared once so that their limits agree."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

Limit = Annotated[int, Parameter(ge=1, le=100, description="Page size, 1–100.")]
Cursor = Annotated[
    str | None, Parameter(max_length=512, description="`meta.next_cursor` of the previous page.")
]
