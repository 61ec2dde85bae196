"""Input limits that are not a field's own constraint: URL and header sizes, JSON nesting depth.

Field limits (string lengths, list sizes, `limit` 1–100) are msgspec constraints on the body
Structs and query parameters and answer 422 `validation_failed` naming the field; the body size
(1 MiB, 413) is Litestar's `request_max_body_size`. What is here answers before any of that:

* `refusal` (in the outer middleware, before the app): a path plus query string over 8 KiB is
  414 `uri_too_long`; header fields over 32 KiB in total, or one over 16 KiB, are 431
  `headers_too_large`. Neither server enforces these (uvicorn's parser sets no size limit,
  Granian's only far larger ones), and a 1 MiB header must not reach auth or a log line. (The
  largest legitimate header is a short-lived token with 100 projects and 100 environments in its
  claims: about 14 KiB.)
* `check_json_depth` (before a body is decoded): arrays and objects nested more than 32 deep are
  400 `json_too_deep`. The JSON decoder recurses per level, so a deep enough body would otherwise
  end in a RecursionError (500); no Stratus body nests beyond 3.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.types import Send

from stratus_gateway.problems import ApiError, send_problem

MAX_URL = 8 * 1024
MAX_HEADERS = 32 * 1024
MAX_HEADER = 16 * 1024
MAX_JSON_DEPTH = 32

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST = re.compile(rb"\[\]|\{\}")


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects in `body` nest deeper than `limit`. Linear C-speed passes only:
    strings are cut out, the brackets kept, then innermost pairs removed `limit` times."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # the common case: too few brackets to be that deep
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        brackets, removed = _INNERMOST.subn(b"", brackets)
        if not brackets or not removed:
            return False  # balanced within the limit, or malformed (the decoder says so)
    return bool(brackets)


async def check_json_depth(request: Request[Any, Any, Any]) -> None:
    """400 `json_too_deep` for a body nested beyond MAX_JSON_DEPTH (reads the body, which
    Litestar then reuses for decoding; an oversized body is its 413)."""
    body = await request.body()
    if body and json_depth_exceeds(body):
        raise ApiError(
            "json_too_deep",
            f"The body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep.",
        )


def refusal(url: int, header_bytes: int, oversized: tuple[bytes, int] | None) -> tuple[str, str]:
    """The 414/431 problem code and detail for a request over a limit. The caller (the outer
    middleware) has measured the path plus query string, summed the header sizes and noted the
    first header over MAX_HEADER, with its size, in its one pass over them."""
    if url > MAX_URL:
        return "uri_too_long", f"The path and query string are {url} bytes; the limit is {MAX_URL}."
    if oversized is not None:
        name, size = oversized
        field = name.decode("latin-1")
        return "headers_too_large", f"Header {field!r} is {size} bytes; the limit is {MAX_HEADER}."
    return "headers_too_large", f"The headers are {header_bytes} bytes; the limit is {MAX_HEADERS}."


async def send_refusal(send: Send, code: str, detail: str) -> None:
    """Answer the problem before the app sees the request, and close the connection."""
    await send_problem(send, code, detail, [(b"connection", b"close")])
