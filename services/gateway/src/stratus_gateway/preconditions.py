"""Optimistic concurrency and conditional reads at the HTTP edge: `ETag` out, `If-Match` and
`If-None-Match` in.

A single resource's `ETag` is its version as a strong entity tag (`"3"`). A write that sends
`If-Match` passes the version to the service inside the command (`expected_version`), and the
service compares it with the aggregate it decides on, so two clients racing with the same ETag
cannot both win. The gateway only parses the header; it never checks versions itself (a GET
before the write would be a race).

`If-Match` follows RFC 9110 (13.1.1): `*` (the resource must exist) or a list of entity tags,
compared strongly. A tag that cannot name a version of ours — a weak one (`W/"3"`), an opaque
`"abc"` — never matches, so a list of only such tags is 412 `precondition_failed` (passed on as
version 0, which no resource has: the service still answers 404 or 403 first). A list naming
one version is that version; one naming several is 400 `invalid_precondition` (a write carries
one expected version). A header that is not an entity tag list at all — an unquoted `3`, an
empty value — is 400 `invalid_precondition`.

`If-None-Match` on a single resource's GET (RFC 9110 13.1.2, weak comparison): `*`, or any tag
whose value is the current version (`"3"` or `W/"3"`), is 304 Not Modified with the `ETag`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, NamedTuple

from litestar import Response
from litestar.datastructures import ResponseHeader
from litestar.params import HeaderParameter

from stratus_gateway.problems import ApiError

# One entity tag of a list, and what may separate two (RFC 9110: `#entity-tag`, OWS around commas).
_TAG = re.compile(r'[ \t]*(W/)?"([!#-~\x80-\xff]*)"[ \t]*(?:,|$)')
_VERSION = re.compile(r"\d{1,18}")
NEVER = 0  # a version no resource has: an `If-Match` of tags that cannot match any

IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        required=False,
        description='Apply only if the resource is still at this version: its `ETag` (`"3"`), or `*` '
        "for any existing version. Any other entity tag (a stale one, a weak one) is 412 "
        "`precondition_failed`; a value that is not an entity tag is 400 `invalid_precondition`.",
    ),
]
IfNoneMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-None-Match",
        required=False,
        description='304 Not Modified (no body) while the resource is at a version named here (`"3"` '
        'or `W/"3"`, as its `ETag` said), or for `*`; otherwise the resource as usual.',
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


def entity_tags(header: str, value: str) -> list[tuple[bool, str]] | None:
    """The `(weak, opaque value)` pairs of an entity tag list, None for `*`; 400 when the value
    is neither."""
    text = value.strip(" \t")
    if text == "*":
        return None
    tags, at = [], 0
    while at < len(text):
        match = _TAG.match(text, at)
        if match is None or match.end() == at:
            break
        tags.append((match.group(1) is not None, match.group(2)))
        at = match.end()
    if not tags or at < len(text) or text.endswith(","):
        raise ApiError(
            "invalid_precondition",
            f'{header} must be `*` or entity tags as this API sends them in `ETag`, such as `"3"`.',
        )
    return tags


def parse_if_match(value: str | None) -> Precondition:
    """The precondition an `If-Match` header states; no header is no precondition."""
    if value is None:
        return Precondition()
    tags = entity_tags("If-Match", value)
    if tags is None:
        return Precondition(exists=True)
    # Strong comparison: only a strong tag can match, and only ours (a version) ever does.
    versions = {int(tag) for weak, tag in tags if not weak and _VERSION.fullmatch(tag)}
    if len(versions) > 1:
        raise ApiError(
            "invalid_precondition", "If-Match names several versions; a write expects one: send its ETag."
        )
    return Precondition(version=versions.pop() if versions else NEVER)


def not_modified(value: str | None, version: int) -> bool:
    """Whether a GET with this `If-None-Match` is answered 304 (the resource is at `version`)."""
    if value is None:
        return False
    tags = entity_tags("If-None-Match", value)
    current = str(version)
    return tags is None or any(tag == current for _weak, tag in tags)


def etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def unchanged(if_none_match: str | None, version: int) -> Response[Any] | None:
    """The 304 for a GET whose `If-None-Match` names the resource's current version, else None."""
    if not_modified(if_none_match, version):
        return Response(None, status_code=304, headers=etag(version))
    return None
