"""Where the CLI's HTTP commands find their API key and the gateway, and `stratus login`'s file.

The key is `--key`, else `STRATUS_API_KEY`, else the one `stratus login` stored, else the local
stack's admin key from `$STRATUS_DATA_DIR/credentials` (live, or test with `--test`). The
gateway is `--api-url`, else `STRATUS_API_URL` (`STRATUS_URL`, its older name), else the
stored one, else the running local stack's (`stack.json`), else `http://$STRATUS_HOST:$STRATUS_PORT`.

`stratus login` keeps both in `$XDG_CONFIG_HOME/stratus/config.json` (`~/.config/stratus` by
default; `STRATUS_CONFIG_DIR` overrides), mode 0600 in a 0700 directory: the key is a secret.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from stratus_cli import stackfile
from stratus_cli.config import from_env


class NoKey(click.ClickException):
    """No API key from any source: the message says how to give one (exit 4, as a 401 is)."""

    exit_code = 4


def config_dir() -> Path:
    if explicit := os.environ.get("STRATUS_CONFIG_DIR"):
        return Path(explicit)
    return Path(click.get_app_dir("stratus"))


def profile_path() -> Path:
    return config_dir() / "config.json"


def read_profile() -> dict[str, str]:
    try:
        data = json.loads(profile_path().read_text())
    except (OSError, ValueError):
        return {}
    return (
        {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}
        if isinstance(data, dict)
        else {}
    )


def write_profile(api_url: str, api_key: str) -> Path:
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = profile_path()
    stackfile.write_private(path, json.dumps({"api_url": api_url, "api_key": api_key}, indent=2) + "\n")
    return path


def forget_profile() -> bool:
    try:
        profile_path().unlink()
    except FileNotFoundError:
        return False
    return True


def local_stack_url() -> str:
    settings = from_env()
    info = stackfile.read_stack(settings.data_dir) or {}
    return str(info.get("gateway_url") or settings.gateway_url).rstrip("/")


def api_url(explicit: str | None = None) -> str:
    for value in (
        explicit,
        os.environ.get("STRATUS_API_URL"),
        os.environ.get("STRATUS_URL"),
        read_profile().get("api_url"),
    ):
        if value:
            return value.rstrip("/")
    return local_stack_url()


def api_key(explicit: str | None = None, test: bool = False) -> str:
    if explicit:
        return explicit
    if key := os.environ.get("STRATUS_API_KEY"):
        return key
    if not test and (key := read_profile().get("api_key")):
        return key
    directory = from_env().data_dir
    name = "STRATUS_TEST_KEY" if test else "STRATUS_LIVE_KEY"
    if key := (stackfile.read_credentials(directory) or {}).get(name):
        return key
    raise NoKey(
        "no API key: run `stratus login`, pass --key, set STRATUS_API_KEY, "
        f"or run `stratus up` in {directory}"
    )
