"""Process plumbing for the local runner: safe environments, process groups, line splitting.

Every command the runner starts (git, a build, an instance) runs in a session of its own, so
that one signal to its process group reaches everything it started, and so that it outlives
the service's process when it should (instances) and can be found and killed by a later one
when it should not (builds). A process is named by its pid and an identity (boot and start
time), so that a pid reused after the process is gone is never mistaken for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from stratus_deployments.runner.base import Stream

MAX_LINE = 16 * 1024
READ_CHUNK = 64 * 1024
PIPE_GRACE = 5.0

# What a child gets from the service's own environment: enough to find programs and write
# files, never the rest (which holds STRATUS_MASTER_KEY, database passwords, …).
SAFE_KEYS = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")

Emit = Callable[[Stream, str], None]


def base_env() -> dict[str, str]:
    env = {key: os.environ[key] for key in SAFE_KEYS if key in os.environ}
    env.setdefault("PATH", os.defpath)
    env.setdefault("LANG", "C.UTF-8")
    return env


def child_env(variables: Mapping[str, str], **runner: str) -> dict[str, str]:
    """The base environment, then the user's variables, then the runner's own (PORT) on top."""
    return {**base_env(), **variables, **runner}


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


BOOT_ID = _boot_id()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    return text[text.rindex(")") + 2 :].split()


def identity(pid: int) -> str | None:
    """A name for the process `pid` that a later process with the same pid will not have
    (boot id and start time); None when it is gone or a zombie."""
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "alive"
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return f"{BOOT_ID}:{fields[19]}"


def alive(pid: int, recorded: str | None) -> bool:
    """Whether the process recorded as (`pid`, `recorded` identity) still runs."""
    return recorded is not None and identity(pid) == recorded


def group_alive(pgid: int) -> bool:
    """Whether a process group still has a member that is not a zombie."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return True
    # killpg counts zombies (an orphan's, until its new parent reaps it): look for a live one.
    for entry in proc.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                return True
    return False


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_leftover(pgid: int, recorded: str | None) -> None:
    """Kill the group a dead process left behind, unless its pid now names another process.

    A group's id stays taken while any member lives, so a leader pid that now belongs to a
    process of another identity means the whole group is gone.
    """
    now = identity(pgid)
    if now is not None and now != recorded:
        return
    if recorded is not None and recorded.split(":")[0] not in ("alive", BOOT_ID):
        return  # recorded before a reboot
    kill_group(pgid)


async def terminate_group(pgid: int, grace: float, reap: Callable[[], object] | None = None) -> None:
    """SIGTERM the group, wait up to `grace` for it to go, then SIGKILL it (and wait a little)."""
    loop = asyncio.get_running_loop()
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        kill_group(pgid, sig)
        deadline = loop.time() + wait
        while True:
            if reap is not None:
                reap()  # our own child: collect its status, or it stays a zombie
            if not group_alive(pgid):
                return
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exited"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class Lines:
    """Bytes in, complete lines out (UTF-8, errors replaced, no line end); lines longer than
    MAX_LINE bytes come out in pieces of that size. `pending` is what waits for its newline."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[str]:
        buf = self._buf
        buf += data
        out: list[str] = []
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            self._emit(buf[start:end], out)
            start = end + 1
        while len(buf) - start >= MAX_LINE:
            out.append(_decode(buf[start : start + MAX_LINE]))
            start += MAX_LINE
        del buf[:start]
        return out

    def flush(self) -> list[str]:
        out: list[str] = []
        if self._buf:
            self._emit(self._buf, out)
            self._buf.clear()
        return out

    @staticmethod
    def _emit(line: bytearray, out: list[str]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) <= MAX_LINE:
            out.append(_decode(line))
            return
        for i in range(0, len(line), MAX_LINE):
            out.append(_decode(line[i : i + MAX_LINE]))


def _decode(data: bytes | bytearray) -> str:
    return data.decode("utf-8", errors="replace")


async def _pump(stream: asyncio.StreamReader, name: Stream, emit: Emit) -> None:
    lines = Lines()
    while data := await stream.read(READ_CHUNK):
        for line in lines.feed(data):
            emit(name, line)
    for line in lines.flush():
        emit(name, line)


async def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    emit: Emit,
    timeout: float,
    cwd: str | Path | None = None,
    on_spawn: Callable[[int], None] | None = None,
) -> int:
    """Run `argv` in a session of its own, passing each output line to `emit(stream, line)`,
    and return its exit status once all its output is read. Whatever it leaves running in its
    group is killed when it exits; on a timeout (TimeoutError) or a cancellation, the whole
    group is killed before the exception goes on."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    pumps = [
        asyncio.create_task(_pump(proc.stdout, "stdout", emit)),
        asyncio.create_task(_pump(proc.stderr, "stderr", emit)),
    ]
    try:
        if on_spawn is not None:
            on_spawn(proc.pid)
        try:
            async with asyncio.timeout(timeout):
                code = await proc.wait()
        except TimeoutError:
            kill_group(proc.pid)
            await asyncio.wait(pumps, timeout=PIPE_GRACE)  # what it wrote before it was killed
            raise
        finally:
            kill_group(proc.pid)
        # The pipes close once every process holding them is gone; one that left the group
        # (a daemon that called setsid) may hold them open for good.
        await asyncio.wait(pumps, timeout=PIPE_GRACE)
        return code
    finally:
        for pump in pumps:
            pump.cancel()
