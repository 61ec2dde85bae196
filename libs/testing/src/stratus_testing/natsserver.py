"""`NatsServer`: a throwaway nats-server with JetStream on a free port, for tests.

    with NatsServer() as server:
        nc = await nats.connect(server.url)

Its store lives in a temporary directory (removed on stop) unless `store_dir` is given, and its
log goes to `<store>/nats-server.log`. `restart()` keeps the port and the data, to test clients
that must survive the bus going away.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO

from stratus_testing.processes import nats_server_binary, preexec, terminate
from stratus_testing.waiting import free_port, wait_until


class NatsServer:
    def __init__(
        self,
        *,
        store_dir: Path | str | None = None,
        port: int | None = None,
        jetstream: bool = True,
        startup_timeout: float = 10.0,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.jetstream = jetstream
        self.startup_timeout = startup_timeout
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if store_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="stratus-nats-")
            store_dir = self._tmp.name
        self.store_dir = Path(store_dir)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.store_dir / "nats-server.log"

    def start(self) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        argv = [nats_server_binary(), "-a", self.host, "-p", str(self.port)]
        if self.jetstream:
            argv += ["-js", "-sd", str(self.store_dir)]
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, preexec_fn=preexec()
        )
        try:
            wait_until(
                self._accepts,
                timeout=self.startup_timeout,
                message=f"nats-server on {self.url} (log: {self.log_path})",
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _accepts(self) -> bool:
        """True once the server answers a TCP connection with its INFO line."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"nats-server exited with {self.process.returncode}; see {self.log_path}")
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.settimeout(1.0)
                return sock.recv(4).startswith(b"INFO")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0, *, keep_data: bool = False) -> None:
        if self.process is not None:
            terminate(self.process, timeout)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None and not keep_data:
            self._tmp.cleanup()
            self._tmp = None

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop(keep_data=True)
        self.start()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
