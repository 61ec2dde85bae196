"""The master key of environment variables, from the operator's side.

* `stratus up` gives the projects service `STRATUS_MASTER_KEY`: the variable if set, else
  `$STRATUS_DATA_DIR/master.key` (created with mode 0600 on first start). `master.key.previous`,
  when present, is passed as `STRATUS_MASTER_KEY_PREVIOUS` (old keys still unwrap during a
  rotation); an explicit `STRATUS_MASTER_KEY_PREVIOUS` wins.
* `stratus secrets rotate-master-key` asks the projects service to re-wrap every data key under
  its current master key, naming the key it expects (the same one `stratus up` would pass), so
  a replica that still runs with the old key refuses instead of re-wrapping under it.
* `stratus secrets generate-master-key` prints a new key.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from stratus_bus import RemoteError, ServiceTimeout
from stratus_cli import stackfile
from stratus_cli.config import data_dir
from stratus_cli.rebuild import TIMEOUT, NotRunning, operator_bus
from stratus_contracts import envs, masterkey

KEY_FILE = "master.key"
PREVIOUS_FILE = "master.key.previous"
SERVICE_VARIABLES = (masterkey.MASTER_KEY_ENV, masterkey.PREVIOUS_KEYS_ENV)
MasterKeyError = masterkey.MasterKeyError


def key_path(directory: Path) -> Path:
    return directory / KEY_FILE


def ensure_key_file(directory: Path) -> Path:
    """`master.key` in the data dir, created (0600, atomically) when missing; checked when present."""
    path = key_path(directory)
    if not path.exists():
        stackfile.write_private(path, masterkey.generate() + "\n")
    masterkey.parse(path.read_text(), str(path))
    return path


def service_env(directory: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The master-key variables for the projects service (raises MasterKeyError on a bad key)."""
    env = os.environ if env is None else env
    result: dict[str, str] = {}
    current = env.get(masterkey.MASTER_KEY_ENV, "").strip()
    if current:
        masterkey.parse(current)
        result[masterkey.MASTER_KEY_ENV] = current
    else:
        result[masterkey.MASTER_KEY_ENV] = ensure_key_file(directory).read_text().strip()
    previous = env.get(masterkey.PREVIOUS_KEYS_ENV, "").strip()
    previous_file = directory / PREVIOUS_FILE
    if not previous and previous_file.exists():
        previous = ",".join(line.strip() for line in previous_file.read_text().splitlines() if line.strip())
    if previous:
        for part in previous.split(","):
            masterkey.parse(part, masterkey.PREVIOUS_KEYS_ENV)
        result[masterkey.PREVIOUS_KEYS_ENV] = previous
    return result


def expected_key_id(directory: Path, env: Mapping[str, str] | None = None) -> str | None:
    """The id of the master key the services should hold now: `STRATUS_MASTER_KEY`, else the data
    dir's `master.key`; None when neither exists (then the rotation checks nothing)."""
    env = os.environ if env is None else env
    text = env.get(masterkey.MASTER_KEY_ENV, "").strip()
    if not text:
        path = key_path(directory)
        if not path.exists():
            return None
        text = path.read_text()
    return masterkey.key_id(masterkey.parse(text))


async def rotate(expected: str | None) -> envs.RewrapResult:
    async with operator_bus("projects") as bus:
        return await bus.call(envs.RewrapDataKeys(expected_kek_id=expected), timeout=TIMEOUT)


def main_rotate() -> int:
    try:
        expected = expected_key_id(data_dir())
        result = asyncio.run(rotate(expected))
    except masterkey.MasterKeyError as exc:
        print(f"stratus: {exc}", file=sys.stderr)
        return 2
    except NotRunning as exc:
        print(f"stratus: {exc}", file=sys.stderr)
        return 1
    except ServiceTimeout:
        print(f"stratus: the projects service did not finish within {TIMEOUT:g}s", file=sys.stderr)
        return 1
    except RemoteError as exc:
        print(f"stratus: {exc.error.message} ({exc.error.code})", file=sys.stderr)
        return 1
    modes = {
        mode: {"total": n.total, "rewrapped": n.rewrapped, "unavailable": n.unavailable}
        for mode, n in result.modes.items()
    }
    print(json.dumps({"kek_id": result.kek_id, "modes": modes}, sort_keys=True))
    if any(n.unavailable for n in result.modes.values()):
        print(
            "stratus: some data keys are wrapped by a master key the service does not hold; "
            "keep STRATUS_MASTER_KEY_PREVIOUS until they are re-wrapped",
            file=sys.stderr,
        )
        return 1
    return 0


def main_generate() -> int:
    print(masterkey.generate())
    return 0
