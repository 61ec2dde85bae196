"""One supervised OS process: start it, watch it, restart it with backoff, stop it politely.

Children run in their own process group, so a Ctrl-C in the terminal reaches only the
supervisor, which then stops them in order (services before the bus). On Linux each child
also asks the kernel for SIGTERM if the supervisor dies without cleaning up, so a killed
supervisor leaves no orphans holding ports or data files.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import signal
import sys
from collections.abc import Callable, Sequence

log = logging.getLogger("stratus.supervisor")

BACKOFF_START = 0.5
BACKOFF_MAX = 10.0
STABLE_AFTER = 30.0  # a child up this long has recovered: its next crash restarts quickly again
STOP_GRACE = 10.0

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    # Runs in the forked child before exec: no allocation-heavy work here, just the syscall.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self.backoff = BACKOFF_START
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            process_group=0,
            preexec_fn=_die_with_parent,  # one syscall in the child, no Python state touched
        )
        self.started_at = asyncio.get_running_loop().time()
        log.info(f"{self.name} started", extra={"child": self.name, "pid": self.proc.pid})

    async def supervise(self, stopping: asyncio.Event, on_restart: Callable[[Child], None]) -> None:
        """Restart the child whenever it exits, until `stopping` is set."""
        loop = asyncio.get_running_loop()
        while True:
            assert self.proc is not None
            code = await self.proc.wait()
            if stopping.is_set():
                return
            uptime = loop.time() - self.started_at
            if uptime >= STABLE_AFTER:
                self.backoff = BACKOFF_START
            delay = self.backoff
            self.backoff = min(self.backoff * 2, BACKOFF_MAX)
            log.error(
                f"{self.name} exited with code {code}; restarting in {delay:g}s",
                extra={
                    "child": self.name,
                    "pid": self.proc.pid,
                    "exit_code": code,
                    "uptime_s": round(uptime, 3),
                    "restart_in_s": delay,
                },
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            if stopping.is_set():
                return
            await self.start()
            self.restarts += 1
            on_restart(self)

    async def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM, then SIGKILL if the child is still there after `grace` seconds."""
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                log.warning(
                    f"{self.name} ignored SIGTERM for {grace:g}s; killing it",
                    extra={"child": self.name, "pid": proc.pid},
                )
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        log.info(f"{self.name} stopped", extra={"child": self.name, "exit_code": proc.returncode})
        return proc.returncode
