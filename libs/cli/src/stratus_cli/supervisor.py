"""`stratus up`: run the whole stack on one machine, one OS process per service.

Order (`stratus_contracts.services`): the bus (an embedded nats-server unless NATS_URL is set),
identity, the account bootstrap, then the other services and the gateway. Ready means the
gateway's /readyz answers 200; then `<data>/stack.json` tells other commands where the stack is.
A child that exits is restarted with exponential backoff. SIGINT/SIGTERM stop the services
first, then the bus, and exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import httpx

from stratus_bus import Bus, RemoteError, ServiceTimeout, ServiceUnavailable
from stratus_cli import accounts, masterkey, natsserver, stackfile
from stratus_cli.children import Child
from stratus_cli.config import Settings, from_env
from stratus_contracts import keys, services, subjects
from stratus_contracts.identity import BootstrapResult
from stratus_contracts.reply import Ping, Pong
from stratus_deployments.runner import local as runner
from stratus_telemetry import configure_logging

log = logging.getLogger("stratus.supervisor")


class StartupError(Exception):
    """The stack could not get ready; the message says what to look at."""


class Supervisor:
    def __init__(self, settings: Settings, early_signals: Sequence[int] = ()) -> None:
        self.settings = settings
        self.early_signals = early_signals  # still filled in until run() takes the signals over
        self.data_dir = settings.data_dir
        self.nats_url = settings.nats_url or ""
        self.nats: Child | None = None  # set only when we run the bus ourselves
        self.services: dict[str, Child] = {}  # by child name: `projects`, `projects-2`, …
        self.specs: dict[str, services.ServiceSpec] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.stop_requested = asyncio.Event()
        self.stopping = asyncio.Event()
        self.ready = False
        self.bootstrap: BootstrapResult | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        if self.early_signals:
            self._on_signal(signal.Signals(self.early_signals[0]))
        startup = asyncio.create_task(self.start(), name="startup")
        stop = asyncio.create_task(self.stop_requested.wait(), name="stop")
        code = 0
        try:
            await asyncio.wait({startup, stop}, return_when=asyncio.FIRST_COMPLETED)
            if startup.done():
                startup.result()  # raises StartupError when the stack could not get ready
                await stop
        except StartupError as exc:
            log.error(f"startup failed: {exc}")
            print(f"stratus: startup failed: {exc}", file=sys.stderr, flush=True)
            code = 1
        finally:
            # A stop during startup abandons it; nothing may launch once shutdown begins.
            for task in (startup, stop):
                task.cancel()
            await asyncio.gather(startup, stop, return_exceptions=True)
            await self.shutdown()
        return code

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stop_requested.is_set():
            log.info(f"{sig.name} received again; still stopping")
            return
        log.info(f"{sig.name} received; stopping", extra={"signal": sig.name})
        self.stop_requested.set()

    async def start(self) -> None:
        if self.stop_requested.is_set():
            return  # stopped before it began: start nothing
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.nats_url:
            await self._start_nats()
        env = {
            **os.environ,
            "NATS_URL": self.nats_url,
            "STRATUS_DATA_DIR": str(self.data_dir),
            "STRATUS_HOST": self.settings.host,
            "STRATUS_PORT": str(self.settings.port),
        }
        # The local stack delivers webhooks to local receivers too (the webhooks service says so
        # when it starts); link-local and metadata addresses stay refused whatever this says.
        env.setdefault("STRATUS_WEBHOOKS_ALLOW_PRIVATE", "1")
        try:
            # The master key goes only to the services that keep secrets (holds_master_key).
            secrets_env = masterkey.service_env(self.data_dir)
        except masterkey.MasterKeyError as exc:
            raise StartupError(str(exc)) from exc
        for name in masterkey.SERVICE_VARIABLES:
            env.pop(name, None)
        env.pop("STRATUS_REPLICA_ID", None)  # each child's own, below
        for spec in services.PROCESSES:
            child_env = {**env, **secrets_env} if spec.holds_master_key else env
            count = self._replicas(spec)
            if spec is services.GATEWAY and count > 1:
                child_env = {**child_env, "STRATUS_REUSE_PORT": "1"}  # one port, N gateways
            for i in range(count):
                name = spec.name if i == 0 else f"{spec.name}-{i + 1}"
                own_env = child_env if i == 0 else {**child_env, "STRATUS_REPLICA_ID": str(i + 1)}
                self.services[name] = Child(name, [sys.executable, "-m", spec.module], own_env)
                self.specs[name] = spec

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.ready_timeout
        try:
            nc = await natsserver.connect_until(self.nats_url, "stratus-supervisor", deadline)
        except TimeoutError as exc:
            raise StartupError(str(exc)) from exc
        log.info("bus ready", extra={"nats_url": self.nats_url})
        bus = Bus(nc)
        first = [s.name for s in services.SERVICES if s.bootstrap]
        try:
            for name, child in self.services.items():
                if self.specs[name].name in first:
                    await self._launch(child)
            for name in first:
                await self._wait_ping(bus, name, deadline)
            self.bootstrap = await self._bootstrap(bus, deadline)
        finally:
            await natsserver.close_quietly(nc)

        for name, child in self.services.items():
            if self.specs[name].name not in first:
                await self._launch(child)
        await self._wait_ready(loop.time() + self.settings.ready_timeout)
        self.ready = True
        self._write_stack()
        log.info("stack ready", extra={"gateway_url": self.settings.gateway_url})
        self._print_banner()

    async def shutdown(self) -> None:
        self.stopping.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        # Services drain their in-flight work over the bus, so the bus goes last.
        await asyncio.gather(*(child.stop() for child in self.services.values()))
        # The deployments service stops the apps it serves on a clean stop; this catches any a
        # stop caught half-way (or a service killed after its grace), so none outlives the stack.
        if left := await runner.stop_all(self.data_dir / "runner"):
            log.warning(f"stopped {left} deployed app(s) left running", extra={"apps": left})
        if self.nats is not None:
            await self.nats.stop()
        info = stackfile.read_stack(self.data_dir)
        if info is not None and info.get("pid") == os.getpid():
            stackfile.remove_stack(self.data_dir)
        log.info("stack stopped")

    # -- steps --------------------------------------------------------------------------

    async def _start_nats(self) -> None:
        store = self.data_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        port = natsserver.free_port()
        try:
            argv = natsserver.server_args(store, port, log_file=self.data_dir / "nats-server.log")
        except FileNotFoundError as exc:
            raise StartupError(str(exc)) from exc
        self.nats_url = f"nats://127.0.0.1:{port}"
        self.nats = Child("nats-server", argv, dict(os.environ))
        await self._launch(self.nats)

    async def _launch(self, child: Child) -> None:
        await child.start()
        self.tasks.append(
            asyncio.create_task(
                child.supervise(self.stopping, self._on_restart), name=f"supervise-{child.name}"
            )
        )

    def _replicas(self, spec: services.ServiceSpec) -> int:
        """Processes of `spec` to run. The metrics service on embedded chDB stays one: chDB is one
        engine per process over its files (a second process could not open them)."""
        count = max(1, self.settings.replicas)
        dsn = os.environ.get("STRATUS_METRICS_DSN") or "chdb:"  # unset: the embedded default
        if spec.name == "metrics" and count > 1 and dsn.startswith("chdb:"):
            log.info("the metrics service runs one replica on embedded chDB", extra={"replicas": 1})
            return 1
        return count

    def _on_restart(self, child: Child) -> None:
        log.info(
            f"{child.name} restarted",
            extra={"child": child.name, "pid": child.pid, "restarts": child.restarts},
        )
        if self.ready:
            self._write_stack()

    async def _wait_ping(self, bus: Bus, name: str, deadline: float) -> Pong:
        loop = asyncio.get_running_loop()
        subject = subjects.ping(name)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise StartupError(f"{name} did not answer {subject} in time")
            try:
                return await bus.call(Ping(), subject=subject, returns=Pong, timeout=min(1.0, remaining))
            except (ServiceUnavailable, ServiceTimeout):
                await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))

    async def _bootstrap(self, bus: Bus, deadline: float) -> BootstrapResult:
        loop = asyncio.get_running_loop()
        admin = accounts.AdminKeys.generate()  # the same keys on every retry
        while True:
            try:
                plan = accounts.check_plan(self.settings.bootstrap_plan)
                result = await accounts.bootstrap(bus, self.data_dir, admin, plan)
                if self.settings.admin_key:
                    await accounts.ensure_admin_key(bus, self.settings.admin_key)
                return result
            except RemoteError as exc:
                raise StartupError(f"identity refused the bootstrap: {exc}") from exc
            except (ServiceUnavailable, ServiceTimeout) as exc:
                # Identity restarted under us; both commands are safe to repeat.
                if loop.time() >= deadline:
                    raise StartupError(f"identity did not answer the bootstrap: {exc!r}") from exc
                log.warning("bootstrap not answered; retrying", extra={"error": repr(exc)})
                await self._wait_ping(bus, "identity", deadline)

    async def _wait_ready(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        url = f"{self.settings.gateway_url}/readyz"
        last = "no answer"
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            while True:
                try:
                    response = await client.get(url)
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}: {response.text[:200]}"
                except httpx.TransportError as exc:
                    last = repr(exc)
                if loop.time() >= deadline:
                    raise StartupError(
                        f"{url} did not answer 200 within {self.settings.ready_timeout:g}s (last: {last})"
                    )
                await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))

    # -- what the operator sees ---------------------------------------------------------

    def _write_stack(self) -> None:
        info: dict[str, Any] = {
            "nats_url": self.nats_url,
            "gateway_url": self.settings.gateway_url,
            "pid": os.getpid(),
            "services": {name: child.pid for name, child in self.services.items()},
            "nats_pid": self.nats.pid if self.nats is not None else None,
            "data_dir": str(self.data_dir),
        }
        stackfile.write_stack(self.data_dir, info)

    def _print_banner(self) -> None:
        url = self.settings.gateway_url
        creds = stackfile.read_credentials(self.data_dir)
        path = stackfile.credentials_path(self.data_dir)
        admin = self.settings.admin_key
        lines = [f"stratus: ready at {url}", f"  data dir:  {self.data_dir}"]
        embedded = f" (embedded; its log: {self.data_dir / 'nats-server.log'})" if self.nats else ""
        lines.append(f"  nats:      {self.nats_url}{embedded}")
        if self.bootstrap is not None:
            lines.append(f"  account:   {self.bootstrap.account_id}")
        example_key = "$KEY"
        if creds:
            live, test = creds.get("STRATUS_LIVE_KEY", "?"), creds.get("STRATUS_TEST_KEY", "?")
            lines += [f"  live key:  {live}", f"  test key:  {test}", f"  (saved in {path})"]
            example_key = test
        else:
            lines.append(
                f"  admin keys: {path} is missing; keys are shown only once, when the account "
                "is created. Set STRATUS_ADMIN_KEY=sk_live_… to add a key you choose."
            )
        if admin:
            lines.append(f"  STRATUS_ADMIN_KEY: {keys.hint(admin)} is active")
            if not creds:
                example_key = "$STRATUS_ADMIN_KEY"
        lines += [
            "",
            "  try:",
            f'    curl -s -H "Authorization: Bearer {example_key}" {url}/v1/projects '
            "-d '{\"name\":\"web\"}' -H 'Content-Type: application/json'",
            "",
            "  stop with Ctrl-C",
        ]
        print("\n".join(lines), flush=True)


def main(early_signals: Sequence[int] = ()) -> int:
    """Run `stratus up`; `early_signals` are stop signals that arrived before the event loop."""
    configure_logging("supervisor")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness probe is noise
    settings = from_env()
    try:
        accounts.check_admin_key(settings.admin_key)
        accounts.check_plan(settings.bootstrap_plan)
    except (accounts.AdminKeyError, accounts.PlanError) as exc:
        print(f"stratus: refusing to start: {exc}", file=sys.stderr, flush=True)
        return 2
    # Event stores, views, the JetStream store and the keys all live here: owner only.
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)
    try:
        lock = stackfile.lock(settings.data_dir)
    except stackfile.Locked:
        print(
            f"stratus: refusing to start: another `stratus up` is running on {settings.data_dir}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    with lock:
        return asyncio.run(Supervisor(settings, early_signals).run())
