"""`stratus env pull|push`: an environment's variables as a `.env` file, through the HTTP API.

The key is `--key`, else `STRATUS_API_KEY`, else the local stack's admin key from
`$STRATUS_DATA_DIR/credentials` (live, or test with `--test`). The gateway is `STRATUS_URL`, else
the running stack's (`stack.json`), else `http://$STRATUS_HOST:$STRATUS_PORT`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx

from stratus_cli import stackfile
from stratus_cli.config import from_env

TIMEOUT = 30.0


class Failed(Exception):
    """The command cannot go on; the message says why."""


def gateway_url() -> str:
    if url := os.environ.get("STRATUS_URL"):
        return url.rstrip("/")
    settings = from_env()
    info = stackfile.read_stack(settings.data_dir) or {}
    return str(info.get("gateway_url") or settings.gateway_url).rstrip("/")


def api_key(explicit: str | None, test: bool) -> str:
    if explicit:
        return explicit
    if key := os.environ.get("STRATUS_API_KEY"):
        return key
    directory = from_env().data_dir
    name = "STRATUS_TEST_KEY" if test else "STRATUS_LIVE_KEY"
    key = (stackfile.read_credentials(directory) or {}).get(name)
    if not key:
        raise Failed(f"no API key: pass --key, set STRATUS_API_KEY, or run `stratus up` in {directory}")
    return key


def _client(key: str) -> httpx.Client:
    return httpx.Client(
        base_url=gateway_url(),
        headers={"Authorization": f"Bearer {key}"},
        timeout=TIMEOUT,
        trust_env=False,
    )


def _check(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        problem = response.json()
        message = f"{problem.get('detail')} ({problem.get('code')}, HTTP {response.status_code})"
    except ValueError:
        message = f"HTTP {response.status_code}"
    raise Failed(message)


def pull(env_id: str, key: str, reveal: bool, output: str | None) -> None:
    params = {"reveal": "true"} if reveal else {}
    try:
        with _client(key) as client:
            response = client.get(f"/v1/envs/{env_id}/dotenv", params=params)
    except httpx.HTTPError as exc:
        raise Failed(f"cannot reach the gateway at {gateway_url()}: {exc}") from exc
    _check(response)
    if output is None or output == "-":
        sys.stdout.write(response.text)
        sys.stdout.flush()
    else:
        # Private from the first byte: revealed values are secrets.
        stackfile.write_private(Path(output), response.text)


def push(env_id: str, key: str, path: str, prune: bool) -> dict[str, object]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    params = {"prune": "true"} if prune else {}
    try:
        with _client(key) as client:
            response = client.put(
                f"/v1/envs/{env_id}/dotenv",
                content=text.encode("utf-8"),
                params=params,
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
    except httpx.HTTPError as exc:
        raise Failed(f"cannot reach the gateway at {gateway_url()}: {exc}") from exc
    _check(response)
    version = response.json()["data"]
    return {
        "env_id": version["env_id"],
        "version": version["number"],
        "new": version["new"],
        "changed": version["changed"] if version["new"] else [],
        "removed": version["removed"] if version["new"] else [],
    }


def main_pull(env_id: str, key: str | None, test: bool, reveal: bool, output: str | None) -> int:
    try:
        pull(env_id, api_key(key, test), reveal, output)
    except Failed as exc:
        print(f"stratus: {exc}", file=sys.stderr)
        return 1
    return 0


def main_push(env_id: str, key: str | None, test: bool, path: str, prune: bool) -> int:
    try:
        result = push(env_id, api_key(key, test), path, prune)
    except (Failed, OSError, UnicodeDecodeError) as exc:
        print(f"stratus: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0
