"""`Stack`: the whole platform started by `stratus up` in a subprocess, for end-to-end tests.

    with Stack(tmp_path / "data") as stack:
        httpx.get(f"{stack.base_url}/v1/projects", headers=stack.auth(stack.test_key))

The stack gets its own data dir, gateway port and embedded nats-server (an inherited NATS_URL
is dropped unless passed in `env`), the bootstrap account on the `internal` plan and no
per-address rate limit (`env` overrides both: `STRATUS_BOOTSTRAP_PLAN`, `STRATUS_PLANS`). Its
stdout and stderr are appended to `stack.stdout.log` and `stack.stderr.log` in the data dir.
Starting a new `Stack` on the same data dir is a restart: the data and the account survive.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import urlsplit

import httpx

from stratus_contracts import masterkey, services
from stratus_testing.processes import exited, preexec, terminate
from stratus_testing.waiting import free_port, wait_until

# Variables a developer's shell may carry that would make a test stack share state with theirs.
_NOT_INHERITED = (
    "NATS_URL",
    "STRATUS_ADMIN_KEY",
    "STRATUS_MASTER_KEY",
    "STRATUS_MASTER_KEY_PREVIOUS",
    # A user's own API settings would point `stratus` commands elsewhere.
    "STRATUS_API_KEY",
    "STRATUS_API_URL",
    "STRATUS_URL",
)
# The default plans, except that unauthenticated requests from one address are not limited.
UNTHROTTLED_PLANS = '{"anonymous": null}'


class StackFailed(RuntimeError):
    """`stratus up` exited or did not get ready; the message ends with its recent stderr."""


class Stack:
    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        self.env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        self.env.update(
            {
                # Tests drive the bootstrap keys and unauthenticated requests hard: neither may be
                # throttled unless a test asks for it (rate-limit tests pass their own values).
                "STRATUS_BOOTSTRAP_PLAN": "internal",
                "STRATUS_PLANS": UNTHROTTLED_PLANS,
                "STRATUS_DATA_DIR": str(self.data_dir),
                # `stratus` commands run against this stack never read the user's `stratus login`.
                "STRATUS_CONFIG_DIR": str(self.data_dir / "cli-config"),
                "STRATUS_HOST": "127.0.0.1",
                "STRATUS_PORT": str(self.port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        self._extras: list[subprocess.Popen[bytes]] = []

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def command(self) -> list[str]:
        return stratus_command("up")

    def start(self) -> Stack:
        """Run `stratus up` and return once /readyz answers 200 and stack.json names it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        stdout = self.stdout_path.open("ab")
        stderr = self.stderr_path.open("ab")
        self._logs = [stdout, stderr]
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=preexec(),
        )
        try:
            wait_until(self.is_ready, timeout=self.ready_timeout, message=f"{self.base_url}/readyz")
        except TimeoutError as exc:
            self.stop()
            raise StackFailed(f"{exc}\n--- stderr tail ---\n{self.logs()}") from exc
        except BaseException:
            self.stop()
            raise
        return self

    def is_ready(self) -> bool:
        """Whether this stack's stack.json names it and /readyz answers 200 (raises StackFailed
        when `stratus up` has exited)."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise StackFailed(
                f"stratus up exited with {self.process.returncode}\n--- stderr tail ---\n{self.logs()}"
            )
        info = self.info()
        if not info or info.get("pid") != self.process.pid:
            return False  # not ready yet, or a stale file from an earlier, killed stack
        try:
            response = httpx.get(f"{self.base_url}/readyz", timeout=2.0, trust_env=False)
        except httpx.TransportError:
            return False
        return response.status_code == 200

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the stack is ready again, e.g. after a service or the bus was killed."""
        wait_until(
            self.is_ready,
            timeout=self.ready_timeout if timeout is None else timeout,
            message=f"{self.base_url}/readyz",
        )

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM `stratus up` and wait for it (SIGKILL after `timeout`); its exit code."""
        code = None
        if self.process is not None:
            code = terminate(self.process, timeout)
        for log in self._logs:
            log.close()
        self._logs = []
        return code

    def kill(self, grace: float = 15.0) -> int | None:
        """SIGKILL the supervisor, as a crash would, and wait until its children are gone too.

        The kernel sends them SIGTERM when the supervisor dies, all at once, so a service may
        find the bus already gone; any still running after `grace` seconds is SIGKILLed, so the
        data dir is free for the next stack."""
        if self.process is None:
            return None
        info = self.info() or {}
        pids = [p for p in (*info.get("services", {}).values(), info.get("nats_pid")) if p]
        self.process.kill()
        code = self.process.wait()
        try:
            wait_until(lambda: all(exited(p) for p in pids), timeout=grace)
        except TimeoutError:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            wait_until(lambda: all(exited(p) for p in pids), timeout=10.0)
        self.stop()
        return code

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what the stack tells us --------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def info(self) -> dict[str, Any] | None:
        """The running stack's `stack.json`, or None while there is none."""
        try:
            return json.loads((self.data_dir / "stack.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    @property
    def nats_url(self) -> str:
        return str(self._info()["nats_url"])

    def service_pid(self, name: str) -> int:
        """The current pid of service `name` (`identity`, `projects`, `gateway`)."""
        return int(self._info()["services"][name])

    def service_pids(self, name: str) -> list[int]:
        """The pids of every replica of service `name` (`projects`, `projects-2`, …)."""
        children = self._info()["services"]
        return [int(pid) for child, pid in children.items() if child == name or child.startswith(f"{name}-")]

    def wait_restarted(self, name: str, old_pid: int, timeout: float = 30.0) -> int:
        """Wait until the supervisor has replaced `old_pid` and the stack is ready; the new pid."""

        def replaced() -> int | None:
            info = self.info() or {}
            pid = info.get("services", {}).get(name)
            return pid if pid and pid != old_pid else None

        pid = wait_until(replaced, timeout=timeout, message=f"{name} to be restarted")
        self.wait_ready(timeout)
        return int(pid)

    def restart_nats(self, while_down: Callable[[], object] | None = None, timeout: float = 30.0) -> int:
        """Stop the stack's embedded nats-server (SIGTERM, as an operator's restart would) and
        wait until the supervisor has started it again, on the same port with the same
        JetStream store, and it accepts connections; its new pid. `while_down` is called once
        the old server has exited. The services are left to reconnect by themselves."""
        old = self._info().get("nats_pid")
        if not old:
            raise StackFailed("this stack's bus is not embedded (NATS_URL was given): restart that server")
        url = urlsplit(self.nats_url)
        os.kill(old, signal.SIGTERM)
        wait_until(lambda: exited(old), timeout=timeout, message=f"nats-server {old} to stop")
        if while_down is not None:
            while_down()

        def replaced() -> int | None:
            pid = (self.info() or {}).get("nats_pid")
            return pid if pid and pid != old else None

        def accepts() -> bool:
            try:
                with socket.create_connection((url.hostname, url.port), timeout=1.0) as sock:
                    sock.settimeout(1.0)
                    return sock.recv(4).startswith(b"INFO")
            except OSError:
                return False

        pid = wait_until(replaced, timeout=timeout, message="nats-server to be restarted")
        wait_until(accepts, timeout=timeout, message=f"nats-server on {self.nats_url}")
        return int(pid)

    def _info(self) -> dict[str, Any]:
        info = self.info()
        if info is None:
            raise StackFailed(f"no {self.data_dir / 'stack.json'}: the stack is not running")
        return info

    @property
    def credentials(self) -> dict[str, str]:
        """`<data>/credentials` as a dict (written once, when the account was created)."""
        path = self.data_dir / "credentials"
        try:
            text = path.read_text()
        except FileNotFoundError as exc:
            raise StackFailed(f"no {path}: the account was not created by this data dir") from exc
        values: dict[str, str] = {}
        for line in text.splitlines():
            name, sep, value = line.strip().partition("=")
            if sep:
                values[name] = value
        return values

    @property
    def account_id(self) -> str:
        return self.credentials["STRATUS_ACCOUNT_ID"]

    @property
    def live_key(self) -> str:
        return self.credentials["STRATUS_LIVE_KEY"]

    @property
    def test_key(self) -> str:
        return self.credentials["STRATUS_TEST_KEY"]

    @staticmethod
    def auth(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client for the gateway, authenticated with `key` (default: the test key)."""
        headers = {**self.auth(key or self.test_key), **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.base_url, headers=headers, trust_env=False, timeout=10.0, **kwargs)

    def async_client(self, key: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = {**self.auth(key or self.test_key), **kwargs.pop("headers", {})}
        return httpx.AsyncClient(
            base_url=self.base_url, headers=headers, trust_env=False, timeout=10.0, **kwargs
        )

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run another `stratus` command against this stack, e.g. `cli("rebuild", "projects")`."""
        return subprocess.run(
            stratus_command(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @contextlib.contextmanager
    def extra_gateway(self, env: Mapping[str, str] | None = None) -> Iterator[str]:
        """A second gateway replica on the same bus and a free port; yields its base URL."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=1.0, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        with self._extra("gateway", f"gateway-{port}", {"STRATUS_PORT": str(port), **(env or {})}, ready):
            yield url

    @contextlib.contextmanager
    def extra_service(self, name: str, env: Mapping[str, str] | None = None) -> Iterator[int]:
        """One more replica of a service (`stratus_<name>`) on the same bus and data dir, as
        `stratus up` starts it; yields its pid once it reports ready."""
        extra = dict(env or {})
        key_file = self.data_dir / "master.key"
        if services.BY_NAME[name].holds_master_key and key_file.exists():
            extra.setdefault(masterkey.MASTER_KEY_ENV, key_file.read_text().strip())
        log_path = self.data_dir / f"{name}-extra-{len(self._extras)}.log"

        def ready() -> bool:
            return log_path.exists() and '"service ready"' in log_path.read_text(errors="replace")

        with self._extra(name, log_path.stem, extra, ready) as proc:
            yield proc.pid

    @contextlib.contextmanager
    def _extra(
        self, name: str, log_name: str, env: Mapping[str, str], ready: Callable[[], bool]
    ) -> Iterator[subprocess.Popen[bytes]]:
        # As `stratus up` gives its own children: local webhook receivers allowed.
        process_env = {
            "STRATUS_WEBHOOKS_ALLOW_PRIVATE": "1",
            **self.env,
            "NATS_URL": self.nats_url,
            "STRATUS_LOG_LEVEL": "INFO",
            **env,
        }
        log = (self.data_dir / f"{log_name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", services.BY_NAME[name].module],
            env=process_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=preexec(),
        )
        self._extras.append(proc)

        def started() -> bool:
            if proc.poll() is not None:
                raise StackFailed(f"extra {name} exited with {proc.returncode}")
            return ready()

        try:
            wait_until(started, timeout=self.ready_timeout, message=f"extra {name} ready")
            yield proc
        finally:
            terminate(proc, 10.0)
            log.close()
            self._extras.remove(proc)

    # -- debugging ----------------------------------------------------------------------

    @property
    def stdout_path(self) -> Path:
        return self.data_dir / "stack.stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.data_dir / "stack.stderr.log"

    def logs(self, lines: int = 60) -> str:
        """The last `lines` lines of the stack's stderr (every service logs there)."""
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def stratus_command(*args: str) -> list[str]:
    """The argv that runs `stratus` with this interpreter (works without the console script)."""
    return [sys.executable, "-m", "stratus_cli.main", *args]
