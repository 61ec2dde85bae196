"""Retry-until helpers for tests: wait for a condition with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _describe(predicate: object, message: str | None, timeout: float, last: object) -> str:
    what = message or getattr(predicate, "__name__", repr(predicate))
    detail = f" (last: {last!r})" if last is not None else ""
    return f"timed out after {timeout:g}s waiting for {what}{detail}"


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    *,
    message: str | None = None,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `predicate` until it returns something truthy and return that; TimeoutError after
    `timeout` seconds. Exceptions of the types in `ignore` count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except ignore as exc:
            last = exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(_describe(predicate, message, timeout, last))
        time.sleep(min(interval, remaining))


async def wait_for(
    predicate: Callable[[], Awaitable[T] | T],
    timeout: float = 10.0,
    interval: float = 0.05,
    *,
    message: str | None = None,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """The async `wait_until`: `predicate` may be a coroutine function or a plain function."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value  # type: ignore[return-value]
            last = value
        except ignore as exc:
            last = exc
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(_describe(predicate, message, timeout, last))
        await asyncio.sleep(min(interval, remaining))
