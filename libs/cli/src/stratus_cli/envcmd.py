"""`stratus env pull|push`: an environment's variables as a `.env` file, through the HTTP API
(the Python SDK's `envs.export_dotenv` / `envs.import_dotenv`).

The key and gateway are found as every HTTP command finds them (`session`: --key,
`STRATUS_API_KEY`, `stratus login`, the local stack's admin key — test mode with `--test`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from stratus_cli import stackfile
from stratus_cli.api import client_for


def main_pull(env_id: str, key: str | None, test: bool, reveal: bool, output: str | None) -> int:
    with client_for({"key": key, "test": test}) as client:
        text = client.envs.export_dotenv(env_id, reveal=True if reveal else None)
    if output is None or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        # Private from the first byte: revealed values are secrets.
        stackfile.write_private(Path(output), text)
    return 0


def main_push(env_id: str, key: str | None, test: bool, path: str, prune: bool) -> int:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"stratus: {exc}", file=sys.stderr)
        return 1
    with client_for({"key": key, "test": test}) as client:
        version = client.envs.import_dotenv(env_id, text, prune=True if prune else None)
    print(
        json.dumps(
            {
                "env_id": version.env_id,
                "version": version.number,
                "new": version.new,
                "changed": version.changed if version.new else [],
                "removed": version.removed if version.new else [],
            }
        )
    )
    return 0
