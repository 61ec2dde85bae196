"""Optimistic concurrency at the HTTP edge: `ETag` out, `If-Match` in.

A single resource's `ETag` is its version as a strong entity tag (`"3"`). A write that sends
`If-Match` passes the version to the service inside the command (`expected_version`), and the
service compares it with the aggregate it decides on, so two clients racing with the same ETag
cannot both win. The gateway only parses the header; it never checks versions itself (a GET
before the write would be a race).

Accepted `If-Match` values: `*` (the resource must exist) or one strong tag `"<version>"`.
Anything else — a weak tag (`W/"3"`), a list, an unquoted number — is 400
`invalid_precondition`: under strong comparison such a header could never match, so a client
sending it has a bug that a 412 would hide.
"""

from __future__ import annotations

import re
from typing import Annotated, NamedTuple

from litestar.datastructures import ResponseHeader
from litestar.params import HeaderParameter

from stratus_gateway.problems import ApiError

_STRONG = re.compile(r'^"(\d{1,18})"$')

IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        required=False,
        description='Apply only if the resource is still at this version: its `ETag` (`"3"`), or `*` '
        "for any existing version. A stale tag is 412 `precondition_failed`.",
    ),
]
ETAG_HEADER = ResponseHeader(
    name="ETag",
    description='The resource\'s version as a strong entity tag (`"3"`); send it back in `If-Match`.',
    documentation_only=True,
)
PRECONDITION_CODES = ("precondition_failed", "invalid_precondition")


class Precondition(NamedTuple):
    version: int | None = None  # If-Match: "<version>"
    exists: bool = False  # If-Match: *


def parse_if_match(value: str | None) -> Precondition:
    """The precondition an `If-Match` header states; no header is no precondition."""
    if value is None:
        return Precondition()
    text = value.strip()
    if text == "*":
        return Precondition(exists=True)
    if (strong := _STRONG.match(text)) is not None:
        return Precondition(version=int(strong.group(1)))
    hint = " (If-Match compares strongly: drop the `W/`)" if text.startswith("W/") else ""
    raise ApiError(
        "invalid_precondition",
        f'If-Match must be `*` or one ETag as this API sent it, such as `"3"`{hint}.',
    )


def etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}
