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


class NatsCluster:
    """A NATS cluster on loopback: `size` nats-servers routed to each other, JetStream on each
    (file store, `sync_interval: always`, so an acknowledged write is on disk on a quorum), for
    tests of what survives losing a node. `url` names every server, comma-separated."""

    def __init__(self, base_dir: Path | str, size: int = 3, startup_timeout: float = 30.0) -> None:
        self.base_dir = Path(base_dir)
        self.size = size
        self.startup_timeout = startup_timeout
        self.ports = [free_port() for _ in range(size)]
        self.cluster_ports = [free_port() for _ in range(size)]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * size
        self._logs: list[IO[bytes] | None] = [None] * size

    @property
    def url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{port}" for port in self.ports)

    def _config(self, i: int) -> Path:
        node = self.base_dir / f"n{i}"
        node.mkdir(parents=True, exist_ok=True)
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for j, p in enumerate(self.cluster_ports) if j != i)
        path = node / "nats.conf"
        path.write_text(
            f'server_name: "n{i}"\n'
            f"listen: 127.0.0.1:{self.ports[i]}\n"
            f'jetstream {{ store_dir: "{node / "js"}", sync_interval: always }}\n'
            f'cluster {{ name: "stratus", listen: 127.0.0.1:{self.cluster_ports[i]}, routes: [{routes}] }}\n'
        )
        return path

    def start_node(self, i: int) -> None:
        config = self._config(i)
        log = (self.base_dir / f"n{i}.log").open("ab")
        self._logs[i] = log
        self.processes[i] = subprocess.Popen(
            [nats_server_binary(), "-c", str(config)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=preexec(),
        )  # fmt: skip

    def start(self) -> NatsCluster:
        for i in range(self.size):
            self.start_node(i)
        try:
            wait_until(self._jetstream_ready, timeout=self.startup_timeout, message="a JetStream meta leader")
        except BaseException:
            self.stop()
            raise
        return self

    def _jetstream_ready(self) -> bool:
        import asyncio

        import nats

        async def check() -> bool:
            nc = await nats.connect(self.url.split(","), connect_timeout=2, allow_reconnect=False)
            try:
                await nc.jetstream().account_info()
                return True
            except Exception:
                return False
            finally:
                await nc.close()

        try:
            return asyncio.run(check())
        except Exception:
            return False

    def kill(self, i: int) -> None:
        """SIGKILL node `i` (no clean shutdown: what it held must be on the others)."""
        process = self.processes[i]
        if process is not None:
            process.kill()
            process.wait(10)
            self.processes[i] = None

    def stop(self) -> None:
        for i, process in enumerate(self.processes):
            if process is not None:
                terminate(process, 10.0)
                self.processes[i] = None
        for log in self._logs:
            if log is not None:
                log.close()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
