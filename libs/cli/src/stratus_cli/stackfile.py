"""Files the supervisor keeps in the data dir: `credentials` (admin keys), `stack.json` and
`stack.lock`.

The first two are private (mode 0600) and written atomically, so a reader never sees half a
file. The lock is held for the supervisor's lifetime (the kernel drops it if the process dies),
so two stacks never share one data dir and its JetStream store.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any

CREDENTIALS = "credentials"
STACK = "stack.json"
LOCK = "stack.lock"


class Locked(Exception):
    """Another process holds the data dir's lock."""


def credentials_path(data_dir: Path) -> Path:
    return data_dir / CREDENTIALS


def stack_path(data_dir: Path) -> Path:
    return data_dir / STACK


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 from the first byte, replacing any old file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_credentials(data_dir: Path, account_id: str, live_key: str, test_key: str) -> Path:
    path = credentials_path(data_dir)
    write_private(
        path,
        f"STRATUS_ACCOUNT_ID={account_id}\nSTRATUS_LIVE_KEY={live_key}\nSTRATUS_TEST_KEY={test_key}\n",
    )
    return path


def read_credentials(data_dir: Path) -> dict[str, str] | None:
    """The `KEY=value` lines of the credentials file, or None when there is no such file."""
    try:
        text = credentials_path(data_dir).read_text()
    except FileNotFoundError:
        return None
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def write_stack(data_dir: Path, info: dict[str, Any]) -> None:
    write_private(stack_path(data_dir), json.dumps(info, indent=2) + "\n")


def read_stack(data_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads(stack_path(data_dir).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def remove_stack(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        stack_path(data_dir).unlink()


def lock(data_dir: Path) -> IO[bytes]:
    """Take the data dir's exclusive lock, or raise Locked. Close the file to release it."""
    f = (data_dir / LOCK).open("ab")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        f.close()
        raise Locked(str(data_dir)) from exc
    return f
