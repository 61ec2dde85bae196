"""Write this checkout's OpenAPI document to a file, for `make ts-client`:

    python clients/typescript/scripts/openapi_spec.py OUT

From `$STRATUS_OPENAPI_URL` when it is set (a running gateway's `/openapi.json`), else from a
throwaway stack of this checkout (`stratus up` on a temporary data dir and a free port, stopped
once the document is read), so the types follow the code here, not whatever stack happens to run.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import httpx

from stratus_testing import Stack


def fetch(url: str) -> bytes:
    response = httpx.get(url, timeout=30.0, trust_env=False)
    response.raise_for_status()
    return response.content


def main(out: Path) -> None:
    url = os.environ.get("STRATUS_OPENAPI_URL")
    if url:
        out.write_bytes(fetch(url))
        return
    with tempfile.TemporaryDirectory(prefix="stratus-openapi-") as data, Stack(data) as stack:
        out.write_bytes(fetch(f"{stack.base_url}/openapi.json"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT")
    main(Path(sys.argv[1]))
